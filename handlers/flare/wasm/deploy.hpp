// Run-time deployment of Wasm flares: the admin API that `admin:` in
// `ember serve`'s config turns on, and that `ember flare` talks to.
//
//   PUT    {admin.path}/flares/NAME?host=H&path=P&secret=S&capability=C
//          body: the module. Deploys NAME, or replaces it.
//   GET    {admin.path}/flares        every deployment
//   GET    {admin.path}/flares/NAME   one (poll it after a PUT)
//   DELETE {admin.path}/flares/NAME
//
// Every call needs `Authorization: Bearer TOKEN`. A PUT is validated on the
// spot (400 names the offending import or export) and compiled on the
// deployer's thread, never on a loop; it answers 202 and the deployment
// serves once compiled. A replacement keeps the old version serving until
// the new one is compiled; requests and WebSocket connections already routed
// finish on the version they started with.
#pragma once

#include <memory>

#include "ember/error.hpp"
#include "ember/flare_server.hpp"
#include "handlers/flare/wasm/wasm_flare.hpp"

namespace ember::flare::wasm {

class Deployer {
 public:
  // `server` is bound and `config.admin` enabled. Adds the admin API to the
  // server's routes and redeploys what admin.state_dir holds (a module that
  // no longer compiles is listed as failed, not served).
  static Result<std::unique_ptr<Deployer>> start(Server& server, const ServerConfig& config,
                                                 std::shared_ptr<WasmHost> host);
  // Waits for the module being compiled, if any; admin calls answer 503 from
  // then on.
  ~Deployer();
  Deployer(const Deployer&) = delete;
  Deployer& operator=(const Deployer&) = delete;

  struct Impl;

 private:
  explicit Deployer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace ember::flare::wasm

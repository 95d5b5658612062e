// libFuzzer target: the flame.v1 decoders on the task hot path (both wire
// editions), checked against libprotobuf's generated parser of Flame main's
// edition (a superset of v0.6.0's by field number) where the two must agree.
// libfuzzer-options: -max_len=4096 -timeout=10 -rss_limit_mb=2048
#include <google/protobuf/stubs/logging.h>

#include <cstdint>
#include <cstdlib>

#include "ember_flame_main_wire.pb.h"
#include "handlers/flame/wire.hpp"

using ember::Bytes;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static google::protobuf::LogSilencer quiet;  // libprotobuf logs bad UTF-8
  Bytes message = Bytes::copy(std::span(data, size));
  auto ctx = ember::flame::wire::decode_task_context(message);

  ::ember::wire::flame::main::TaskContext ref;
  bool ref_ok = ref.ParseFromArray(data, static_cast<int>(size));
  if (ctx) {
    // Views must lie inside the message; the input must share its storage.
    auto inside = [&](const void* p, size_t n) {
      auto* q = static_cast<const uint8_t*>(p);
      return n == 0 || (q >= message.data() && q + n <= message.data() + message.size());
    };
    if (!inside(ctx->task_id.data(), ctx->task_id.size())) std::abort();
    if (!inside(ctx->session_id.data(), ctx->session_id.size())) std::abort();
    if (!inside(ctx->workspace.data(), ctx->workspace.size())) std::abort();
    if (ctx->input && !ctx->input->empty() && ctx->input->storage() != message.storage())
      std::abort();
    if (ref_ok) {
      if (ctx->task_id != ref.task() || ctx->session_id != ref.session()) std::abort();
      if (ctx->workspace != ref.workspace()) std::abort();
      if (ctx->input.has_value() != ref.has_input()) std::abort();
      if (ctx->input && ctx->input->view() != ref.input()) std::abort();
    }
    // Re-encoded canonically, it decodes to the same values.
    ::ember::wire::flame::main::TaskContext again;
    again.set_task(std::string(ctx->task_id));
    again.set_session(std::string(ctx->session_id));
    again.set_workspace(std::string(ctx->workspace));
    if (ctx->input) again.set_input(ctx->input->to_string());
    auto round = ember::flame::wire::decode_task_context(Bytes::copy(again.SerializeAsString()));
    if (!round || round->task_id != ctx->task_id || round->session_id != ctx->session_id ||
        round->workspace != ctx->workspace || round->input.has_value() != ctx->input.has_value())
      std::abort();
  } else if (ref_ok) {
    // libprotobuf keeps a known field with the wrong wire type as unknown;
    // Ember, like prost, rejects it. That is the only accepted disagreement.
    if (ctx.error().find("wire type") == std::string::npos) std::abort();
  }

  // The cold-path decoders take the same bytes.
  (void)ember::flame::wire::decode_session_context(message);
  (void)ember::flame::wire::is_well_formed(message);
  // So do the executor's reply decoders, plain or wrapped; outputs are views.
  if (auto r = ember::flame::wire::decode_task_result(message); r && r->output) {
    if (!r->output->empty() && r->output->storage() != message.storage()) std::abort();
  }
  (void)ember::flame::wire::decode_result(message);
  return 0;
}

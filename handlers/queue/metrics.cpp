// GET /metrics over the hand-written HTTP/1.1 codec.
#include "handlers/queue/metrics.hpp"

#include "protocols/http1/request_parser.hpp"
#include "protocols/http1/writer.hpp"

namespace ember::queue {
namespace {

constexpr uint64_t kDeadlineMs = 5000;

class MetricsConnection final : public ConnectionHandler, private http1::RequestHandler {
 public:
  explicit MetricsConnection(const MetricsRenderFn& render)
      : render_(render), parser_(limits(), *this) {}

  void on_open(Connection& conn) override {
    conn_ = &conn;
    conn.set_deadline(kDeadlineMs);
  }
  void on_data(Connection& conn, const Bytes& data) override {
    if (status_ != 0) return;  // answered; closing
    http1::FeedResult r = parser_.feed(data);
    if (r.status == http1::ParseStatus::error) {
      status_ = parser_.error().status;
      conn.want_write();
    }
  }
  void on_writable(Connection& conn, IoChain& out) override {
    if (status_ == 0) return;
    static constexpr http1::Field kText[] = {
        {"content-type", "text/plain; version=0.0.4; charset=utf-8"}};
    http1::ResponseStart start;
    start.status = status_;
    start.keep_alive = false;
    start.head_request = head_;
    if (status_ == 200) start.fields = kText;
    if (status_ == 405) {
      static constexpr http1::Field kAllow[] = {{"allow", "GET, HEAD"}};
      start.fields = kAllow;
    }
    Bytes body = status_ == 200 ? Bytes::copy(render_()) : Bytes();
    (void)http1::ResponseWriter(out).write(start, body);
    conn.close();
  }
  void on_drain(Connection& conn) override { conn.close(); }

 private:
  static http1::Limits limits() {
    http1::Limits l;
    l.max_header_bytes = 8192;
    l.max_body = 0;
    return l;
  }
  http1::Action on_head(const http1::RequestHead& head) override {
    head_ = head.method_id == http1::Method::head;
    if (head.method_id != http1::Method::get && !head_)
      status_ = 405;
    else
      status_ = head.path == "/metrics" ? 200 : 404;
    return http1::Action::proceed;
  }
  http1::Action on_body(const Bytes&) override { return http1::Action::proceed; }
  http1::Action on_complete() override {
    conn_->want_write();
    return http1::Action::pause;
  }

  const MetricsRenderFn& render_;
  http1::RequestParser parser_;
  Connection* conn_ = nullptr;
  int status_ = 0;
  bool head_ = false;
};

}  // namespace

Result<uint16_t> listen_metrics(Reactor& reactor, const std::string& host, uint16_t port,
                                MetricsRenderFn render) {
  auto shared = std::make_shared<MetricsRenderFn>(std::move(render));
  return reactor.listen_tcp(host, port, [shared](Loop&) -> std::unique_ptr<ConnectionHandler> {
    return std::make_unique<MetricsConnection>(*shared);
  });
}

}  // namespace ember::queue

// Echo: each task's output is its input. The input is a view of Ember's
// receive buffer; returning it sends the same bytes back without a copy.
#include <ember/flame.hpp>

namespace flame = ember::flame;

class EchoService final : public flame::FlameService {
 public:
  flame::TaskResult on_task_invoke(flame::TaskContext ctx) override { return ctx.input; }
};

int main() {
  EchoService service;
  return flame::run(service);
}

// A tiny Flame service using only Ember's installed headers: upper-cases its input.
#include <ember/flame.hpp>

#include <cctype>
#include <string>

class Shout final : public ember::flame::FlameService {
 public:
  ember::flame::TaskResult on_task_invoke(ember::flame::TaskContext ctx) override {
    if (!ctx.input) return ember::flame::FlameError::invalid_config("shout needs an input");
    std::string out(ctx.input->view());
    for (char& c : out)
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return ember::Bytes::from(std::move(out));
  }
};

int main() {
  Shout service;
  return ember::flame::run(service);
}

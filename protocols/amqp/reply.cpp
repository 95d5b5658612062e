#include "protocols/amqp/reply.hpp"

namespace ember::amqp {
namespace {

struct ReplyInfo {
  uint16_t code;
  std::string_view name;
  std::string_view text;
  bool hard;
};

constexpr ReplyInfo kReplies[] = {
    {200, "REPLY_SUCCESS", "the method completed successfully", false},
    {311, "CONTENT_TOO_LARGE",
     "the content was larger than the recipient could accept at the present time", false},
    {312, "NO_ROUTE", "a mandatory message could not be routed to any queue", false},
    {313, "NO_CONSUMERS", "an immediate message found no consumer ready to take it", false},
    {320, "CONNECTION_FORCED", "an operator intervened to close the connection", true},
    {402, "INVALID_PATH", "the virtual host is unknown", true},
    {403, "ACCESS_REFUSED", "access to the entity is refused by the security settings", false},
    {404, "NOT_FOUND", "the entity does not exist", false},
    {405, "RESOURCE_LOCKED", "the entity is locked by another connection (exclusive use)", false},
    {406, "PRECONDITION_FAILED", "a precondition of the method failed", false},
    {501, "FRAME_ERROR", "a malformed frame that could not be decoded", true},
    {502, "SYNTAX_ERROR", "a frame carried illegal values for one or more fields", true},
    {503, "COMMAND_INVALID", "an invalid sequence of frames or methods", true},
    {504, "CHANNEL_ERROR", "use of a channel that was not correctly opened", true},
    {505, "UNEXPECTED_FRAME", "a frame that was not expected, usually in content framing", true},
    {506, "RESOURCE_ERROR", "the server lacked the resources to complete the method", true},
    {530, "NOT_ALLOWED", "the entity may not be used this way", true},
    {540, "NOT_IMPLEMENTED", "the functionality is not implemented by the peer", true},
    {541, "INTERNAL_ERROR", "the peer failed internally", true},
};

const ReplyInfo* find(uint16_t code) noexcept {
  for (const ReplyInfo& r : kReplies)
    if (r.code == code) return &r;
  return nullptr;
}

}  // namespace

std::string_view reply_name(uint16_t code) noexcept {
  const ReplyInfo* r = find(code);
  return r ? r->name : std::string_view("UNKNOWN");
}

std::string_view reply_text(uint16_t code) noexcept {
  const ReplyInfo* r = find(code);
  return r ? r->text : std::string_view();
}

bool is_hard_error(uint16_t code) noexcept {
  const ReplyInfo* r = find(code);
  // Unknown codes: the 5xx range is the spec's hard errors.
  return r ? r->hard : code >= 500;
}

std::string AmqpError::describe() const {
  std::string out;
  if (scope == Scope::channel) {
    out = "channel " + std::to_string(channel);
  } else {
    out = "connection";
  }
  if (code == 0) {
    out += " lost: ";
    out += text;
    return out;
  }
  switch (origin) {
    case Origin::broker:
      out += " closed by broker: ";
      break;
    case Origin::client:
      out += " closed by client: ";
      break;
    case Origin::local:
      out += " failed: ";
      break;
  }
  out += std::to_string(code);
  out += ' ';
  std::string_view name = reply_name(code);
  std::string_view t = text;
  if (!(t.size() >= name.size() && t.substr(0, name.size()) == name)) {
    out += name;
    if (!t.empty()) out += " - ";
  }
  out += t;
  if (class_id != 0 || method_id != 0) {
    std::string_view m = method_name(class_id, method_id);
    out += " (";
    if (m.empty()) {
      out += "method " + std::to_string(class_id) + "." + std::to_string(method_id);
    } else {
      out += m;
    }
    out += ')';
  }
  return out;
}

}  // namespace ember::amqp

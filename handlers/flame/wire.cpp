#include "handlers/flame/wire.hpp"

#include <climits>
#include <cstring>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include "ember_flame_main_wire.pb.h"
#include "ember_flame_wire.pb.h"

namespace ember::flame::wire {
namespace {

using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

// Proto3 strings must be UTF-8; prost (Flame's side) rejects anything else.
bool valid_utf8(std::string_view s) {
  size_t i = 0, n = s.size();
  auto* p = reinterpret_cast<const unsigned char*>(s.data());
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

size_t put_varint(uint8_t* out, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = static_cast<uint8_t>(v | 0x80);
    v >>= 7;
  }
  out[n++] = static_cast<uint8_t>(v);
  return n;
}

// Reads a length-delimited field body as a view of the buffer.
bool read_view(CodedInputStream& in, const uint8_t* base, size_t* offset, size_t* length) {
  // ReadVarint32 would truncate a length of 2^32 or more; read all of it.
  uint64_t len;
  if (!in.ReadVarint64(&len)) return false;
  const void* ptr;
  int avail;
  if (len == 0) {
    *offset = static_cast<size_t>(in.CurrentPosition());
    *length = 0;
    return true;
  }
  if (!in.GetDirectBufferPointer(&ptr, &avail) || static_cast<uint64_t>(avail) < len) return false;
  *offset = static_cast<size_t>(static_cast<const uint8_t*>(ptr) - base);
  *length = len;
  return in.Skip(static_cast<int>(len));
}

}  // namespace

Expected<TaskContext, std::string> decode_task_context(const Bytes& message) {
  if (message.size() > static_cast<size_t>(INT32_MAX))
    return std::string("TaskContext larger than 2 GiB");
  TaskContext ctx(message);
  const uint8_t* base = message.data();
  CodedInputStream in(base, static_cast<int>(message.size()));
  while (!in.ExpectAtEnd()) {
    uint32_t tag = in.ReadTag();
    uint32_t field = tag >> 3;
    uint32_t type = tag & 7;
    if (tag == 0 || field == 0) return std::string("malformed TaskContext: invalid field tag");
    if (field == 1 || field == 2 || field == 4 || field == 5) {
      if (type != WireFormatLite::WIRETYPE_LENGTH_DELIMITED)
        return "malformed TaskContext: field " + std::to_string(field) + " has wire type " +
               std::to_string(type) + ", expected 2 (length-delimited)";
      size_t off, len;
      if (!read_view(in, base, &off, &len))
        return "malformed TaskContext: field " + std::to_string(field) + " is truncated";
      if (field == 4) {
        ctx.input = message.slice(off, len);
      } else {
        static constexpr std::string_view kNames[] = {"", "task_id", "session_id",
                                                      "", "",        "workspace"};
        std::string_view view(reinterpret_cast<const char*>(base + off), len);
        if (!valid_utf8(view))
          return "malformed TaskContext: " + std::string(kNames[field]) + " is not valid UTF-8";
        (field == 1 ? ctx.task_id : field == 2 ? ctx.session_id : ctx.workspace) = view;
      }
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return "malformed TaskContext: unknown field " + std::to_string(field) + " is truncated";
    }
  }
  return ctx;
}

EncodedMessage encode_task_success(std::optional<Bytes> output) {
  EncodedMessage r;
  if (output) {
    // return_code 0 is the proto3 default and is not sent; output is.
    r.head[0] = 0x12;  // field 2, length-delimited
    r.head_len = 1 + put_varint(r.head + 1, output->size());
    r.body = std::move(*output);
  }
  return r;
}

EncodedMessage encode_task_failure(std::string_view message) {
  EncodedMessage r;
  size_t n = 0;
  r.head[n++] = 0x08;                                               // field 1, varint
  n += put_varint(r.head + n, static_cast<uint64_t>(int64_t{-1}));  // int32 -1: 10 bytes
  r.head[n++] = 0x1A;                                               // field 3, length-delimited
  n += put_varint(r.head + n, message.size());
  r.head_len = n;
  r.body = Bytes::copy(message);
  return r;
}

namespace {
// The ExecutorAttributes message body: a tag, a length and the bytes per attribute.
size_t attributes_message_size(std::span<const std::string> attributes) {
  uint8_t varint[10];
  size_t n = 0;
  for (const std::string& a : attributes)
    n += 1 + put_varint(varint, a.size()) + a.size();
  return n;
}
}  // namespace

size_t attributes_size(std::span<const std::string> attributes) {
  if (attributes.empty()) return 0;
  uint8_t varint[10];
  size_t inner = attributes_message_size(attributes);
  return 1 + put_varint(varint, inner) + inner;
}

EncodedMessage wrap_task_result(EncodedMessage task_result,
                                std::span<const std::string> attributes) {
  EncodedMessage r;
  uint8_t field1[11];
  field1[0] = 0x0A;  // task_result: field 1, length-delimited
  size_t field1_len = 1 + put_varint(field1 + 1, task_result.size());
  if (attributes.empty() && field1_len + task_result.head_len <= EncodedMessage::kMaxHead) {
    std::memcpy(r.head, field1, field1_len);
    std::memcpy(r.head + field1_len, task_result.head, task_result.head_len);
    r.head_len = field1_len + task_result.head_len;
    r.body = std::move(task_result.body);
    return r;
  }
  std::string all;
  all.reserve(field1_len + task_result.size() + attributes_size(attributes));
  all.append(reinterpret_cast<const char*>(field1), field1_len);
  all.append(reinterpret_cast<const char*>(task_result.head), task_result.head_len);
  all.append(reinterpret_cast<const char*>(task_result.body.data()), task_result.body.size());
  if (!attributes.empty()) {
    uint8_t varint[10];
    all.push_back(0x12);  // attributes: field 2, length-delimited
    all.append(reinterpret_cast<const char*>(varint),
               put_varint(varint, attributes_message_size(attributes)));
    for (const std::string& a : attributes) {
      all.push_back(0x0A);  // ExecutorAttributes.attr: field 1, bytes
      all.append(reinterpret_cast<const char*>(varint), put_varint(varint, a.size()));
      all.append(a);
    }
  }
  r.body = Bytes::from(std::move(all));
  return r;
}

EncodedMessage encode_task_context(std::string_view task_id, std::string_view session_id,
                                   const std::optional<Bytes>& input) {
  EncodedMessage m;
  // Tag and a varint length of at most 5 bytes per field.
  size_t need = 6 + task_id.size() + 6 + session_id.size() + (input ? 6 : 0);
  if (need > EncodedMessage::kMaxHead) {
    ::ember::wire::flame::v1::TaskContext pb;
    pb.set_task_id(std::string(task_id));
    pb.set_session_id(std::string(session_id));
    if (input) pb.set_input(input->to_string());
    m.body = Bytes::from(pb.SerializeAsString());
    return m;
  }
  size_t n = 0;
  auto put_string = [&](uint8_t tag, std::string_view s) {
    if (s.empty()) return;  // proto3 default: not sent
    m.head[n++] = tag;
    n += put_varint(m.head + n, s.size());
    std::memcpy(m.head + n, s.data(), s.size());
    n += s.size();
  };
  put_string(0x0A, task_id);
  put_string(0x12, session_id);
  if (input) {
    m.head[n++] = 0x22;
    n += put_varint(m.head + n, input->size());
    m.body = *input;
  }
  m.head_len = n;
  return m;
}

namespace {

// The first field tells the editions apart: TaskResult and Result start with
// a varint return_code (or with nothing, when it is 0), the wrappers with a
// length-delimited message. Encoders write fields in order, prost included.
bool starts_wrapped(const Bytes& message) {
  return !message.empty() && message.data()[0] == 0x0A;
}

// ExecutorAttributes{1 repeated bytes attr}, appended to `out`.
bool decode_attributes(const Bytes& message, std::vector<std::string>* out) {
  CodedInputStream in(message.data(), static_cast<int>(message.size()));
  while (!in.ExpectAtEnd()) {
    uint32_t tag = in.ReadTag();
    if (tag == 0 || (tag >> 3) == 0) return false;
    if (tag == 0x0A) {
      size_t off, len;
      if (!read_view(in, message.data(), &off, &len)) return false;
      out->emplace_back(message.view().substr(off, len));
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return false;
    }
  }
  return true;
}

// A wrapper's fields: 1 the wrapped message (a view), 2 the attributes.
Expected<Bytes, std::string> unwrap(const Bytes& message, std::string_view what,
                                    std::vector<std::string>* attributes) {
  CodedInputStream in(message.data(), static_cast<int>(message.size()));
  Bytes inner;
  while (!in.ExpectAtEnd()) {
    uint32_t tag = in.ReadTag();
    uint32_t field = tag >> 3;
    if (tag == 0 || field == 0) return "malformed " + std::string(what) + ": invalid field tag";
    if ((field == 1 || field == 2) && (tag & 7) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      size_t off, len;
      if (!read_view(in, message.data(), &off, &len))
        return "malformed " + std::string(what) + ": truncated field " + std::to_string(field);
      if (field == 1) {
        inner = message.slice(off, len);
      } else if (!decode_attributes(message.slice(off, len), attributes)) {
        return "malformed " + std::string(what) + ": bad ExecutorAttributes";
      }
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return "malformed " + std::string(what) + ": truncated unknown field";
    }
  }
  return inner;
}

Expected<TaskOutcome, std::string> decode_plain_task_result(const Bytes& message) {
  CodedInputStream in(message.data(), static_cast<int>(message.size()));
  TaskOutcome out;
  while (!in.ExpectAtEnd()) {
    uint32_t tag = in.ReadTag();
    uint32_t field = tag >> 3, type = tag & 7;
    if (tag == 0 || field == 0) return std::string("malformed TaskResult: invalid field tag");
    if (field == 1 && type == WireFormatLite::WIRETYPE_VARINT) {
      uint64_t v;
      if (!in.ReadVarint64(&v)) return std::string("malformed TaskResult: return_code");
      out.return_code = static_cast<int32_t>(v);
    } else if ((field == 2 || field == 3) && type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      size_t off, len;
      if (!read_view(in, message.data(), &off, &len))
        return std::string("malformed TaskResult: truncated field");
      if (field == 2)
        out.output = message.slice(off, len);
      else
        out.message = std::string(message.view().substr(off, len));
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return std::string("malformed TaskResult: truncated unknown field");
    }
  }
  return out;
}

}  // namespace

Expected<TaskOutcome, std::string> decode_task_result(const Bytes& message) {
  if (message.size() > static_cast<size_t>(INT32_MAX))
    return std::string("TaskResult larger than 2 GiB");
  if (!starts_wrapped(message)) return decode_plain_task_result(message);
  std::vector<std::string> attributes;
  auto inner = unwrap(message, "OnTaskInvokeResponse", &attributes);
  if (!inner) return inner.error();
  auto out = decode_plain_task_result(*inner);
  if (out) out->attributes = std::move(attributes);
  return out;
}

Expected<CallOutcome, std::string> decode_result(const Bytes& message) {
  CallOutcome out;
  Bytes result = message;
  if (starts_wrapped(message)) {
    auto inner = unwrap(message, "OnSessionEnterResponse", &out.attributes);
    if (!inner) return inner.error();
    result = std::move(*inner);
  }
  ::ember::wire::flame::v1::Result pb;
  if (!pb.ParseFromArray(result.data(), static_cast<int>(result.size())))
    return std::string("malformed flame.v1.Result");
  out.return_code = pb.return_code();
  if (pb.has_message()) out.message = pb.message();
  return out;
}

Expected<SessionContext, DecodeError> decode_session_context(const Bytes& message) {
  // Main's edition is a superset of v0.6.0's by field number: one parser for both.
  ::ember::wire::flame::main::SessionContext pb;
  if (!pb.ParseFromArray(message.data(), static_cast<int>(message.size())))
    return DecodeError{DecodeError::Kind::malformed, "malformed SessionContext"};
  SessionContext ctx;
  ctx.session_id = pb.session();
  if (!pb.has_application())
    return DecodeError{DecodeError::Kind::invalid, "SessionContext has no application"};
  const auto& app = pb.application();
  ctx.application.name = app.name();
  ctx.application.shim = app.shim() == ::ember::wire::flame::main::Wasm  ? Shim::Wasm
                         : app.shim() == ::ember::wire::flame::main::Cri ? Shim::Cri
                                                                         : Shim::Host;
  if (app.has_image()) ctx.application.image = app.image();
  if (app.has_command()) ctx.application.command = app.command();
  if (app.has_working_directory()) ctx.application.working_directory = app.working_directory();
  if (app.has_url()) ctx.application.url = app.url();
  if (app.has_installer()) ctx.application.installer = app.installer();
  ctx.application.workspace = app.workspace();
  if (pb.has_common_data()) ctx.common_data = Bytes::from(std::move(*pb.mutable_common_data()));
  ctx.tokens.insert(pb.tokens().begin(), pb.tokens().end());
  ctx.workspace = pb.workspace();
  return ctx;
}

bool shows_wrapped_wire(const SessionContext& ctx) noexcept {
  return !ctx.tokens.empty() || !ctx.workspace.empty() || !ctx.application.workspace.empty();
}

Bytes encode_result(const Status& status) {
  ::ember::wire::flame::v1::Result pb;
  if (!status) {
    pb.set_return_code(-1);
    pb.set_message(status.error().to_string());
  }
  return Bytes::from(pb.SerializeAsString());
}

Bytes encode_session_enter_reply(const Status& status, std::span<const std::string> attributes) {
  ::ember::wire::flame::main::OnSessionEnterResponse pb;
  auto* result = pb.mutable_result();
  if (!status) {
    result->set_return_code(-1);
    result->set_message(status.error().to_string());
  }
  if (!attributes.empty()) {
    auto* attrs = pb.mutable_attributes();
    for (const std::string& a : attributes)
      attrs->add_attr(a);
  }
  return Bytes::from(pb.SerializeAsString());
}

bool is_well_formed(const Bytes& message) {
  ::ember::wire::flame::v1::EmptyRequest pb;
  return pb.ParseFromArray(message.data(), static_cast<int>(message.size()));
}

}  // namespace ember::flame::wire

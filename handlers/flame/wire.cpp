#include "handlers/flame/wire.hpp"

#include <climits>
#include <cstring>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

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
    if (field == 1 || field == 2 || field == 4) {
      if (type != WireFormatLite::WIRETYPE_LENGTH_DELIMITED)
        return "malformed TaskContext: field " + std::to_string(field) + " has wire type " +
               std::to_string(type) + ", expected 2 (length-delimited)";
      size_t off, len;
      if (!read_view(in, base, &off, &len))
        return "malformed TaskContext: field " + std::to_string(field) + " is truncated";
      if (field == 4) {
        ctx.input = message.slice(off, len);
      } else {
        std::string_view view(reinterpret_cast<const char*>(base + off), len);
        if (!valid_utf8(view))
          return "malformed TaskContext: " + std::string(field == 1 ? "task_id" : "session_id") +
                 " is not valid UTF-8";
        (field == 1 ? ctx.task_id : ctx.session_id) = view;
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

Expected<TaskOutcome, std::string> decode_task_result(const Bytes& message) {
  if (message.size() > static_cast<size_t>(INT32_MAX))
    return std::string("TaskResult larger than 2 GiB");
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

Expected<SessionContext, DecodeError> decode_session_context(const Bytes& message) {
  ::ember::wire::flame::v1::SessionContext pb;
  if (!pb.ParseFromArray(message.data(), static_cast<int>(message.size())))
    return DecodeError{DecodeError::Kind::malformed, "malformed SessionContext"};
  SessionContext ctx;
  ctx.session_id = pb.session_id();
  if (!pb.has_application())
    return DecodeError{DecodeError::Kind::invalid, "SessionContext has no application"};
  const auto& app = pb.application();
  ctx.application.name = app.name();
  ctx.application.shim = app.shim() == ::ember::wire::flame::v1::Wasm ? Shim::Wasm : Shim::Host;
  if (app.has_image()) ctx.application.image = app.image();
  if (app.has_command()) ctx.application.command = app.command();
  if (app.has_working_directory()) ctx.application.working_directory = app.working_directory();
  if (app.has_url()) ctx.application.url = app.url();
  if (app.has_installer()) ctx.application.installer = app.installer();
  if (pb.has_common_data()) ctx.common_data = Bytes::from(std::move(*pb.mutable_common_data()));
  return ctx;
}

Bytes encode_result(const Status& status) {
  ::ember::wire::flame::v1::Result pb;
  if (!status) {
    pb.set_return_code(-1);
    pb.set_message(status.error().to_string());
  }
  return Bytes::from(pb.SerializeAsString());
}

bool is_well_formed(const Bytes& message) {
  ::ember::wire::flame::v1::EmptyRequest pb;
  return pb.ParseFromArray(message.data(), static_cast<int>(message.size()));
}

}  // namespace ember::flame::wire

// WebSocket frame codec (RFC 6455 §5), sans-I/O, server or client role.
//
// Parser: bytes in with feed(), events out through a ParserHandler. Writer:
// frames appended to an IoChain. No sockets, no loop, no extensions: RSV bits
// are always a protocol error here, so a server using this codec must decline
// permessage-deflate (the handshake helpers never accept an extension).
//
// Zero copy on receive. A frame whose payload lies whole inside one fed Bytes
// and that is a whole message (FIN, not a continuation) reaches on_message()
// as a slice of that Bytes. The server role unmasks IN PLACE, so:
//
//   PRECONDITION (server role): the bytes passed to feed() are exclusively
//   the caller's — a freshly read buffer that nothing else reads or holds
//   (no other slice of those bytes is in use elsewhere). The parser writes
//   the unmasked payload over them. Feeding a shared or read-only buffer
//   (a string literal through Bytes::unowned) is undefined.
//
// The one copy: a message spread over several frames (fragmentation), or one
// frame spread over several feed() calls, is gathered into a buffer (from the
// BufferPool when one is given, else the heap), unmasked on the way. The
// buffer grows with the payload that has arrived (doubling; 64 KiB at first
// for large frames), not with what a header claims. A buffer of up to 64 KiB
// is reused for the next gathered message unless the handler kept a
// reference to it; a kept one returns to the pool when its last reference
// goes. So steady traffic allocates nothing when a pool is given (without
// one, only a handler that keeps gathered messages costs an allocation).
// While gathering, gather_tail() names where the next payload bytes go: a
// reader may put them there directly, and feeding a Bytes that sits at that
// address copies nothing.
//
// Every Bytes handed to a callback may be kept (copying it shares, never
// copies); the views (close reason) are valid only during the call.
//
// Decisions where RFC 6455 leaves room (all tested):
// - A length not in its minimal encoding (126 + value < 126, 127 + value
//   < 65536) is rejected with 1002: §5.2 says the minimal number of bytes
//   MUST be used. A 64-bit length with the top bit set is 1002 too.
// - Close codes accepted on the wire: 1000-1003, 1007-1014 (IANA registry),
//   3000-4999. Everything else (<1000, 1004-1006, 1015, 1016-2999, >=5000)
//   is 1002. An empty close payload is reported as code 1005.
// - After a Close frame the parser is closed: feed() consumes and ignores
//   whatever follows (§5.5.1: nothing may follow a Close).
// - Text is validated as it arrives, across fragments and feed() calls, and
//   fails at the first impossible byte (1007) without waiting for the end.
//
// Thread: a Parser or Writer belongs to one thread (the connection's loop).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "ember/buffer_pool.hpp"
#include "ember/bytes.hpp"
#include "ember/io_chain.hpp"
#include "protocols/websocket/utf8.hpp"

namespace ember::websocket {

enum class Role : uint8_t { server, client };

enum class Opcode : uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

// Close status codes (RFC 6455 §7.4.1 and the IANA registry).
namespace close_code {
constexpr uint16_t normal = 1000;
constexpr uint16_t going_away = 1001;
constexpr uint16_t protocol_error = 1002;
constexpr uint16_t unsupported_data = 1003;
constexpr uint16_t no_status = 1005;  // never on the wire: "close had no payload"
constexpr uint16_t abnormal = 1006;   // never on the wire: "connection dropped"
constexpr uint16_t invalid_payload = 1007;
constexpr uint16_t policy_violation = 1008;
constexpr uint16_t too_big = 1009;
constexpr uint16_t mandatory_extension = 1010;
constexpr uint16_t internal_error = 1011;
}  // namespace close_code

// True for codes an endpoint may put in a Close frame (see the header comment).
bool valid_close_code(uint16_t code) noexcept;

struct Limits {
  // Largest payload of one data frame; above it the frame is refused with
  // 1009 as soon as its header arrives. (Control frames are capped at 125
  // bytes by the RFC, whatever this says.)
  size_t max_frame = size_t{1} << 20;
  // Largest message (sum of its fragments' payloads); above it, 1009 as soon
  // as the header of the frame that would cross it arrives.
  size_t max_message = size_t{16} << 20;
};

class ParserHandler {
 public:
  virtual ~ParserHandler() = default;
  // A complete text (valid UTF-8) or binary message.
  virtual void on_message(Opcode opcode, const Bytes& payload) = 0;
  // Control frames, possibly between the fragments of a message. Answering a
  // ping (write_pong) is the caller's job.
  virtual void on_ping(const Bytes& payload) { (void)payload; }
  virtual void on_pong(const Bytes& payload) { (void)payload; }
  // The peer's Close; `code` is no_status (1005) when it sent none. `reason`
  // is valid UTF-8, valid during the call. feed() returns Status::closed
  // right after. Echoing the Close (write_close) is the caller's job.
  virtual void on_close(uint16_t code, std::string_view reason) {
    (void)code;
    (void)reason;
  }
};

class Parser {
 public:
  enum class Status : uint8_t {
    complete,   // all input consumed; no frame left half-read
    need_more,  // all input consumed; a frame is partly read (`wanted` more)
    paused,     // the handler called pause(); feed input.slice(consumed) later
    closed,     // a Close frame was received (now or before)
    error,      // the peer broke the protocol: send Close(code), then close
  };
  struct Result {
    Status status = Status::complete;
    size_t consumed = 0;      // bytes of the input used
    size_t wanted = 0;        // need_more: at least this many bytes still missing
    uint16_t code = 0;        // error: the close code to send
    std::string_view reason;  // error: a static explanation (safe to keep)
  };

  // `handler` and `pool` (may be null) must outlive the parser.
  Parser(Role role, ParserHandler& handler, Limits limits = {}, BufferPool* pool = nullptr);
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;

  // Parses `input` (see the header comment for the server role's in-place
  // precondition) and calls the handler for each event. A handler must not
  // destroy the parser; it may call pause(). After an error every feed()
  // returns the same error and consumes nothing.
  Result feed(const Bytes& input);

  // From inside a callback: feed() returns right after this event.
  void pause() noexcept { paused_ = true; }

  // While a data frame's payload is being gathered: where its next bytes go
  // and how many fit there now (at most the rest of the frame), for a reader
  // that reads in place. The buffer grows as payload arrives (never on a
  // header's word alone), so a large frame may take several such reads.
  // False when no payload is being gathered.
  bool gather_tail(BufferStorage** storage, uint8_t** data, size_t* room);

  bool closed() const noexcept { return state_ == State::closed; }
  bool failed() const noexcept { return state_ == State::failed; }
  // A message has started (fragments or partial frame) but not ended.
  bool in_message() const noexcept { return msg_opcode_ != 0; }
  Role role() const noexcept { return role_; }
  const Limits& limits() const noexcept { return limits_; }

 private:
  enum class State : uint8_t { header, payload, closed, failed };

  Result fail(uint16_t code, std::string_view reason, size_t consumed);
  // Checks the header in `h` and takes the frame's fields from it. With
  // header_len 0 only the first two bytes are there and only they are
  // checked. Returns 0 or a close code (error_reason_ set).
  uint16_t begin_frame(const uint8_t* h, size_t header_len);
  // A data or control frame's payload is complete: deliver it.
  uint16_t end_data_frame();
  uint16_t end_control_frame(const Bytes& payload);
  uint16_t gather(const uint8_t* src, size_t n);
  bool reserve_gather(size_t need);
  void release_gather() noexcept;

  Role role_;
  ParserHandler& handler_;
  Limits limits_;
  BufferPool* pool_;
  State state_ = State::header;
  bool paused_ = false;

  // Header being assembled across feed() calls.
  uint8_t hdr_[14];
  uint8_t hdr_have_ = 0;

  // Current frame.
  uint8_t opcode_ = 0;
  bool fin_ = false;
  bool masked_ = false;
  uint8_t mask_[4] = {};
  uint64_t frame_len_ = 0;
  uint64_t frame_have_ = 0;
  bool gathering_ = false;  // this data frame's payload goes to gather_

  // Current message (data frames).
  uint8_t msg_opcode_ = 0;  // text/binary while a message is open, else 0
  size_t msg_have_ = 0;     // bytes gathered so far
  Utf8Validator utf8_;

  MutableBuffer gather_;
  uint8_t ctrl_[125];  // a control frame's payload split across feed() calls

  std::string_view error_reason_;
  uint16_t error_code_ = 0;
};

// XORs `n` bytes of `src` with the mask into `dst` (which may equal `src`),
// starting at byte `phase` of the 4-byte key; 8 bytes at a time.
void apply_mask(uint8_t* dst, const uint8_t* src, size_t n, const uint8_t mask[4],
                size_t phase) noexcept;

// Encodes a frame header (2..14 bytes) into `out`; returns its length.
// `mask` is null for an unmasked frame.
size_t encode_header(uint8_t out[14], Opcode opcode, bool fin, uint64_t payload_len,
                     const uint8_t* mask) noexcept;

struct WriterOptions {
  // Server role: payloads up to this size are copied into the cork after
  // their header (one iovec instead of two, no reference held). 0 = always
  // by reference.
  size_t inline_payload_max = 0;
};

class Writer {
 public:
  explicit Writer(Role role, WriterOptions options = {});

  // A data frame (text/binary, or continuation for later fragments). Server
  // role: the header is copied into the cork and `payload` is appended by
  // reference (no mask, no copy; it stays alive until out.clear()). Client
  // role: the payload is masked with a fresh key into the cork (a copy).
  // The caller guarantees text is valid UTF-8 (the writer does not check).
  void write_frame(IoChain& out, Opcode opcode, const Bytes& payload, bool fin = true);
  // Control frames copy their payload (at most 125 bytes; longer is cut).
  void write_ping(IoChain& out, std::span<const uint8_t> payload = {});
  void write_pong(IoChain& out, std::span<const uint8_t> payload = {});
  // Close with `code` and `reason` (cut to 123 bytes at a UTF-8 character
  // boundary). code no_status (1005) writes an empty Close.
  void write_close(IoChain& out, uint16_t code, std::string_view reason = {});

  Role role() const noexcept { return role_; }

 private:
  void write_control(IoChain& out, Opcode opcode, const uint8_t* payload, size_t n);
  void next_mask(uint8_t mask[4]);

  Role role_;
  WriterOptions options_;
  // Client role: mask keys come from OpenSSL's CSPRNG, 64 at a time.
  uint8_t keys_[256];
  size_t key_at_ = sizeof keys_;
};

}  // namespace ember::websocket

// Machinery shared by the request and response parsers: head gathering,
// field-line syntax, the framing fields, and body decoding (Content-Length,
// chunked, until close). Not a public API: use RequestParser / ResponseParser.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "ember/bytes.hpp"
#include "protocols/http1/http1.hpp"

namespace ember::http1 {

// Body and end-of-message events, common to both roles.
class MessageHandler {
 public:
  virtual ~MessageHandler() = default;
  // The next piece of the body, in order. A slice of the Bytes given to
  // feed(): no copy, and it may be kept (it holds a reference).
  virtual Action on_body(const Bytes& chunk) = 0;
  // The trailer section of a chunked body, when it has fields. Views are
  // valid until this call returns.
  virtual Action on_trailers(std::span<const Field> trailers) {
    (void)trailers;
    return Action::proceed;
  }
  // The message is complete.
  virtual Action on_complete() = 0;
};

namespace detail {

class ParserCore {
 public:
  ParserCore(const ParserCore&) = delete;
  ParserCore& operator=(const ParserCore&) = delete;

  FeedResult feed(const Bytes& input);
  void resume() noexcept { paused_ = false; }
  bool paused() const noexcept { return paused_; }
  bool failed() const noexcept { return state_ == State::failed; }
  const ParseError& error() const noexcept { return error_; }
  // Between messages with nothing buffered: closing here loses nothing.
  bool idle() const noexcept {
    return state_ == State::head && !block_started_ && !skip_cr_ && lines_ == 0;
  }
  // Back to the initial state (a new connection); buffers are kept.
  void reset() noexcept;

 protected:
  enum class Role : uint8_t { request, response };
  enum class Next : uint8_t { fail, none, length, chunked, until_close, upgraded, interim };
  struct HeadOutcome {
    Next next = Next::fail;
    uint64_t length = 0;
  };
  struct FieldPos {
    uint32_t name_off, name_len, value_off, value_len;
  };
  // Framing and connection fields seen in the head, as offsets from its start.
  struct HeadInfo {
    bool cl_seen = false;
    uint64_t content_length = 0;
    bool te_seen = false;
    bool te_last_chunked = false;
    bool te_other = false;
    uint32_t te_chunked_count = 0;
    bool conn_close = false;
    bool conn_keep_alive = false;
    bool conn_upgrade = false;
    bool upgrade_seen = false;
    uint32_t upgrade_off = 0, upgrade_len = 0;
    uint32_t host_count = 0;
    uint32_t host_off = 0, host_len = 0;
    bool expect_continue = false;
  };

  ParserCore(Role role, const Limits& limits, MessageHandler& handler);
  virtual ~ParserCore() = default;

  // The first line of a head is complete (CRLF excluded, within the limit).
  // Returns false after calling fail().
  virtual bool parse_start_line(const char* line, size_t len) = 0;
  // The head is complete at `base`: validate, build the head, call on_head.
  virtual HeadOutcome finish_head(const char* base) = 0;
  // A final response's message ended (before on_complete is called).
  virtual void message_done() noexcept {}

  bool fail(int status, std::string_view reason) noexcept;
  // End of stream: completes an until-close body; false (and failed) when a
  // message was cut short.
  bool finish_stream();
  void event(Action a) noexcept {
    if (a == Action::pause) paused_ = true;
  }
  std::span<const Field> build_fields(const char* base);
  static std::string_view view(const char* base, uint32_t off, uint32_t len) noexcept {
    return {base + off, len};
  }

  Role role_;
  Limits limits_;
  MessageHandler& handler_;
  HeadInfo info_;

 private:
  enum class State : uint8_t {
    head,
    body_length,
    chunk_line,
    chunk_data,
    chunk_crlf,
    trailers,
    until_close,
    upgraded,
    failed,
  };
  enum class ChunkLine : uint8_t {
    size,
    size_ws,
    ext_pre_name,
    ext_name,
    ext_post_name,
    ext_pre_value,
    ext_token,
    ext_quoted,
    ext_quoted_escape,
    ext_quoted_end,
    ext_post_value,
    lf,
  };
  enum class BlockStatus : uint8_t { more, done, fail };
  struct BlockResult {
    size_t consumed;
    BlockStatus status;
    const char* base;
  };

  BlockResult read_block(const uint8_t* p, size_t n);
  BlockStatus scan_lines(const char* buf, size_t len, size_t* end);
  bool process_line(const char* buf, size_t ls, size_t le);
  bool check_partial(const char* buf, size_t len);
  bool check_method_prefix(const char* line, size_t n);
  bool fail_line_too_long(const char* line);
  bool parse_field(const char* buf, size_t ls, size_t len);
  bool classify(const char* buf, const FieldPos& f);
  void append_gather(const void* data, size_t n);
  size_t read_chunk_line(const uint8_t* p, size_t n);
  void head_block_done(const char* base);
  void trailer_block_done(const char* base);
  void body_piece(const Bytes& input, size_t offset, size_t n);
  void complete_message();
  void start_block() noexcept;
  void reset_message() noexcept;

  State state_ = State::head;
  bool paused_ = false;
  ParseError error_;
  size_t line_limit_;  // limits_.max_request_line, capped by the head limit

  // The head or trailer section being read.
  bool block_started_ = false;
  bool skip_cr_ = false;       // inside an empty line before a start line
  bool block_done_ = false;    // the empty line ending the block was seen
  size_t line_start_ = 0;      // offset of the first unprocessed line
  size_t lines_ = 0;           // lines processed in this block
  size_t method_checked_ = 0;  // start-line bytes check_method_prefix has seen
  bool method_done_ = false;   // it saw the end of the method
  std::vector<FieldPos> field_pos_;
  std::vector<Field> fields_;
  // A block split across feeds is gathered here; kept across messages.
  std::unique_ptr<char[]> gather_;
  size_t gather_cap_ = 0;
  size_t gather_len_ = 0;

  // Body.
  uint64_t remaining_ = 0;   // of the Content-Length body or the current chunk
  uint64_t body_total_ = 0;  // chunked / until-close bytes so far
  ChunkLine chunk_state_ = ChunkLine::size;
  uint64_t chunk_size_ = 0;
  size_t chunk_digits_ = 0;
  size_t chunk_line_len_ = 0;
  bool crlf_cr_ = false;  // chunk_crlf: the CR was seen
};

}  // namespace detail
}  // namespace ember::http1

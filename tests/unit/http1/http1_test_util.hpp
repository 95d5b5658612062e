// Helpers for the HTTP/1.1 codec tests: handlers that record every event as
// owned copies, runners that feed chunks (resuming after pauses), and
// replay of one input at every split with the outcome compared to the
// whole-input run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ember/bytes.hpp"
#include "protocols/http1/request_parser.hpp"
#include "protocols/http1/response_parser.hpp"

namespace ember::http1::test {

using Fields = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method;
  Method method_id = Method::other;
  std::string target, path, query;
  Version version = Version::http1_1;
  Fields fields;
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool keep_alive = false;
  bool expect_continue = false;
  std::string upgrade;
  std::string host;
  std::string body;
  Fields trailers;
  bool complete = false;
  bool operator==(const Request&) const = default;
};

struct Response {
  std::vector<int> interim;  // 1xx statuses before this response
  Version version = Version::http1_1;
  int status = 0;
  std::string reason;
  Fields fields;
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool until_close = false;
  bool has_body = false;
  bool keep_alive = false;
  std::string upgrade;
  std::string body;
  Fields trailers;
  bool complete = false;
  bool operator==(const Response&) const = default;
};

// Which events the handler answers with Action::pause.
enum class PauseOn { nothing, complete, every_event };

struct Outcome {
  std::vector<Request> requests;
  std::vector<Response> responses;
  bool failed = false;
  int status = 0;  // error().status
  std::string reason;
  // Stream offsets where feed() stopped after a pause from on_complete.
  std::vector<size_t> complete_pauses;
  // Response parser: offset where it reported upgraded, and the bytes after.
  std::optional<size_t> upgraded_at;
  std::string rest;
  // Response parser: what finish() returned.
  bool finished_clean = true;
  bool idle_at_end = false;

  // Not compared across splits (they depend on the split by design).
  size_t body_pieces = 0;
  size_t body_outside_input = 0;  // pieces not pointing into the chunk being fed
  size_t heads_in_place = 0;      // heads whose views point into the fed chunk
  size_t feed_contract_broken = 0;

  bool same_as(const Outcome& o) const {
    return requests == o.requests && responses == o.responses && failed == o.failed &&
           status == o.status && reason == o.reason && complete_pauses == o.complete_pauses &&
           upgraded_at == o.upgraded_at && rest == o.rest && finished_clean == o.finished_clean &&
           idle_at_end == o.idle_at_end;
  }
};

Outcome run_requests(const std::vector<Bytes>& chunks, const Limits& limits = {},
                     PauseOn pause = PauseOn::nothing);
// `methods[i]` is the request method of response i (GET past the end).
Outcome run_responses(const std::vector<Bytes>& chunks, const Limits& limits = {},
                      std::vector<Method> methods = {}, PauseOn pause = PauseOn::nothing,
                      bool finish = true);

// Runs `wire` whole and at every split (whole, two pieces at every offset,
// chunks of every size), checks every run gives the same outcome as the
// whole run, and that no body piece was copied. Returns the whole run.
// Inputs above `max_all_splits` bytes are cut in two at every offset and
// into chunks of sizes 1..64 and a few larger ones instead (O(n^2) otherwise).
Outcome replay_requests(const std::string& wire, const Limits& limits = {},
                        PauseOn pause = PauseOn::nothing);
Outcome replay_responses(const std::string& wire, const Limits& limits = {},
                         std::vector<Method> methods = {}, PauseOn pause = PauseOn::nothing,
                         bool finish = true);

std::vector<std::vector<Bytes>> splits_of(const Bytes& input);

}  // namespace ember::http1::test

// WebSocket opening handshake (RFC 6455 §4), both sides, without an HTTP
// parser: the caller's HTTP/1.1 layer parses the request or response and
// passes the header values as string_views (empty = absent), and says
// whether Sec-WebSocket-Key or Sec-WebSocket-Version came more than once.
//
// Extensions: none are supported. The server never echoes
// Sec-WebSocket-Extensions (so permessage-deflate offers are declined, which
// is always correct), and the client refuses a 101 that names one.
//
// No allocation: the accept value and client key are fixed-size values; the
// writers append to an IoChain's cork.
//
// Thread: pure functions; make_client_key() uses OpenSSL's thread-safe CSPRNG.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "ember/expected.hpp"
#include "ember/io_chain.hpp"

namespace ember::websocket {

// What refused a handshake. Server side: the HTTP status to answer with
// (400, or 426 with "Sec-WebSocket-Version: 13"; write_handshake_error()
// writes it). Client side: status is 0, the reason says what was wrong.
struct HandshakeError {
  int status = 400;
  std::string_view reason;  // static text
};

// A base64 value of fixed length (28 for Sec-WebSocket-Accept, 24 for a key).
template <size_t N>
struct Base64Value {
  char text[N];
  std::string_view view() const noexcept { return {text, N}; }
};
using AcceptValue = Base64Value<28>;
using ClientKey = Base64Value<24>;

// ---- server ----------------------------------------------------------------

struct UpgradeRequest {
  std::string_view method;  // must be "GET"
  int http_major = 1;       // must be 1.1 or later
  int http_minor = 1;
  std::string_view upgrade;     // token list containing "websocket" (any case)
  std::string_view connection;  // token list containing "upgrade" (any case)
  std::string_view key;         // Sec-WebSocket-Key: base64 of 16 bytes
  std::string_view version;     // Sec-WebSocket-Version: must be "13"
  // Sec-WebSocket-Key or -Version appeared on more than one field line
  // (RFC 6455 §11.3.1, §11.3.5: at most once): refused with 400.
  bool repeated = false;
};

// Checks a client's opening handshake. On success returns the
// Sec-WebSocket-Accept value. Errors: 400 for a method other than GET, HTTP
// before 1.1, Upgrade without "websocket", Connection without "upgrade", a
// repeated key or version, a key that is missing or does not decode to
// exactly 16 bytes; 426 for a
// missing or unsupported Sec-WebSocket-Version (the client learns 13).
Expected<AcceptValue, HandshakeError> validate_upgrade(const UpgradeRequest& request) noexcept;

// SHA-1 of key + the RFC's GUID, base64: the Sec-WebSocket-Accept for `key`.
AcceptValue compute_accept(std::string_view key) noexcept;

// The subprotocol to answer with: the first entry of the client's
// Sec-WebSocket-Protocol list (`offered`, comma-separated) that is in
// `supported` (compared exactly: subprotocol names are case-sensitive).
// Empty when none matches — then the response carries no protocol header.
// The result views `supported`'s storage.
std::string_view select_subprotocol(std::string_view offered,
                                    std::span<const std::string_view> supported) noexcept;

// Appends "HTTP/1.1 101 Switching Protocols" with Upgrade, Connection,
// Sec-WebSocket-Accept and, when not empty, Sec-WebSocket-Protocol.
void write_accept_response(IoChain& out, const AcceptValue& accept, std::string_view protocol = {});
// Appends the refusal: status line, Connection: close, Content-Length: 0,
// and for 426 the Sec-WebSocket-Version: 13 header.
void write_handshake_error(IoChain& out, const HandshakeError& error);

// ---- client ----------------------------------------------------------------

// 16 random bytes (OpenSSL's CSPRNG), base64.
ClientKey make_client_key() noexcept;
// The key for given bytes (tests, reproducible runs).
ClientKey make_client_key(std::span<const uint8_t, 16> nonce) noexcept;

struct ClientRequest {
  std::string_view host;          // Host header, required
  std::string_view target = "/";  // request-target
  std::string_view protocols;     // Sec-WebSocket-Protocol list; empty = none
  std::string_view origin;        // Origin; empty = none
};

// Appends the GET upgrade request. Returns false (and appends nothing) when
// a value is empty where required or contains CR, LF or NUL.
bool write_upgrade_request(IoChain& out, const ClientRequest& request, const ClientKey& key);

struct UpgradeResponse {
  int status = 0;  // must be 101
  std::string_view upgrade;
  std::string_view connection;
  std::string_view accept;      // Sec-WebSocket-Accept
  std::string_view protocol;    // Sec-WebSocket-Protocol, empty when absent
  std::string_view extensions;  // Sec-WebSocket-Extensions, must be absent
};

// Checks the server's answer to a request made with `key` and `offered`
// protocols (the list that was sent). Errors carry status 0 and a reason.
Expected<void, HandshakeError> verify_upgrade_response(const UpgradeResponse& response,
                                                       const ClientKey& key,
                                                       std::string_view offered = {}) noexcept;

// ---- helpers -----------------------------------------------------------------

// True when the comma-separated `list` has `token` (ASCII case-insensitive,
// surrounding spaces and tabs ignored).
bool has_token(std::string_view list, std::string_view token) noexcept;

}  // namespace ember::websocket

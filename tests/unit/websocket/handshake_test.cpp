// The opening handshake: the RFC's accept example, every refusal with its
// HTTP status, subprotocol choice, exact bytes of both writers, and the
// client's checks of the 101.
#include <gtest/gtest.h>

#include <string>

#include "protocols/websocket/handshake.hpp"
#include "tests/unit/test_util.hpp"

namespace ember::websocket {
namespace {

using ember::test::flatten;

constexpr std::string_view kRfcKey = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view kRfcAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

UpgradeRequest good_request() {
  UpgradeRequest r;
  r.method = "GET";
  r.upgrade = "websocket";
  r.connection = "Upgrade";
  r.key = kRfcKey;
  r.version = "13";
  return r;
}

TEST(WsHandshake, RfcExampleAccept) {
  EXPECT_EQ(compute_accept(kRfcKey).view(), kRfcAccept);
  auto accept = validate_upgrade(good_request());
  ASSERT_TRUE(accept.has_value());
  EXPECT_EQ(accept->view(), kRfcAccept);
}

TEST(WsHandshake, TolerantWhereHttpIs) {
  UpgradeRequest r = good_request();
  r.upgrade = "WebSocket";
  r.connection = "keep-alive, Upgrade";
  r.key = "  dGhlIHNhbXBsZSBub25jZQ==\t";
  r.version = " 13 ";
  r.http_minor = 1;
  auto accept = validate_upgrade(r);
  ASSERT_TRUE(accept.has_value()) << accept.error().reason;
  EXPECT_EQ(accept->view(), kRfcAccept);
  r.connection = "UPGRADE,keep-alive";
  r.upgrade = "foo/1, websocket";
  r.http_major = 2;  // a later HTTP/1.x-style version is fine too
  r.http_minor = 0;
  EXPECT_TRUE(validate_upgrade(r).has_value());
}

TEST(WsHandshake, RefusalsWithTheirStatus) {
  struct Case {
    const char* name;
    void (*edit)(UpgradeRequest&);
    int status;
  };
  const Case cases[] = {
      {"POST", [](UpgradeRequest& r) { r.method = "POST"; }, 400},
      {"lowercase get", [](UpgradeRequest& r) { r.method = "get"; }, 400},
      {"HTTP/1.0", [](UpgradeRequest& r) { r.http_minor = 0; }, 400},
      {"HTTP/0.9",
       [](UpgradeRequest& r) {
         r.http_major = 0;
         r.http_minor = 9;
       },
       400},
      {"no Upgrade", [](UpgradeRequest& r) { r.upgrade = {}; }, 400},
      {"Upgrade: h2c", [](UpgradeRequest& r) { r.upgrade = "h2c"; }, 400},
      {"Upgrade: websockets", [](UpgradeRequest& r) { r.upgrade = "websockets"; }, 400},
      {"no Connection", [](UpgradeRequest& r) { r.connection = {}; }, 400},
      {"Connection: keep-alive", [](UpgradeRequest& r) { r.connection = "keep-alive"; }, 400},
      {"Connection: upgraded", [](UpgradeRequest& r) { r.connection = "upgraded"; }, 400},
      {"no key", [](UpgradeRequest& r) { r.key = {}; }, 400},
      {"key of 15 bytes", [](UpgradeRequest& r) { r.key = "AAAAAAAAAAAAAAAAAAAA"; }, 400},
      {"key of 17 bytes", [](UpgradeRequest& r) { r.key = "AAAAAAAAAAAAAAAAAAAAAAA="; }, 400},
      {"key without padding", [](UpgradeRequest& r) { r.key = "dGhlIHNhbXBsZSBub25jZQ"; }, 400},
      {"key with a bad digit", [](UpgradeRequest& r) { r.key = "dGhlIHNhbXBsZSBub25jZ*=="; }, 400},
      {"repeated key, joined",
       [](UpgradeRequest& r) { r.key = "dGhlIHNhbXBsZSBub25jZQ==, dGhlIHNhbXBsZSBub25jZQ=="; },
       400},
      {"key or version on two lines", [](UpgradeRequest& r) { r.repeated = true; }, 400},
      {"version 8", [](UpgradeRequest& r) { r.version = "8"; }, 426},
      {"version 14", [](UpgradeRequest& r) { r.version = "14"; }, 426},
      {"version list", [](UpgradeRequest& r) { r.version = "13, 8"; }, 426},
      {"no version", [](UpgradeRequest& r) { r.version = {}; }, 426},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    UpgradeRequest r = good_request();
    c.edit(r);
    auto result = validate_upgrade(r);
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().status, c.status);
    EXPECT_FALSE(result.error().reason.empty());
  }
}

TEST(WsHandshake, ErrorResponses) {
  IoChain out;
  write_handshake_error(out, HandshakeError{426, "x"});
  EXPECT_EQ(flatten(out),
            "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n"
            "Connection: close\r\nContent-Length: 0\r\n\r\n");
  out.clear();
  write_handshake_error(out, HandshakeError{400, "x"});
  EXPECT_EQ(flatten(out),
            "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
}

TEST(WsHandshake, AcceptResponseBytes) {
  IoChain out;
  write_accept_response(out, compute_accept(kRfcKey));
  EXPECT_EQ(flatten(out),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
  out.clear();
  write_accept_response(out, compute_accept(kRfcKey), "chat");
  EXPECT_EQ(flatten(out),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            "Sec-WebSocket-Protocol: chat\r\n\r\n");
}

TEST(WsHandshake, SubprotocolIsTheClientsFirstSupported) {
  const std::string_view supported[] = {"superchat", "chat"};
  EXPECT_EQ(select_subprotocol("chat, superchat", supported), "chat");
  EXPECT_EQ(select_subprotocol(" superchat ,chat", supported), "superchat");
  EXPECT_EQ(select_subprotocol("v2.bin, chat", supported), "chat");
  EXPECT_EQ(select_subprotocol("Chat", supported), "");  // case-sensitive
  EXPECT_EQ(select_subprotocol("", supported), "");
  EXPECT_EQ(select_subprotocol(",, ,", supported), "");
  EXPECT_EQ(select_subprotocol("chat", {}), "");
  // The result views the server's table, not the request.
  EXPECT_EQ(select_subprotocol("chat", supported).data(), supported[1].data());
}

TEST(WsHandshake, TokenLists) {
  EXPECT_TRUE(has_token("a, B ,c", "b"));
  EXPECT_TRUE(has_token("\tupgrade\t", "Upgrade"));
  EXPECT_FALSE(has_token("upgrade2", "upgrade"));
  EXPECT_FALSE(has_token("", "upgrade"));
  EXPECT_FALSE(has_token("up grade", "upgrade"));
}

TEST(WsHandshake, ClientKey) {
  const uint8_t nonce[16] = {'t', 'h', 'e', ' ', 's', 'a', 'm', 'p',
                             'l', 'e', ' ', 'n', 'o', 'n', 'c', 'e'};
  EXPECT_EQ(make_client_key(std::span<const uint8_t, 16>(nonce)).view(), kRfcKey);
  ClientKey a = make_client_key(), b = make_client_key();
  EXPECT_NE(a.view(), b.view());
  UpgradeRequest r = good_request();
  r.key = a.view();
  EXPECT_TRUE(validate_upgrade(r).has_value());
}

ClientRequest client_request(std::string_view host, std::string_view target = "/",
                             std::string_view protocols = {}, std::string_view origin = {}) {
  ClientRequest r;
  r.host = host;
  r.target = target;
  r.protocols = protocols;
  r.origin = origin;
  return r;
}

TEST(WsHandshake, UpgradeRequestBytes) {
  IoChain out;
  ClientKey key = make_client_key(
      std::span<const uint8_t, 16>(reinterpret_cast<const uint8_t*>("the sample nonce"), 16));
  ASSERT_TRUE(write_upgrade_request(out, client_request("server.example.com", "/chat"), key));
  EXPECT_EQ(flatten(out),
            "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n");
  out.clear();
  ASSERT_TRUE(write_upgrade_request(
      out, client_request("h:8080", "/x?y=1", "chat, superchat", "http://example.com"), key));
  EXPECT_EQ(flatten(out),
            "GET /x?y=1 HTTP/1.1\r\nHost: h:8080\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
            "Origin: http://example.com\r\n\r\n");
}

TEST(WsHandshake, UpgradeRequestRefusesInjection) {
  ClientKey key = make_client_key();
  IoChain out;
  EXPECT_FALSE(write_upgrade_request(out, client_request(""), key));
  EXPECT_FALSE(write_upgrade_request(out, client_request("h\r\nX-Evil: 1"), key));
  EXPECT_FALSE(write_upgrade_request(out, client_request("h", "/a b"), key));
  EXPECT_FALSE(write_upgrade_request(out, client_request("h", ""), key));
  EXPECT_FALSE(write_upgrade_request(out, client_request("h", "/", "a\nb"), key));
  EXPECT_FALSE(
      write_upgrade_request(out, client_request("h", "/", {}, std::string_view("o\0x", 3)), key));
  EXPECT_TRUE(out.empty());
}

TEST(WsHandshake, ClientVerifiesTheResponse) {
  ClientKey key = make_client_key(
      std::span<const uint8_t, 16>(reinterpret_cast<const uint8_t*>("the sample nonce"), 16));
  UpgradeResponse ok{.status = 101,
                     .upgrade = "websocket",
                     .connection = "Upgrade",
                     .accept = kRfcAccept,
                     .protocol = {},
                     .extensions = {}};
  EXPECT_TRUE(verify_upgrade_response(ok, key).has_value());
  auto refused = [&](UpgradeResponse r, std::string_view offered = {}) {
    auto v = verify_upgrade_response(r, key, offered);
    return !v.has_value() && v.error().status == 0 && !v.error().reason.empty();
  };
  UpgradeResponse r = ok;
  r.status = 200;
  EXPECT_TRUE(refused(r));
  r = ok;
  r.upgrade = "h2c";
  EXPECT_TRUE(refused(r));
  r = ok;
  r.connection = "close";
  EXPECT_TRUE(refused(r));
  r = ok;
  r.accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOO=";
  EXPECT_TRUE(refused(r));
  r = ok;
  r.accept = {};
  EXPECT_TRUE(refused(r));
  r = ok;
  r.extensions = "permessage-deflate";
  EXPECT_TRUE(refused(r));
  r = ok;
  r.protocol = "chat";
  EXPECT_TRUE(refused(r));  // nothing was offered
  EXPECT_TRUE(refused(r, "superchat"));
  EXPECT_TRUE(verify_upgrade_response(r, key, "superchat, chat").has_value());
  r.protocol = "chat, superchat";  // the server must pick one
  EXPECT_TRUE(refused(r, "superchat, chat"));
}

TEST(WsHandshake, ServerAndClientAgree) {
  for (int i = 0; i < 50; ++i) {
    ClientKey key = make_client_key();
    UpgradeRequest req = good_request();
    req.key = key.view();
    auto accept = validate_upgrade(req);
    ASSERT_TRUE(accept.has_value());
    UpgradeResponse resp{.status = 101,
                         .upgrade = "websocket",
                         .connection = "Upgrade",
                         .accept = accept->view(),
                         .protocol = {},
                         .extensions = {}};
    EXPECT_TRUE(verify_upgrade_response(resp, key).has_value());
  }
}

}  // namespace
}  // namespace ember::websocket

"""Hostile WebSocket input over raw sockets: each case sends frames after a
good handshake (or a broken handshake) and expects the Close code RFC 6455
gives (section 7.4.1), then the connection's end; a fresh WebSocket and a
fresh HTTP request are served after every case.

Limits in this module's config: ws_max_frame 64k, ws_max_message 256k.
"""

import socket
import threading

import pytest

import edge
from edge import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, ws_close_payload,
                  ws_frame)

LIMITS = {"ws_max_frame": "64k", "ws_max_message": "256k"}
MAX_FRAME = 64 * 1024
MAX_MESSAGE = 256 * 1024


@pytest.fixture(scope="module")
def server(start_server):
    return start_server(tls=False, limits=LIMITS)


PROTOCOL_ERROR, INVALID_PAYLOAD, TOO_BIG = 1002, 1007, 1009


def fragments(op, parts):
    """A fragmented message: first frame `op`, then continuations."""
    out = b""
    for i, p in enumerate(parts):
        out += ws_frame(op if i == 0 else OP_CONT, p, fin=i == len(parts) - 1)
    return out


def close(code, reason=b""):
    return ws_frame(OP_CLOSE, ws_close_payload(code, reason))


# (id, bytes sent after the handshake, expected Close code from the server)
CASES = [
    # ---- framing (RFC 6455 5.2, 5.1) ----
    ("unmasked-text", ws_frame(OP_TEXT, b"hi", mask=False), PROTOCOL_ERROR),
    ("unmasked-binary", ws_frame(OP_BINARY, b"hi", mask=False), PROTOCOL_ERROR),
    ("unmasked-ping", ws_frame(OP_PING, b"hi", mask=False), PROTOCOL_ERROR),
    ("unmasked-close", ws_frame(OP_CLOSE, ws_close_payload(1000), mask=False), PROTOCOL_ERROR),
    ("rsv1-set", ws_frame(OP_TEXT, b"hi", rsv=4), PROTOCOL_ERROR),
    ("rsv2-set", ws_frame(OP_TEXT, b"hi", rsv=2), PROTOCOL_ERROR),
    ("rsv3-set", ws_frame(OP_TEXT, b"hi", rsv=1), PROTOCOL_ERROR),
    ("rsv-on-ping", ws_frame(OP_PING, b"hi", rsv=4), PROTOCOL_ERROR),
    ("opcode-3", ws_frame(3, b"x"), PROTOCOL_ERROR),
    ("opcode-4", ws_frame(4, b"x"), PROTOCOL_ERROR),
    ("opcode-5", ws_frame(5, b"x"), PROTOCOL_ERROR),
    ("opcode-6", ws_frame(6, b"x"), PROTOCOL_ERROR),
    ("opcode-7", ws_frame(7, b"x"), PROTOCOL_ERROR),
    ("opcode-b", ws_frame(0xB, b"x"), PROTOCOL_ERROR),
    ("opcode-c", ws_frame(0xC, b"x"), PROTOCOL_ERROR),
    ("opcode-d", ws_frame(0xD, b"x"), PROTOCOL_ERROR),
    ("opcode-e", ws_frame(0xE, b"x"), PROTOCOL_ERROR),
    ("opcode-f", ws_frame(0xF, b"x"), PROTOCOL_ERROR),
    ("length-16-not-minimal", ws_frame(OP_TEXT, b"short", length_form=16), PROTOCOL_ERROR),
    ("length-64-not-minimal", ws_frame(OP_BINARY, b"x" * 300, length_form=64), PROTOCOL_ERROR),
    ("length-64-high-bit", ws_frame(OP_BINARY, b"", length_form=64, length=1 << 63), PROTOCOL_ERROR),
    ("length-64-huge", ws_frame(OP_BINARY, b"", length_form=64, length=1 << 40), TOO_BIG),
    ("frame-over-max-frame", ws_frame(OP_BINARY, b"f" * (MAX_FRAME + 1)), TOO_BIG),
    ("message-over-max-message",
     fragments(OP_BINARY, [b"m" * MAX_FRAME] * 4 + [b"m"]), TOO_BIG),
    ("text-message-over-max-message",
     fragments(OP_TEXT, [b"t" * MAX_FRAME] * 4 + [b"t"]), TOO_BIG),
    # ---- fragmentation (RFC 6455 5.4) ----
    ("continuation-without-start", ws_frame(OP_CONT, b"x"), PROTOCOL_ERROR),
    ("final-continuation-without-start", ws_frame(OP_CONT, b"x", fin=True), PROTOCOL_ERROR),
    ("text-inside-fragmented-text", ws_frame(OP_TEXT, b"a", fin=False) + ws_frame(OP_TEXT, b"b"),
     PROTOCOL_ERROR),
    ("binary-inside-fragmented-text",
     ws_frame(OP_TEXT, b"a", fin=False) + ws_frame(OP_BINARY, b"b"), PROTOCOL_ERROR),
    ("text-inside-fragmented-binary",
     ws_frame(OP_BINARY, b"a", fin=False) + ws_frame(OP_TEXT, b"b"), PROTOCOL_ERROR),
    # ---- control frames (RFC 6455 5.5) ----
    ("fragmented-ping", ws_frame(OP_PING, b"p", fin=False), PROTOCOL_ERROR),
    ("fragmented-pong", ws_frame(OP_PONG, b"p", fin=False), PROTOCOL_ERROR),
    ("fragmented-close", ws_frame(OP_CLOSE, ws_close_payload(1000), fin=False), PROTOCOL_ERROR),
    ("ping-126-bytes", ws_frame(OP_PING, b"p" * 126), PROTOCOL_ERROR),
    ("pong-126-bytes", ws_frame(OP_PONG, b"p" * 126), PROTOCOL_ERROR),
    ("close-126-bytes", ws_frame(OP_CLOSE, ws_close_payload(1000, b"r" * 124)), PROTOCOL_ERROR),
    ("ping-16-bit-length-form", ws_frame(OP_PING, b"p" * 10, length_form=16), PROTOCOL_ERROR),
    # ---- close frames (RFC 6455 5.5.1, 7.4) ----
    ("close-one-byte", ws_frame(OP_CLOSE, b"\x03"), PROTOCOL_ERROR),
    ("close-code-0", close(0), PROTOCOL_ERROR),
    ("close-code-999", close(999), PROTOCOL_ERROR),
    ("close-code-1004", close(1004), PROTOCOL_ERROR),
    ("close-code-1005", close(1005), PROTOCOL_ERROR),
    ("close-code-1006", close(1006), PROTOCOL_ERROR),
    ("close-code-1015", close(1015), PROTOCOL_ERROR),
    ("close-code-1016", close(1016), PROTOCOL_ERROR),
    ("close-code-2999", close(2999), PROTOCOL_ERROR),
    ("close-code-5000", close(5000), PROTOCOL_ERROR),
    ("close-code-65535", close(65535), PROTOCOL_ERROR),
    ("close-reason-bad-utf8", close(1000, b"\xff\xfe"), INVALID_PAYLOAD),
    # ---- UTF-8 in text (RFC 6455 8.1, RFC 3629) ----
    ("text-invalid-byte", ws_frame(OP_TEXT, b"ok \xff"), INVALID_PAYLOAD),
    ("text-overlong-slash", ws_frame(OP_TEXT, b"\xc0\xaf"), INVALID_PAYLOAD),
    ("text-overlong-3-byte", ws_frame(OP_TEXT, b"\xe0\x80\xaf"), INVALID_PAYLOAD),
    ("text-surrogate", ws_frame(OP_TEXT, b"\xed\xa0\x80"), INVALID_PAYLOAD),
    ("text-over-10ffff", ws_frame(OP_TEXT, b"\xf4\x90\x80\x80"), INVALID_PAYLOAD),
    ("text-bad-continuation", ws_frame(OP_TEXT, b"\xe2\x28\xa1"), INVALID_PAYLOAD),
    ("text-truncated-at-end", ws_frame(OP_TEXT, b"euro \xe2\x82"), INVALID_PAYLOAD),
    ("text-lone-continuation-byte", ws_frame(OP_TEXT, b"\x80"), INVALID_PAYLOAD),
    ("text-invalid-in-second-fragment",
     fragments(OP_TEXT, [b"fine ", b"\xff bad"]), INVALID_PAYLOAD),
    ("text-truncated-across-end-of-fragments",
     fragments(OP_TEXT, [b"\xe2", b"\x82"]), INVALID_PAYLOAD),
]

# Peer behaviour that is correct and must be answered in kind.
GOOD = [
    ("ping-gets-pong", ws_frame(OP_PING, b"ping data"), [(OP_PONG, b"ping data")]),
    ("ping-125-bytes", ws_frame(OP_PING, b"q" * 125), [(OP_PONG, b"q" * 125)]),
    ("empty-ping", ws_frame(OP_PING, b""), [(OP_PONG, b"")]),
    ("unsolicited-pong-ignored", ws_frame(OP_PONG, b"x") + ws_frame(OP_TEXT, b"after"),
     [(OP_TEXT, b"after")]),
    ("empty-text", ws_frame(OP_TEXT, b""), [(OP_TEXT, b"")]),
    ("ping-between-fragments",
     ws_frame(OP_TEXT, b"frag", fin=False) + ws_frame(OP_PING, b"mid") + ws_frame(OP_CONT, b"ment"),
     [(OP_PONG, b"mid"), (OP_TEXT, b"fragment")]),
    ("utf8-split-across-fragments", fragments(OP_TEXT, [b"\xe2", b"\x82", b"\xac"]),
     [(OP_TEXT, b"\xe2\x82\xac")]),
    ("frame-at-max-frame", ws_frame(OP_BINARY, b"f" * MAX_FRAME), [(OP_BINARY, b"f" * MAX_FRAME)]),
    ("message-at-max-message", fragments(OP_BINARY, [b"m" * MAX_FRAME] * 4),
     [(OP_BINARY, b"m" * MAX_MESSAGE)]),
    ("many-small-fragments", fragments(OP_BINARY, [bytes([i]) for i in range(200)]),
     [(OP_BINARY, bytes(range(200)))]),
    ("max-length-zero-mask", ws_frame(OP_TEXT, b"zero mask", key=b"\0\0\0\0"),
     [(OP_TEXT, b"zero mask")]),
]

# Close handshakes a client may start: the code the server echoes.
CLOSES = [
    ("close-1000", close(1000, b"bye"), 1000),
    ("close-no-payload", ws_frame(OP_CLOSE, b""), 1000),
    ("close-1001", close(1001), 1001),
    ("close-1003", close(1003), 1003),
    ("close-1007", close(1007), 1007),
    ("close-1011", close(1011), 1011),
    ("close-1014", close(1014), 1014),
    ("close-3000", close(3000), 3000),
    ("close-4999", close(4999), 4999),
]


def send(sock, data):
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def after_case(server):
    edge.ws_assert_serves(server.port)
    edge.assert_serves(server)


@pytest.mark.parametrize("data,code", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_frames(server, data, code):
    ws = edge.WS(server.port)
    send(ws.sock, data)
    got, _ = ws.expect_close()
    assert got == code
    # After a protocol error the server closes without waiting for our Close.
    assert edge.closed_by_peer(ws.sock)
    ws.close()
    after_case(server)


@pytest.mark.parametrize("data,replies", [c[1:] for c in GOOD], ids=[c[0] for c in GOOD])
def test_good_frames(server, data, replies):
    ws = edge.WS(server.port)
    ws.send(data)
    for want in replies:
        assert ws.read_message() == want
    ws.send(close(1000))
    assert ws.expect_close()[0] == 1000
    assert edge.closed_by_peer(ws.sock)
    ws.close()
    after_case(server)


@pytest.mark.parametrize("data,code", [c[1:] for c in CLOSES], ids=[c[0] for c in CLOSES])
def test_client_close_echoed(server, data, code):
    ws = edge.WS(server.port)
    ws.send(ws_frame(OP_TEXT, b"before close"))
    assert ws.read_message() == (OP_TEXT, b"before close")
    ws.send(data)
    got, _ = ws.expect_close()
    assert got == code
    assert edge.closed_by_peer(ws.sock)
    ws.close()
    after_case(server)


def test_frames_after_close_ignored(server):
    ws = edge.WS(server.port)
    ws.send(close(1000) + ws_frame(OP_TEXT, b"too late"))
    code, _ = ws.expect_close()
    assert code == 1000
    assert edge.closed_by_peer(ws.sock)
    ws.close()


def test_frames_with_handshake_in_one_write(server):
    s = edge.connect(server.port)
    s.sendall(edge.ws_upgrade_request() + ws_frame(OP_TEXT, b"eager"))
    ws = edge.WS.__new__(edge.WS)
    ws.sock = s
    ws.reader = edge.Reader(s)
    resp = edge.read_response(ws.reader)
    assert resp.status == 101
    assert ws.read_message() == (OP_TEXT, b"eager")
    s.close()


# (id, upgrade request, expected status)
HANDSHAKES = [
    ("missing-key", b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Version: 13\r\n\r\n", 400),
    ("key-not-16-bytes", edge.ws_upgrade_request(key="c2hvcnQ="), 400),
    ("key-not-base64", edge.ws_upgrade_request(key="!!!!!!!!!!!!!!!!!!!!!!=="), 400),
    ("version-8", edge.ws_upgrade_request(version="8"), 426),
    ("version-missing", b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", 426),
    ("method-post", edge.ws_upgrade_request().replace(b"GET /ws", b"POST /ws", 1), 400),
    ("http-1.0", edge.ws_upgrade_request().replace(b"HTTP/1.1", b"HTTP/1.0", 1), 400),
    # Without Connection: Upgrade it is a plain GET of a WebSocket resource.
    ("no-connection-upgrade", b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              b"Sec-WebSocket-Version: 13\r\n\r\n", 426),
    ("plain-get", b"GET /ws HTTP/1.1\r\nHost: t\r\n\r\n", 426),
    # RFC 6455 11.3.1, 11.3.5: these two MUST NOT appear more than once.
    ("key-twice", edge.ws_upgrade_request(extra="Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"),
     400),
    ("key-twice-same", edge.ws_upgrade_request(extra="Sec-WebSocket-Key: %s\r\n" % edge.WS_KEY),
     400),
    ("version-twice", edge.ws_upgrade_request(extra="Sec-WebSocket-Version: 13\r\n"), 400),
    ("version-twice-other", edge.ws_upgrade_request(extra="Sec-WebSocket-Version: 8\r\n"), 400),
]


@pytest.mark.parametrize("raw,status", [h[1:] for h in HANDSHAKES], ids=[h[0] for h in HANDSHAKES])
def test_bad_handshake(server, raw, status):
    resp, r = edge.http1_request(server.port, raw)
    assert resp.status == status, resp
    if status == 426:
        # RFC 9110 15.5.22 / RFC 6455 4.4: say what to upgrade to.
        assert (resp.header("upgrade") == "websocket"
                or resp.header("sec-websocket-version") == "13"), resp
    if raw.find(b"Connection: Upgrade") >= 0:
        assert resp.header("connection") == "close"
        assert r.at_eof()
    r.sock.close()
    after_case(server)


def test_upgrade_on_http_route_is_ignored(server):
    # /echo is not a WebSocket flare: the request is answered as HTTP.
    resp, r = edge.http1_request(server.port, edge.ws_upgrade_request("/echo"))
    assert resp.status == 200 and resp.header("x-echo-method") == "GET"
    r.sock.close()


def test_server_close_then_client_reply_ends_connection(start_server):
    srv = start_server(tls=False, limits={"ws_idle_timeout": "3s"})
    ws = edge.WS(srv.port)
    code, reason = ws.expect_close()  # idle: 1001 Going Away
    assert code == 1001
    ws.send(close(1001))
    # RFC 6455 7.1.1: having sent and received a Close, the server closes TCP
    # at once (not when some timer, here the 3s idle one, runs out).
    assert edge.closed_by_peer(ws.sock, timeout=1.0)
    ws.close()


def test_case_count():
    assert len(CASES) + len(GOOD) + len(CLOSES) + len(HANDSHAKES) >= 50
    assert len(CASES) >= 50


def test_other_connection_served_during_attack(server):
    good = edge.WS(server.port)
    stop = threading.Event()
    errors = []

    def attack():
        while not stop.is_set():
            for _, data, code in CASES:
                if stop.is_set():
                    break
                try:
                    ws = edge.WS(server.port)
                    send(ws.sock, data)
                    got, _ = ws.expect_close()
                    if got != code:
                        errors.append("got %s, wanted %s" % (got, code))
                    ws.close()
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(repr(e))

    t = threading.Thread(target=attack)
    t.start()
    try:
        for i in range(100):
            msg = b"good %d" % i
            good.send(ws_frame(OP_BINARY if i % 2 else OP_TEXT, msg))
            assert good.read_message() == (OP_BINARY if i % 2 else OP_TEXT, msg)
    finally:
        stop.set()
        t.join(timeout=120)
    assert not errors, errors[:5]
    good.send(close(1000))
    assert good.expect_close()[0] == 1000
    good.close()


def test_slow_reader_does_not_stall_others(server):
    # A client that sends a lot and never reads its echoes: the server stops
    # reading it (backpressure) while another connection is served.
    hog = edge.WS(server.port)
    hog.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hog.sock.settimeout(2)
    payload = ws_frame(OP_BINARY, b"h" * 60000)
    sent = 0
    try:
        for _ in range(1000):  # 60 MB offered; the server must push back
            hog.sock.sendall(payload)
            sent += 1
    except socket.timeout:
        pass
    assert sent < 1000, "the server read 60 MB without the client reading anything"
    edge.ws_assert_serves(server.port)
    edge.assert_serves(server)
    hog.close()

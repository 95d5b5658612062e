"""Hostile HTTP/1.1 input over raw sockets, each case with the answer RFC
9110/9112 gives (or, where the RFC leaves a choice, the one this server
documents), and a fresh well-formed request served after every case.

Limits in this module's config: max_request_line 1k, max_header_bytes 4k,
max_headers 20, max_body 64k, header_timeout and body_timeout 1s.
"""

import socket
import threading
import time

import pytest

import edge

LIMITS = {
    "max_request_line": "1k",
    "max_header_bytes": "4k",
    "max_headers": 20,
    "max_body": "64k",
    "header_timeout": "1s",
    "body_timeout": "1s",
    "idle_timeout": "2s",
}


@pytest.fixture(scope="module")
def server(start_server):
    return start_server(tls=False, limits=LIMITS)


H = b"Host: t\r\n"


def req(line=b"GET / HTTP/1.1", fields=H, body=b""):
    return line + b"\r\n" + fields + b"\r\n" + body


def post(fields, body):
    return req(b"POST /echo HTTP/1.1", H + fields, body)


def chunked(body):
    return post(b"Transfer-Encoding: chunked\r\n", body)


def many_fields(n):
    return H + b"".join(b"X-F%d: v\r\n" % i for i in range(n - 1))


def head_of_size(total):
    """A GET whose head (through the final CRLF) is exactly `total` bytes."""
    base = req(fields=H + b"X-Pad: \r\n")
    return req(fields=H + b"X-Pad: " + b"p" * (total - len(base)) + b"\r\n")


def line_of_length(n):
    """A request line of exactly n bytes (without CRLF)."""
    fixed = len(b"GET / HTTP/1.1")
    return b"GET /" + b"a" * (n - fixed) + b" HTTP/1.1"


# (id, request bytes, expected status, expected body or None)
CASES = [
    # ---- request line (RFC 9112 section 3) ----
    ("no-spaces", b"GET\r\n\r\n", 400, None),
    ("http09-style", b"GET /\r\n\r\n", 400, None),
    ("double-space", req(b"GET  / HTTP/1.1"), 400, None),
    ("leading-space", req(b" GET / HTTP/1.1"), 400, None),
    ("trailing-space", req(b"GET / HTTP/1.1 "), 400, None),
    ("tab-separators", req(b"GET\t/\tHTTP/1.1"), 400, None),
    ("version-2.0", req(b"GET / HTTP/2.0"), 505, None),
    ("version-3.0", req(b"GET / HTTP/3.0"), 505, None),
    ("version-0.9", req(b"GET / HTTP/0.9"), 505, None),
    ("version-1.2-is-1.1", req(b"GET / HTTP/1.2"), 200, b"hello"),
    ("version-lowercase", req(b"GET / http/1.1"), 400, None),
    ("version-no-minor", req(b"GET / HTTP/1"), 400, None),
    ("version-two-digit-minor", req(b"GET / HTTP/1.10"), 400, None),
    ("version-junk", req(b"GET / HTTP/1.1x"), 400, None),
    ("method-bad-char", req(b"G(T / HTTP/1.1"), 400, None),
    ("method-nul", req(b"\x00GET / HTTP/1.1"), 400, None),
    ("method-utf8", req(b"G\xc3\xa9T / HTTP/1.1"), 400, None),
    ("method-too-long", req(b"A" * 1100 + b" / HTTP/1.1"), 501, None),
    ("target-space", req(b"GET /a b HTTP/1.1"), 400, None),
    ("target-nul", req(b"GET /\x00 HTTP/1.1"), 400, None),
    ("target-del", req(b"GET /\x7f HTTP/1.1"), 400, None),
    ("target-utf8", req(b"GET /\xc3\xa9 HTTP/1.1"), 400, None),
    ("target-fragment", req(b"GET /#frag HTTP/1.1"), 400, None),
    ("target-relative", req(b"GET foo HTTP/1.1"), 400, None),
    ("target-asterisk-with-get", req(b"GET * HTTP/1.1"), 400, None),
    ("connect-origin-form", req(b"CONNECT / HTTP/1.1"), 400, None),
    ("absolute-form-empty-authority", req(b"GET http:///x HTTP/1.1"), 400, None),
    ("absolute-form-accepted", req(b"GET http://t/x HTTP/1.1"), 200, b"hello"),
    ("uri-too-long", req(line_of_length(1025)), 414, None),
    ("uri-at-limit", req(line_of_length(1024)), 200, b"hello"),
    ("empty-lines-before-request", b"\r\n\r\n" + req(), 200, b"hello"),
    ("bare-lf-before-request", b"\n" + req(), 400, None),
    ("bare-lf-line-ends", b"GET / HTTP/1.1\nHost: t\n\n", 400, None),
    ("bare-cr-in-request-line", b"GET / HTTP/1.1\rHost: t\r\n\r\n", 400, None),
    # ---- header fields (RFC 9110 section 5, RFC 9112 section 5) ----
    ("no-host", req(fields=b""), 400, None),
    ("two-hosts", req(fields=H + H), 400, None),
    ("host-with-space", req(fields=b"Host: a b\r\n"), 400, None),
    ("host-with-slash", req(fields=b"Host: a/b\r\n"), 400, None),
    # RFC 9110 7.2, RFC 9112 3.2: a port is digits up to 65535.
    ("host-port-letters", req(fields=b"Host: api.example.com:abc\r\n"), 400, None),
    ("host-port-huge", req(fields=b"Host: t:99999999999\r\n"), 400, None),
    ("host-two-ports", req(fields=b"Host: a:80:90\r\n"), 400, None),
    ("host-with-port", req(fields=b"Host: t:8080\r\n"), 200, b"hello"),
    ("host-ipv6-with-port", req(fields=b"Host: [::1]:8080\r\n"), 200, b"hello"),
    ("http10-without-host", req(b"GET / HTTP/1.0", b""), 200, b"hello"),
    ("obs-fold", req(fields=H + b"X-A: a\r\n b\r\n"), 400, None),
    ("obs-fold-tab", req(fields=H + b"X-A: a\r\n\tb\r\n"), 400, None),
    ("leading-space-first-field", req(fields=b" Host: t\r\n"), 400, None),
    ("space-before-colon", req(fields=b"Host : t\r\n"), 400, None),
    ("tab-before-colon", req(fields=H + b"X-A\t: b\r\n"), 400, None),
    ("field-without-colon", req(fields=H + b"X-A b\r\n"), 400, None),
    ("empty-field-name", req(fields=H + b": b\r\n"), 400, None),
    ("field-name-bad-char", req(fields=H + b"X(A): b\r\n"), 400, None),
    ("field-name-utf8", req(fields=H + b"X-\xc3\xa9: b\r\n"), 400, None),
    ("field-value-nul", req(fields=H + b"X-A: a\x00b\r\n"), 400, None),
    ("field-value-bare-cr", req(fields=H + b"X-A: a\rb\r\n"), 400, None),
    ("field-value-del", req(fields=H + b"X-A: a\x7fb\r\n"), 400, None),
    ("field-value-vertical-tab", req(fields=H + b"X-A: a\x0bb\r\n"), 400, None),
    ("field-value-obs-text-accepted", req(fields=H + b"X-A: caf\xe9\r\n"), 200, b"hello"),
    ("field-bare-lf", b"GET / HTTP/1.1\r\nHost: t\nX-A: b\r\n\r\n", 400, None),
    ("too-many-fields", req(fields=many_fields(21)), 431, None),
    ("fields-at-limit", req(fields=many_fields(20)), 200, b"hello"),
    ("header-section-too-large", head_of_size(4097), 431, None),
    ("header-section-at-limit", head_of_size(4096), 200, b"hello"),
    ("one-huge-field", req(fields=H + b"X-A: " + b"v" * 5000 + b"\r\n"), 431, None),
    # ---- message body framing, smuggling (RFC 9112 section 6) ----
    ("cl-and-te", post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                       b"5\r\nhello\r\n0\r\n\r\n"), 400, None),
    ("te-and-cl", post(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                       b"5\r\nhello\r\n0\r\n\r\n"), 400, None),
    ("cl-conflicting-fields", post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
     400, None),
    ("cl-conflicting-list", post(b"Content-Length: 5, 6\r\n", b"hello!"), 400, None),
    ("cl-same-twice-accepted", post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
     200, b"hello"),
    ("cl-same-list-accepted", post(b"Content-Length: 5, 5\r\n", b"hello"), 200, b"hello"),
    ("cl-negative", post(b"Content-Length: -1\r\n", b""), 400, None),
    ("cl-plus-sign", post(b"Content-Length: +5\r\n", b"hello"), 400, None),
    ("cl-hex", post(b"Content-Length: 0x5\r\n", b"hello"), 400, None),
    ("cl-overflow", post(b"Content-Length: 184467440737095516160\r\n", b""), 400, None),
    ("cl-space-inside", post(b"Content-Length: 1 2\r\n", b""), 400, None),
    ("cl-empty", post(b"Content-Length: \r\n", b""), 400, None),
    ("cl-comma-only", post(b"Content-Length: ,\r\n", b""), 400, None),
    ("cl-over-max-body", post(b"Content-Length: 65537\r\n", b""), 413, None),
    ("cl-at-max-body", post(b"Content-Length: 65536\r\n", b"b" * 65536), 200, b"b" * 65536),
    ("te-gzip-only", post(b"Transfer-Encoding: gzip\r\n", b"hello"), 400, None),
    ("te-chunked-then-gzip", post(b"Transfer-Encoding: chunked, gzip\r\n", b""), 400, None),
    ("te-gzip-then-chunked", post(b"Transfer-Encoding: gzip, chunked\r\n",
                                  b"5\r\nhello\r\n0\r\n\r\n"), 501, None),
    ("te-chunked-twice", post(b"Transfer-Encoding: chunked, chunked\r\n",
                              b"5\r\nhello\r\n0\r\n\r\n"), 400, None),
    ("te-chunked-two-fields", post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                                   b"5\r\nhello\r\n0\r\n\r\n"), 400, None),
    ("te-identity", post(b"Transfer-Encoding: identity\r\n", b"hello"), 400, None),
    ("te-xchunked", post(b"Transfer-Encoding: xchunked\r\n", b""), 400, None),
    ("te-empty", post(b"Transfer-Encoding: \r\n", b""), 400, None),
    ("te-in-http10", req(b"POST /echo HTTP/1.0", H + b"Transfer-Encoding: chunked\r\n",
                         b"5\r\nhello\r\n0\r\n\r\n"), 400, None),
    ("te-chunked-case-insensitive", post(b"Transfer-Encoding: ChUnKeD\r\n",
                                         b"5\r\nhello\r\n0\r\n\r\n"), 200, b"hello"),
    # ---- chunked coding (RFC 9112 section 7.1) ----
    ("chunk-size-not-hex", chunked(b"zz\r\nhello\r\n0\r\n\r\n"), 400, None),
    ("chunk-size-negative", chunked(b"-1\r\nhello\r\n0\r\n\r\n"), 400, None),
    ("chunk-size-overflow", chunked(b"10000000000000005\r\nhello\r\n0\r\n\r\n"), 400, None),
    ("chunk-size-0x-prefix", chunked(b"0x5\r\nhello\r\n0\r\n\r\n"), 400, None),
    ("chunk-size-empty", chunked(b"\r\nhello\r\n0\r\n\r\n"), 400, None),
    ("chunk-data-too-long", chunked(b"5\r\nhelloXX\r\n0\r\n\r\n"), 400, None),
    ("chunk-size-bare-lf", chunked(b"5\nhello\r\n0\r\n\r\n"), 400, None),
    ("chunk-data-bare-lf", chunked(b"5\r\nhello\n0\r\n\r\n"), 400, None),
    ("chunk-ext-control-char", chunked(b"5;\x01\r\nhello\r\n0\r\n\r\n"), 400, None),
    ("chunk-ext-accepted", chunked(b"5;name=value\r\nhello\r\n0\r\n\r\n"), 200, b"hello"),
    ("chunk-ext-quoted-accepted", chunked(b'5;n="v v"\r\nhello\r\n0\r\n\r\n'), 200, b"hello"),
    ("chunk-trailers-accepted", chunked(b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"), 200, b"hello"),
    ("chunk-trailer-obs-fold", chunked(b"5\r\nhello\r\n0\r\nX-T: 1\r\n 2\r\n\r\n"), 400, None),
    ("chunk-trailer-no-colon", chunked(b"5\r\nhello\r\n0\r\nX-T 1\r\n\r\n"), 400, None),
    ("chunked-over-max-body", chunked(b"10001\r\n" + b"x" * 65537 + b"\r\n0\r\n\r\n"), 413, None),
    ("chunked-sum-over-max-body", chunked(b"8000\r\n" + b"x" * 0x8000 + b"\r\n8001\r\n"
                                          + b"x" * 0x8001 + b"\r\n0\r\n\r\n"), 413, None),
    ("chunked-at-max-body", chunked(b"10000\r\n" + b"y" * 65536 + b"\r\n0\r\n\r\n"),
     200, b"y" * 65536),
    # ---- 413 with the body already on its way (lingering close) ----
    ("cl-over-max-body-body-sent", post(b"Content-Length: 100000\r\n", b"z" * 100000), 413, None),
    ("expect-continue-over-max-body", post(b"Expect: 100-continue\r\nContent-Length: 1048576\r\n",
                                           b""), 413, None),
]


# Cases where the server is wrong today (listed in the report to the lead).
KNOWN_BUGS = {}


def params(cases):
    out = []
    for c in cases:
        marks = ()
        if c[0] in KNOWN_BUGS:
            marks = pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[c[0]])
        out.append(pytest.param(*c[1:], id=c[0], marks=marks))
    return out


def send(sock, data):
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed early; the answer is read below


@pytest.mark.parametrize("raw,status,body", params(CASES))
def test_hostile_request(server, raw, status, body):
    s = edge.connect(server.port)
    send(s, raw)
    r = edge.Reader(s)
    resp = edge.read_response(r)
    assert resp.status == status, resp
    if body is not None:
        assert resp.body == body
    if status >= 400:
        # An error ends the connection (RFC 9112 section 9.6).
        assert resp.header("connection") == "close", resp
        assert resp.body.startswith(b"%d " % status), resp
        assert r.at_eof(), "connection left open after %d" % status
    s.close()
    edge.assert_serves(server)


def test_case_count():
    assert len(CASES) >= 50


def test_smuggled_request_in_body_is_body(server):
    smuggled = b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n"
    raw = (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
           + smuggled + req(b"GET /after HTTP/1.1"))
    s = edge.connect(server.port)
    s.sendall(raw)
    r = edge.Reader(s)
    first = edge.read_response(r)
    assert first.status == 200 and first.body == smuggled
    second = edge.read_response(r)
    assert second.status == 200 and second.body == b"hello"
    # Nothing else: exactly two answers.
    s.settimeout(0.5)
    with pytest.raises(socket.timeout):
        s.recv(1)
    s.close()


def test_get_with_body_is_consumed(server):
    # A GET with a body: the body is not a second request.
    raw = req(fields=H + b"Content-Length: 18\r\n", body=b"GET /x HTTP/1.1\r\n\r") + req()
    s = edge.connect(server.port)
    s.sendall(raw)
    r = edge.Reader(s)
    assert edge.read_response(r).body == b"hello"
    assert edge.read_response(r).body == b"hello"
    s.close()


def test_pipelined_then_garbage(server):
    s = edge.connect(server.port)
    s.sendall(req() + req(b"GET /echo HTTP/1.1") + b"BAD\x00 / HTTP/1.1\r\n\r\n")
    r = edge.Reader(s)
    assert edge.read_response(r).body == b"hello"
    assert edge.read_response(r).status == 200
    bad = edge.read_response(r)
    assert bad.status == 400 and bad.header("connection") == "close"
    assert r.at_eof()
    s.close()
    edge.assert_serves(server)


def test_pipelined_burst_answered_in_order(server):
    s = edge.connect(server.port)
    s.sendall(b"".join(req(b"GET /echo?n=%d HTTP/1.1" % i) for i in range(100)))
    r = edge.Reader(s)
    for i in range(100):
        resp = edge.read_response(r)
        assert resp.status == 200 and resp.header("x-echo-url") == "/echo?n=%d" % i
    s.close()


def test_http10_keep_alive(server):
    s = edge.connect(server.port)
    r = edge.Reader(s)
    for _ in range(2):
        s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        resp = edge.read_response(r)
        assert resp.status == 200 and resp.body == b"hello"
        assert resp.header("connection").lower() == "keep-alive"
    s.close()


def test_http10_closes_by_default(server):
    s = edge.connect(server.port)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    r = edge.Reader(s)
    resp = edge.read_response(r)
    assert resp.status == 200 and resp.body == b"hello"
    assert r.at_eof()
    s.close()


def test_connection_close_honoured(server):
    s = edge.connect(server.port)
    s.sendall(req(fields=H + b"Connection: close\r\n") + req())
    r = edge.Reader(s)
    resp = edge.read_response(r)
    assert resp.status == 200 and resp.header("connection") == "close"
    assert r.at_eof()  # the second request is not answered
    s.close()


def test_no_100_continue_for_http10(server):
    # RFC 9110 10.1.1: no 100 (Continue) to an HTTP/1.0 client.
    s = edge.connect(server.port)
    s.sendall(b"POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
    s.settimeout(0.5)
    with pytest.raises(socket.timeout):
        s.recv(1)
    s.sendall(b"body")
    resp = edge.read_response(edge.Reader(s))
    assert resp.status == 200 and resp.body == b"body"
    s.close()


def test_100_continue_then_answer(server):
    s = edge.connect(server.port)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
    r = edge.Reader(s)
    interim = edge.read_response(r)
    assert interim.status == 100
    s.sendall(b"body")
    resp = edge.read_response(r)
    assert resp.status == 200 and resp.body == b"body"
    s.close()


def test_pipelining_client_that_never_reads(server):
    # Answers are written before more requests are read: a client that never
    # reads stops being read (bounded memory); others are still served.
    s = edge.connect(server.port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(2)
    one = post(b"Content-Length: 60000\r\n", b"p" * 60000)
    sent = 0
    try:
        for _ in range(1000):  # 60 MB of requests whose answers echo them
            s.sendall(one)
            sent += 1
    except socket.timeout:
        pass
    assert sent < 1000, "the server read 60 MB of requests nobody read the answers of"
    edge.assert_serves(server)
    s.close()


def test_slowloris_head_gets_408(server):
    s = edge.connect(server.port)
    s.sendall(b"GET / HTTP/1.1\r\n")
    start = time.monotonic()
    got = b""
    s.settimeout(0.2)
    # A field every 200 ms: the head never ends; header_timeout (1s) must.
    i = 0
    while time.monotonic() - start < 15 * edge.SLOW:
        try:
            s.sendall(b"X-Slow-%d: a\r\n" % i)
        except (BrokenPipeError, ConnectionResetError):
            break
        i += 1
        try:
            b = s.recv(4096)
            if not b:
                break
            got += b
            if b"\r\n\r\n" in got:
                break
        except socket.timeout:
            pass
    assert got.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), got
    assert b"Connection: close\r\n" in got
    assert edge.closed_by_peer(s)
    assert i >= 3  # it really dribbled for a while first
    s.close()
    edge.assert_serves(server)


def test_slow_body_gets_408(server):
    s = edge.connect(server.port)
    s.sendall(post(b"Content-Length: 10\r\n", b"01234"))
    r = edge.Reader(s)
    resp = edge.read_response(r)
    assert resp.status == 408 and resp.header("connection") == "close"
    assert r.at_eof()
    edge.assert_serves(server)


def test_silent_connection_closed_without_answer(server):
    s = edge.connect(server.port)
    start = time.monotonic()
    assert edge.recv_all(s, timeout=20 * edge.SLOW) == b""
    assert time.monotonic() - start < 15 * edge.SLOW
    s.close()


def test_idle_keep_alive_closed_without_answer(server):
    s = edge.connect(server.port)
    s.sendall(req())
    r = edge.Reader(s)
    assert edge.read_response(r).body == b"hello"
    assert r.at_eof()  # idle_timeout (2s) closes it quietly
    s.close()


def test_head_split_across_many_writes(server):
    # One byte per write (under the header timeout): the same answer.
    s = edge.connect(server.port)
    for b in req(b"GET /echo?split HTTP/1.1"):
        s.sendall(bytes([b]))
    resp = edge.read_response(edge.Reader(s))
    assert resp.status == 200 and resp.header("x-echo-url") == "/echo?split"
    s.close()


def attack_loop(port, stop, errors):
    """Runs every hostile case over and over, plus slowloris connections."""
    held = []
    try:
        while not stop.is_set():
            for name, raw, status, _ in CASES:
                if stop.is_set():
                    break
                if name in KNOWN_BUGS:
                    continue
                try:
                    s = edge.connect(port)
                    send(s, raw)
                    resp = edge.read_response(edge.Reader(s))
                    if resp.status != status:
                        errors.append("attack case got %d, wanted %d" % (resp.status, status))
                    s.close()
                except Exception as e:  # noqa: BLE001 - reported by the test
                    errors.append("attack: %r" % e)
                if len(held) < 50:
                    h = edge.connect(port)
                    h.sendall(b"GET / HTTP/1.1\r\n")  # a head that never ends
                    held.append(h)
    finally:
        for h in held:
            h.close()


def test_other_connection_served_during_attack(server):
    good = edge.connect(server.port)
    reader = edge.Reader(good)
    stop = threading.Event()
    errors = []
    t = threading.Thread(target=attack_loop, args=(server.port, stop, errors))
    t.start()
    try:
        # The idle timeout is 2s: keep the good connection busy.
        for i in range(60):
            good.sendall(req(b"POST /echo HTTP/1.1", H + b"Content-Length: 6\r\n", b"ok%04d" % i))
            resp = edge.read_response(reader)
            assert resp.status == 200 and resp.body == b"ok%04d" % i
            time.sleep(0.02)
    finally:
        stop.set()
        t.join(timeout=120)
    assert not errors, errors[:5]
    good.close()
    edge.assert_serves(server)

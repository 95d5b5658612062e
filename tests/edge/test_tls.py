"""TLS listeners: ALPN choices, WebSocket and h2 over TLS from Python peers,
and hostile TLS clients (plaintext, silence, a handshake cut short)."""

import asyncio
import socket
import ssl
import time

import pytest
import websockets

import edge


@pytest.fixture(scope="module")
def server(start_server):
    return start_server(tls=True, limits={"header_timeout": "1s"})


@pytest.fixture(scope="module")
def http11_only(start_server):
    return start_server(tls=True, alpn=["http/1.1"])


def test_no_alpn_is_http11(server):
    s = edge.connect_tls(server.tls_port, server.cert)
    assert s.selected_alpn_protocol() is None
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
    resp = edge.read_response(edge.Reader(s))
    assert resp.status == 200 and resp.header("x-echo-protocol") == "HTTP/1.1"
    s.close()


def test_alpn_prefers_h2(server):
    s = edge.connect_tls(server.tls_port, server.cert, alpn=["http/1.1", "h2"])
    assert s.selected_alpn_protocol() == "h2"  # the server's preference
    c = edge.H2(None, sock=s)
    c.headers(1, edge.request_headers("/echo", "POST", scheme="https"), end_stream=False)
    c.data(1, b"over tls")
    hdrs, body, rst = c.response(1)
    assert rst is None and edge.h2_status(hdrs) == 200 and body == b"over tls"
    assert dict(hdrs)["x-echo-protocol"] == "HTTP/2"
    c.close()


def test_alpn_list_without_h2(http11_only):
    s = edge.connect_tls(http11_only.tls_port, http11_only.cert, alpn=["h2", "http/1.1"])
    assert s.selected_alpn_protocol() == "http/1.1"
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert edge.read_response(edge.Reader(s)).body == b"hello"
    s.close()


def test_h2c_upgrade_ignored_over_tls(server):
    # h2c is for cleartext only (RFC 7540 3.2): over TLS it is plain HTTP/1.1.
    s = edge.connect_tls(server.tls_port, server.cert, alpn=["http/1.1"])
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
              b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
    resp = edge.read_response(edge.Reader(s))
    assert resp.status == 200 and resp.body == b"hello"
    s.close()


def test_wss_echo(server):
    ctx = edge.tls_context(server.cert)

    async def go():
        async with websockets.connect("wss://127.0.0.1:%d/ws" % server.tls_port, ssl=ctx,
                                      max_size=None) as ws:
            await ws.send("over wss")
            assert await ws.recv() == "over wss"
            big = bytes(range(256)) * 4096
            await ws.send(big)
            assert await ws.recv() == big
    asyncio.run(asyncio.wait_for(go(), 60 * edge.SLOW))


def test_plaintext_on_tls_port(server):
    s = edge.connect(server.tls_port)
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    data = edge.recv_all(s, timeout=10 * edge.SLOW)
    # At most a TLS alert (content type 21), never an HTTP answer.
    assert not data.startswith(b"HTTP/"), data
    assert data == b"" or data[0] == 21, data
    s.close()
    edge.assert_serves(server)


def test_silent_client_dropped_after_handshake_timeout(server):
    s = edge.connect(server.tls_port)
    start = time.monotonic()
    assert edge.recv_all(s, timeout=20 * edge.SLOW) == b""
    assert time.monotonic() - start < 15 * edge.SLOW
    s.close()


def test_handshake_cut_short(server):
    # Half a ClientHello, then silence: the header timeout (1s) ends it.
    ctx = edge.tls_context(server.cert)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = out.read()
    s = edge.connect(server.tls_port)
    s.sendall(hello[: len(hello) // 2])
    start = time.monotonic()
    assert edge.recv_all(s, timeout=20 * edge.SLOW) == b""
    assert time.monotonic() - start < 15 * edge.SLOW
    s.close()
    edge.assert_serves(server)


def test_garbage_after_handshake(server):
    # A TLS record with a bad MAC after the handshake: the connection ends,
    # others are unaffected.
    s = edge.connect_tls(server.tls_port, server.cert, alpn=["http/1.1"])
    raw = socket.socket(fileno=s.detach())
    raw.sendall(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
    data = edge.recv_all(raw, timeout=10 * edge.SLOW)
    assert not data.startswith(b"HTTP/")
    raw.close()
    edge.assert_serves(server)
    t = edge.connect_tls(server.tls_port, server.cert, alpn=["http/1.1"])
    t.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert edge.read_response(edge.Reader(t)).body == b"hello"
    t.close()

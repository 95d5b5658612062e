"""Signals: SIGHUP reloads the TLS certificate without dropping connections;
SIGTERM drains (Connection: close, GOAWAY, WebSocket 1001) and exits 0."""

import os
import signal
import ssl
import time

import pytest


import edge


def tls_get(sock_reader, sock, path="/"):
    sock.sendall(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path).encode())
    return edge.read_response(sock_reader)


def subject_cn(tls_sock):
    cert = tls_sock.getpeercert()
    return dict(x[0] for x in cert["subject"])["commonName"]


def test_sighup_reloads_certificate(start_server):
    server = start_server(tls=True)
    old = edge.connect_tls(server.tls_port, server.cert, alpn=["http/1.1"])
    old_reader = edge.Reader(old)
    assert subject_cn(old) == "ember-edge-test"
    assert tls_get(old_reader, old).body == b"hello"

    # New files in place under the configured names (renamed: atomic).
    d = os.path.join(server.workdir, "new")
    os.mkdir(d)
    cert, key = edge.make_cert(d, "server", "ember-edge-reloaded", ["localhost"])
    os.replace(key, server.key)
    os.replace(cert, server.cert)
    server.signal(signal.SIGHUP)

    # The reload is asynchronous: poll until a new handshake shows it.
    deadline = time.monotonic() + 30 * edge.SLOW
    seen = None
    while time.monotonic() < deadline:
        try:
            s = edge.connect_tls(server.tls_port, server.cert, alpn=["http/1.1"])
        except ssl.SSLCertVerificationError:
            time.sleep(0.1)  # still the old certificate
            continue
        seen = subject_cn(s)
        r = edge.Reader(s)
        assert tls_get(r, s).body == b"hello"
        s.close()
        break
    assert seen == "ember-edge-reloaded", server.stderr()

    # The connection made before the reload keeps working.
    for _ in range(3):
        resp = tls_get(old_reader, old, "/echo")
        assert resp.status == 200
    old.close()
    assert server.alive()


def test_sighup_with_broken_files_keeps_old_certificate(start_server):
    server = start_server(tls=True)
    with open(server.cert, "w") as f:
        f.write("not a certificate\n")
    server.signal(signal.SIGHUP)
    # Give the (failed) reload every chance to happen, then check the old
    # certificate (still in memory) is served.
    deadline = time.monotonic() + 10 * edge.SLOW
    while "reload failed" not in server.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "reload failed" in server.stderr()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(edge.connect(server.tls_port), server_hostname="127.0.0.1")
    der = s.getpeercert(binary_form=True)
    assert der, "no certificate"
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert edge.read_response(edge.Reader(s)).body == b"hello"
    s.close()


def test_sigterm_drains(start_server):
    server = start_server(tls=True)
    server.stopped_by_test = True

    # An idle keep-alive HTTP/1.1 connection.
    idle = edge.connect(server.port)
    idle.sendall(edge.get("/"))
    idle_reader = edge.Reader(idle)
    assert edge.read_response(idle_reader).body == b"hello"

    # A slow upload in flight: half its body sent.
    slow = edge.connect(server.port)
    slow.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01234")

    # An HTTP/2 connection with a request in flight (body not finished).
    h2 = edge.H2(server.port)
    h2.headers(1, edge.request_headers("/echo", "POST"), end_stream=False)
    h2.data(1, b"part-1 ", end_stream=False)

    time.sleep(0.2 * edge.SLOW)  # let every connection's bytes reach the server
    server.signal(signal.SIGTERM)

    # HTTP/2: GOAWAY NO_ERROR; the stream in flight still completes.
    g = h2.goaway()
    assert g is not None and g.error_code == edge.NO_ERROR
    assert g.last_stream_id == 1
    h2.data(1, b"part-2")
    hdrs, body, rst = h2.response(1)
    assert rst is None and edge.h2_status(hdrs) == 200 and body == b"part-1 part-2"
    h2.wait_closed()
    assert h2.eof

    # The slow upload finishes and gets its answer with Connection: close.
    slow.sendall(b"56789")
    r = edge.Reader(slow)
    resp = edge.read_response(r)
    assert resp.status == 200 and resp.body == b"0123456789"
    assert resp.header("connection") == "close"
    assert r.at_eof()

    # The idle connection is closed without an answer.
    assert idle_reader.at_eof()

    rc = server.stop()
    assert rc == 0, server.stderr()



def test_sigterm_drains_websocket(start_server):
    server = start_server(tls=False, limits={"drain_timeout": "10s"})
    server.stopped_by_test = True
    ws = edge.WS(server.port)
    ws.send(edge.ws_frame(edge.OP_TEXT, b"before"))
    assert ws.read_message() == (edge.OP_TEXT, b"before")
    server.signal(signal.SIGTERM)
    # 1001 Going Away; our Close answers it; the server ends the connection
    # (RFC 6455 7.1.1) and exits 0 well before the drain timeout.
    code, _ = ws.expect_close()
    assert code == 1001
    ws.send(edge.ws_frame(edge.OP_CLOSE, edge.ws_close_payload(1001)))
    start = time.monotonic()
    assert edge.closed_by_peer(ws.sock, timeout=30)
    took = time.monotonic() - start
    rc = server.stop()
    assert rc == 0, server.stderr()
    assert took < 5, "the server held the closed WebSocket for %.1fs" % took


def test_sigterm_websocket_client_that_never_answers(start_server):
    # Without the client's Close the server gives up after its close wait.
    server = start_server(tls=False, limits={"drain_timeout": "20s"})
    server.stopped_by_test = True
    ws = edge.WS(server.port)
    server.signal(signal.SIGTERM)
    code, _ = ws.expect_close()
    assert code == 1001
    assert edge.closed_by_peer(ws.sock, timeout=30)
    rc = server.stop()
    assert rc == 0, server.stderr()


def test_sigterm_idle_server_exits_zero(start_server):
    server = start_server(tls=True)
    server.stopped_by_test = True
    edge.assert_serves(server)
    rc = server.stop()
    assert rc == 0, server.stderr()

"""Concurrent HTTP/1.1, h2c and WebSocket chat traffic against a 2-loop
server for a few seconds: meant for the ThreadSanitizer build (chat
broadcasts cross loops through their mailboxes). Every answer is checked;
nothing about speed is: timeouts are generous and the duration is a
wall-clock budget (EDGE_STRESS_SECONDS, default 4), not a request count.
The server must drain to status 0 afterwards (a sanitizer report makes it
exit non-zero)."""

import os
import threading
import time

import pytest

import edge
from edge import OP_TEXT, ws_frame

SECONDS = float(os.environ.get("EDGE_STRESS_SECONDS", "4"))


@pytest.fixture(scope="module")
def server(start_server):
    return start_server(tls=True, loops=2)


def http1_worker(port, stop, counts, errors, tag):
    n = 0
    try:
        s = edge.connect(port, timeout=60 * edge.SLOW)
        r = edge.Reader(s, timeout=60 * edge.SLOW)
        while not stop.is_set():
            body = b"%s-%d" % (tag, n)
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s"
                      % (len(body), body) + b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            a = edge.read_response(r)
            b = edge.read_response(r)
            if a.body != body or b.body != b"hello":
                errors.append("http1 %s: %r %r" % (tag, a, b))
                return
            n += 1
            if n % 50 == 0:  # new connections too: accept on both loops
                s.close()
                s = edge.connect(port, timeout=60 * edge.SLOW)
                r = edge.Reader(s, timeout=60 * edge.SLOW)
        s.close()
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append("http1 %s: %r" % (tag, e))
    counts.append(n)


def h2_worker(port, stop, counts, errors, tag):
    n = 0
    try:
        c = edge.H2(port, timeout=60 * edge.SLOW)
        sid = 1
        while not stop.is_set():
            ids = []
            for k in range(6):  # several streams in flight
                c.headers(sid, edge.request_headers("/echo", "POST"), end_stream=False)
                c.data(sid, b"%s-%d-%d" % (tag, n, k))
                ids.append((sid, b"%s-%d-%d" % (tag, n, k)))
                sid += 2
            for i, want in ids:
                hdrs, body, rst = c.response(i)
                if rst is not None or edge.h2_status(hdrs) != 200 or body != want:
                    errors.append("h2 %s: %r %r %r" % (tag, hdrs, body, rst))
                    return
            n += 1
            if sid > 5000:
                c.close()
                c = edge.H2(port, timeout=60 * edge.SLOW)
                sid = 1
        c.close()
    except Exception as e:  # noqa: BLE001
        errors.append("h2 %s: %r" % (tag, e))
    counts.append(n)


def test_mixed_traffic_two_loops(server):
    stop = threading.Event()
    counts, errors = [], []
    threads = []
    for i in range(3):
        threads.append(threading.Thread(target=http1_worker,
                                        args=(server.port, stop, counts, errors, b"h1-%d" % i)))
    for i in range(2):
        threads.append(threading.Thread(target=h2_worker,
                                        args=(server.port, stop, counts, errors, b"h2-%d" % i)))

    # Chat: members on (very likely) both loops; each message must reach all.
    members = [edge.WS(server.port, "/chat/stress", timeout=60 * edge.SLOW) for _ in range(4)]
    received = [[] for _ in members]
    sent = [0] * len(members)

    def reader(i):
        try:
            while True:
                f = members[i].read_frame()
                if f is None or f[1] == edge.OP_CLOSE:
                    return
                received[i].append(f[2])
        except Exception as e:  # noqa: BLE001
            if not stop.is_set():
                errors.append("chat reader %d: %r" % (i, e))

    readers = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(len(members))]
    for t in readers + threads:
        t.start()

    deadline = time.monotonic() + SECONDS
    k = 0
    while time.monotonic() < deadline and not errors:
        i = k % len(members)
        members[i].send(ws_frame(OP_TEXT, b"msg %d from %d" % (sent[i], i)))
        sent[i] += 1
        k += 1
        time.sleep(0.005)
    stop.set()
    for t in threads:
        t.join(timeout=120 * edge.SLOW)
    assert not errors, errors[:5]
    assert len(counts) == 5 and all(c > 0 for c in counts), counts

    # Every member hears every message (its own too), in each sender's order.
    want = sum(sent)
    deadline = time.monotonic() + 60 * edge.SLOW
    while time.monotonic() < deadline:
        if all(sum(1 for m in r if b": msg " in m) >= want for r in received):
            break
        time.sleep(0.05)
    for r in received:
        msgs = [m for m in r if b": msg " in m]
        assert len(msgs) == want, (len(msgs), want)
        for i in range(len(members)):
            seq = [int(m.split(b" ")[2]) for m in msgs if m.endswith(b"from %d" % i)]
            assert seq == list(range(sent[i])), "member %d's messages out of order" % i
    for m in members:
        m.send(ws_frame(edge.OP_CLOSE, edge.ws_close_payload(1000)))
    for m in members:
        m.sock.settimeout(30 * edge.SLOW)
    for t in readers:
        t.join(timeout=60 * edge.SLOW)
    for m in members:
        m.close()
    edge.assert_serves(server)


def test_tls_connections_on_both_loops(server):
    # Handshakes and answers over TLS from several threads at once.
    errors = []

    def worker(i):
        try:
            for j in range(10):
                s = edge.connect_tls(server.tls_port, server.cert, alpn=["http/1.1"],
                                     timeout=60 * edge.SLOW)
                s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                          b"Content-Length: 4\r\n\r\n%04d" % (i * 100 + j))
                resp = edge.read_response(edge.Reader(s, 60 * edge.SLOW))
                if resp.body != b"%04d" % (i * 100 + j):
                    errors.append(repr(resp))
                s.close()
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=300)
    assert not errors, errors[:5]

"""HTTP/1.1 clients that read their answers slowly, or not at all.

A client that stops reading while answers wait for it is closed once it has
taken nothing for two idle periods (it would otherwise hold a connection and
its buffers for good); one that keeps reading, however slowly, gets every
byte. A chat room member that stops reading is closed once its backlog
passes 4 MiB and two of the largest messages, while the room goes on.
Limits in this module's config: idle_timeout 1s, max_body 16m,
ws_max_message 64k.
"""

import socket
import threading
import time

import pytest

import edge
from edge import OP_BINARY, OP_CLOSE, ws_frame

LIMITS = {"idle_timeout": "1s", "header_timeout": "1s", "body_timeout": "2s", "max_body": "16m",
          "ws_max_message": "64k", "ws_idle_timeout": "60s"}


@pytest.fixture(scope="module")
def server(start_server):
    return start_server(tls=False, limits=LIMITS, loops=1)


def small_window_socket(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    s.connect(("127.0.0.1", port))
    return s


def send_in_background(s, data):
    def run():
        try:
            s.sendall(data)
        except OSError:
            pass  # the server stopped reading, then closed
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_a_client_that_stops_reading_its_answers_is_closed(server):
    body = b"e" * (256 << 10)
    one = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    n = 64  # 16 MiB of answers: far more than the kernel's buffers hold
    s = small_window_socket(server.port)
    send_in_background(s, one * n)
    time.sleep(5 * edge.SLOW)  # two idle periods without progress, and slack
    # Now read what is there: a connection still open would go on answering
    # all 64 requests as we read.
    got = 0
    s.settimeout(10 * edge.SLOW)
    try:
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
    except ConnectionResetError:
        pass
    s.close()
    assert got < n * len(body) // 2, "the server kept answering a client that did not read"
    edge.assert_serves(server)


def test_a_slow_but_steady_reader_gets_the_whole_answer(server):
    body = bytes(range(256)) * (32 << 10)  # 8 MiB: more than the socket buffers
    s = small_window_socket(server.port)
    send_in_background(s, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
                       % len(body) + body)
    # About 1 MiB a second, over several idle periods (1 s each).
    r = edge.Reader(s, timeout=20 * edge.SLOW)
    head = r.read_until(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    got = b""
    while len(got) < len(body):
        time.sleep(0.05)
        piece = r.read_exact(min(64 << 10, len(body) - len(got)))
        got += piece
    assert got == body
    s.close()


def test_a_chat_member_that_stops_reading_is_closed_and_the_room_goes_on(server):
    room = "/chat/slow-member"
    stalled = small_window_socket(server.port)
    stalled.sendall(edge.ws_upgrade_request(room))
    assert edge.read_response(edge.Reader(stalled)).status == 101
    sender = edge.WS(server.port, room)
    got = []

    def read_own_echoes():
        try:
            while True:
                f = sender.read_frame()
                if f is None or f[1] == OP_CLOSE:
                    return
                if len(f[2]) >= size:  # the room's own notices are short
                    got.append(len(f[2]))
        except (OSError, EOFError, ValueError):
            pass  # closed at the end of the test

    n, size = 400, 60 << 10  # 24 MiB: far past the member's backlog bound
    t = threading.Thread(target=read_own_echoes, daemon=True)
    t.start()
    for i in range(n):
        sender.send(ws_frame(OP_BINARY, bytes([i % 256]) * size))
    deadline = time.monotonic() + 30 * edge.SLOW
    while len(got) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(got) == n, "the room stalled with its slow member"
    # The stalled member was closed (1008, then cut off when even that went
    # unread): what it can still read is far less than the room sent.
    time.sleep(6 * edge.SLOW)
    stalled.settimeout(10 * edge.SLOW)
    read = 0
    try:
        while True:
            chunk = stalled.recv(1 << 20)
            if not chunk:
                break
            read += len(chunk)
    except ConnectionResetError:
        pass
    stalled.close()
    sender.sock.close()
    assert read < n * size // 2, "the server kept every room message for a member that did not read"

"""Python `h2` (h2c prior knowledge, many concurrent streams, large bodies
under flow control), Python `websockets` (echo, 1 MiB, fragments, ping,
close, chat) and the libwebsockets C client against `ember serve`."""

import asyncio
import os
import subprocess

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
import websockets

import edge


@pytest.fixture(scope="module")
def server(start_server):
    return start_server(tls=False, limits={"max_body": "16m", "ws_max_message": "4m"})


# ---------------------------------------------------------------- h2

class H2Client:
    """A blocking client over h2.connection with honest flow control: it
    sends DATA only within the windows the server grants and acknowledges
    what it receives."""

    def __init__(self, port):
        self.sock = edge.connect(port)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
        self.flush()
        self.streams = {}  # id -> {"headers", "body", "ended", "reset"}
        self.pending = {}  # id -> bytes still to send

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path, body=None, method=None):
        sid = self.conn.get_next_available_stream_id()
        method = method or ("POST" if body is not None else "GET")
        hdrs = [(":method", method), (":scheme", "http"), (":path", path),
                (":authority", "127.0.0.1")]
        if body is not None:
            hdrs.append(("content-length", str(len(body))))
        self.conn.send_headers(sid, hdrs, end_stream=body is None)
        self.streams[sid] = {"headers": None, "body": bytearray(), "ended": False, "reset": None}
        if body is not None:
            self.pending[sid] = memoryview(body)
        self.pump_send()
        self.flush()
        return sid

    def pump_send(self):
        for sid in list(self.pending):
            rest = self.pending[sid]
            while rest:
                room = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
                if room <= 0:
                    break
                self.conn.send_data(sid, rest[:room].tobytes())
                rest = rest[room:]
            if rest:
                self.pending[sid] = rest
            else:
                del self.pending[sid]
                self.conn.end_stream(sid)

    def run_until(self, done):
        while not done():
            self.sock.settimeout(edge.TIMEOUT)
            data = self.sock.recv(1 << 20)
            assert data, "server closed the connection"
            for ev in self.conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    self.streams[ev.stream_id]["headers"] = dict(
                        (k.decode(), v.decode()) for k, v in ev.headers)
                elif isinstance(ev, h2.events.DataReceived):
                    self.streams[ev.stream_id]["body"] += ev.data
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    self.streams[ev.stream_id]["ended"] = True
                elif isinstance(ev, h2.events.StreamReset):
                    self.streams[ev.stream_id]["reset"] = ev.error_code
                    self.streams[ev.stream_id]["ended"] = True
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    raise AssertionError("GOAWAY: %r" % ev)
            self.pump_send()
            self.flush()

    def close(self):
        self.conn.close_connection()
        self.flush()
        self.sock.close()


def test_h2_prior_knowledge_get_and_post(server):
    c = H2Client(server.port)
    a = c.request("/")
    b = c.request("/echo?k=v", body=b"python h2")
    c.run_until(lambda: c.streams[a]["ended"] and c.streams[b]["ended"])
    assert c.streams[a]["headers"][":status"] == "200"
    assert bytes(c.streams[a]["body"]) == b"hello"
    assert c.streams[a]["headers"]["content-length"] == "5"
    sb = c.streams[b]
    assert sb["headers"][":status"] == "200"
    assert bytes(sb["body"]) == b"python h2"
    assert sb["headers"]["x-echo-url"] == "/echo?k=v"
    assert sb["headers"]["x-echo-protocol"] == "HTTP/2"
    c.close()


def test_h2_many_concurrent_streams(server):
    c = H2Client(server.port)
    ids = {}
    for i in range(100):  # below the default 128 concurrent streams
        body = ("stream %d " % i).encode() * (i + 1)
        ids[c.request("/echo/%d" % i, body=body)] = body
    c.run_until(lambda: all(c.streams[s]["ended"] for s in ids))
    for sid, body in ids.items():
        st = c.streams[sid]
        assert st["reset"] is None
        assert st["headers"][":status"] == "200"
        assert bytes(st["body"]) == body
    c.close()


def test_h2_large_bodies_flow_control(server):
    c = H2Client(server.port)
    bodies = {}
    for n in (4 << 20, 3 << 20, 65536, 65535, 65537):
        body = os.urandom(n)
        bodies[c.request("/echo", body=body)] = body
    c.run_until(lambda: all(c.streams[s]["ended"] for s in bodies))
    for sid, body in bodies.items():
        st = c.streams[sid]
        assert st["reset"] is None and st["headers"][":status"] == "200"
        assert st["headers"]["content-length"] == str(len(body))
        assert bytes(st["body"]) == body
    c.close()


def test_h2_head(server):
    c = H2Client(server.port)
    a = c.request("/", method="HEAD")
    c.run_until(lambda: c.streams[a]["ended"])
    assert c.streams[a]["headers"][":status"] == "200"
    assert c.streams[a]["headers"]["content-length"] == "5"
    assert bytes(c.streams[a]["body"]) == b""
    c.close()


# ---------------------------------------------------------------- websockets

def ws_url(server, path="/ws"):
    return "ws://127.0.0.1:%d%s" % (server.port, path)


def arun(coro):
    return asyncio.run(asyncio.wait_for(coro, 60 * edge.SLOW))


def test_websockets_echo_text_binary(server):
    async def go():
        async with websockets.connect(ws_url(server)) as ws:
            await ws.send("hello ✓")
            assert await ws.recv() == "hello ✓"
            await ws.send(b"\x00\x01\xff")
            assert await ws.recv() == b"\x00\x01\xff"
            await ws.send("")
            assert await ws.recv() == ""
    arun(go())


def test_websockets_one_mib(server):
    big = os.urandom(1 << 20)
    text = "é" * (1 << 19)  # 1 MiB of UTF-8

    async def go():
        async with websockets.connect(ws_url(server), max_size=None) as ws:
            await ws.send(big)
            assert await ws.recv() == big
            await ws.send(text)
            assert await ws.recv() == text
    arun(go())


def test_websockets_fragmented_message(server):
    async def go():
        async with websockets.connect(ws_url(server)) as ws:
            # A fragmented text message whose fragments split a UTF-8 character.
            await ws.send(["frag-1 \u00e9", "frag-2", " end \u2713"])
            assert await ws.recv() == "frag-1 \u00e9frag-2 end \u2713"
            await ws.send([b"a" * 1000, b"b" * 70000, b"c"])
            assert await ws.recv() == b"a" * 1000 + b"b" * 70000 + b"c"
    arun(go())


def test_websockets_ping_pong(server):
    async def go():
        async with websockets.connect(ws_url(server)) as ws:
            waiter = await ws.ping(b"are you there")
            await waiter
            waiter = await ws.ping(b"x" * 125)
            await waiter
    arun(go())


def test_websockets_close_handshake(server):
    async def go():
        ws = await websockets.connect(ws_url(server))
        await ws.send("bye soon")
        assert await ws.recv() == "bye soon"
        await ws.close(code=1000, reason="done")
        assert ws.close_code == 1000
        return ws

    ws = arun(go())
    assert ws.closed


def test_websockets_chat_broadcast(server):
    room = "/chat/room-a"

    async def go():
        a = await websockets.connect(ws_url(server, room))
        # A hears its own join first: that carries its connection id.
        joined_a = await a.recv()
        assert joined_a.startswith("* ") and joined_a.endswith(" joined")
        b = await websockets.connect(ws_url(server, room))
        joined_b = await b.recv()
        assert joined_b.startswith("* ") and joined_b.endswith(" joined")
        assert await a.recv() == joined_b
        id_b = joined_b[2:-len(" joined")]
        id_a = joined_a[2:-len(" joined")]
        await b.send("hi from b")
        assert await a.recv() == id_b + ": hi from b"
        assert await b.recv() == id_b + ": hi from b"
        await a.send("hi from a")
        assert await b.recv() == id_a + ": hi from a"
        assert await a.recv() == id_a + ": hi from a"
        # Other rooms hear nothing of it.
        c = await websockets.connect(ws_url(server, "/chat/room-b"))
        joined_c = await c.recv()
        await a.send("only room a")
        assert await b.recv() == id_a + ": only room a"
        await c.send("room b")
        assert await c.recv() == joined_c[2:-len(" joined")] + ": room b"
        await a.close()
        assert await b.recv() == "* " + id_a + " left"
        await b.close()
        await c.close()
    arun(go())


# ---------------------------------------------------------------- libwebsockets

def test_libwebsockets_client_echo(server):
    client = os.environ.get("LWS_CLIENT")
    if not client:
        pytest.skip("built without libwebsockets (LWS_CLIENT unset)")
    p = subprocess.run([client, "127.0.0.1", str(server.port), "/ws"], capture_output=True,
                       timeout=120 * edge.SLOW)
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
    assert b"4 echoes matched" in p.stdout

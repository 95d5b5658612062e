"""WebSocket Wasm flares (tests/edge/wasm/ws.wat) under `ember serve`, driven
by Python's websockets client: the open/message/close events and their
imports, text and binary sends, a flare-initiated close, traps and a
non-zero answer closing with 1011, and plain HTTP answered 426.
"""

import asyncio
import os
import re
import subprocess
import time

import pytest
import websockets

import edge
from edge import http_request

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wasm")


@pytest.fixture(scope="module")
def server(start_server, tmp_path_factory):
    d = tmp_path_factory.mktemp("ws")
    module = str(d / "ws.wasm")
    subprocess.run(["wat2wasm", os.path.join(HERE, "ws.wat"), "-o", module], check=True,
                   capture_output=True)
    return start_server(tls=False, wasm_routes=[("/live", module)],
                        extra_config="spark: {dir: %s}\n" % (d / "spark"))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30 * edge.SLOW))


def url(server):
    return "ws://127.0.0.1:%d/live" % server.port


def test_events_reach_the_flare_and_its_sends_reach_the_client(server):
    async def go():
        async with websockets.connect(url(server)) as ws:
            hello = await ws.recv()
            assert re.fullmatch(r"open \d+", hello), hello
            await ws.send("hello wasm")
            assert await ws.recv() == "hello wasm"
            await ws.send(b"\xc3\x28 not utf-8")  # invalid UTF-8: comes back binary
            assert await ws.recv() == b"\xc3\x28 not utf-8"
            await ws.send("send-bytes")
            assert await ws.recv() == b"\xff\x00"
            big = "x" * 100_000
            await ws.send(big)
            assert await ws.recv() == big
            return hello

    first, second = run(go()), run(go())
    assert first != second  # connection ids differ


def test_the_flare_closes_with_its_code_and_hears_the_close(server):
    async def go():
        async with websockets.connect(url(server)) as ws:
            await ws.recv()
            await ws.send("close")
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return ws.close_code

    assert run(go()) == 4000
    deadline = time.monotonic() + 10 * edge.SLOW
    while "ws flare saw close 4000" not in server.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "ws flare saw close 4000" in server.stderr()


def test_a_client_close_reaches_ws_close(server):
    async def go():
        async with websockets.connect(url(server)) as ws:
            await ws.recv()
            await ws.close(code=4321)

    run(go())
    deadline = time.monotonic() + 10 * edge.SLOW
    while "ws flare saw close 4321" not in server.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "ws flare saw close 4321" in server.stderr()
    assert "trapped" not in server.stderr()  # a send during close fails instead of trapping


@pytest.mark.parametrize("message", ["trap", "answer-1"])
def test_a_trap_or_a_nonzero_answer_closes_with_1011(server, message):
    async def go():
        async with websockets.connect(url(server)) as ws:
            await ws.recv()
            await ws.send(message)
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return ws.close_code

    assert run(go()) == 1011

    async def again():  # the server and the flare keep serving
        async with websockets.connect(url(server)) as ws:
            await ws.recv()
            await ws.send("still here")
            return await ws.recv()

    assert run(again()) == "still here"


def test_plain_http_gets_426(server):
    status, headers, _ = http_request(server, "/live")
    assert status == 426 and headers["upgrade"].lower() == "websocket"

"""The example Wasm flares written in C against include/ember/flare_guest.h
(examples/flare/wasm), compiled by examples/flare/wasm/build.sh with
Debian's clang-14 and wasm-ld-14, deployed by `ember serve` and reached
with real HTTP and WebSocket requests.
"""

import asyncio
import json
import os
import subprocess

import pytest
import websockets

import edge
from edge import http_request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def server(start_server, tmp_path_factory):
    out = tmp_path_factory.mktemp("c-flares")
    subprocess.run([os.path.join(ROOT, "examples/flare/wasm/build.sh"), str(out)], check=True,
                   capture_output=True)
    routes = [("/hello", str(out / "hello.wasm")),
              ("/visits", str(out / "visits.wasm"),
               "capabilities: [writes_plasma_kv, writes_spark_kv]"),
              ("/ws", str(out / "ws_echo.wasm")),
              ("/fetch", str(out / "fetch.wasm"), "capabilities: [beam]")]
    return start_server(tls=False, wasm_routes=routes,
                        extra_config="spark: {dir: %s}\nbeam: {allow: ['127.0.0.1']}\n"
                        % (out / "spark"))


def test_hello(server):
    status, headers, body = http_request(server, "/hello/there?x=1")
    assert status == 200
    assert body == b"hello from C: GET /hello/there?x=1\n"
    assert headers["x-flare-language"] == "c"


def test_visits_counts_in_plasma_and_remembers_in_spark(server):
    first = http_request(server, "/visits", headers={"User-Agent": "first-agent"})
    second = http_request(server, "/visits", headers={"User-Agent": "second-agent"})
    assert first[0] == second[0] == 200
    n = int(first[2].split(b"#")[1].split(b";")[0].strip())
    assert second[2] == b"visit #%d; previous visitor: first-agent\n" % (n + 1)


def test_websocket_echo(server):
    async def go():
        async with websockets.connect("ws://127.0.0.1:%d/ws" % server.port) as ws:
            assert await ws.recv() == "welcome"
            await ws.send("from python")
            return await ws.recv()

    assert asyncio.run(asyncio.wait_for(go(), 30 * edge.SLOW)) == "from python"


def test_fetch_gets_another_route_through_beam(server):
    url = "http://127.0.0.1:%d/hello/via-beam" % server.port
    status, headers, body = http_request(server, "/fetch?" + url)
    assert status == 200 and headers["content-type"] == "application/json", body
    envelope = json.loads(body)
    assert envelope["status"] == 200
    assert envelope["body"] == "hello from C: GET /hello/via-beam\n"
    assert http_request(server, "/fetch?http://example.com/")[0] == 502  # not in beam.allow
    assert http_request(server, "/fetch")[0] == 400

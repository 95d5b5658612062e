"""Routes with an origin: flares answering Action::passthrough and
Action::transform (tests/edge/wasm/proxy.wat) under `ember serve`, against an
origin run by this test (Python's http.server), from curl over HTTP/1.1 and
h2c: the origin's answer, the request as forwarded, the flare's status,
headers and body laid over it, and 502 when the origin or the route's
origin is missing.
"""

import http.server
import json
import os
import subprocess
import threading
import time

import pytest

import edge
from edge import http_request

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wasm")


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        payload = json.dumps({"method": self.command, "path": self.path,
                              "body": body.decode(errors="replace"),
                              "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(201)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Origin", "yes")
        self.send_header("X-Flare", "origin's")
        if "/conn" in self.path:  # fields meant for the next hop only
            self.send_header("Connection", "x-internal, X-Hop")
            self.send_header("X-Internal", "secret")
            self.send_header("X-Hop", "1")
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = answer

    def do_HEAD(self):
        # What a GET would announce, with no body (RFC 9110 §9.3.2).
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.send_header("X-Origin", "yes")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def origin():
    server = edge.OriginServer(("127.0.0.1", 0), Origin)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture(scope="module")
def server(start_server, tmp_path_factory, origin):
    d = tmp_path_factory.mktemp("origin")
    module = str(d / "proxy.wasm")
    subprocess.run(["wat2wasm", os.path.join(HERE, "proxy.wat"), "-o", module], check=True,
                   capture_output=True)
    dead = edge.free_ports(1)[0]
    return start_server(tls=False, loops=1, wasm_routes=[
        ("/app", module, "origin: 'http://127.0.0.1:%d'" % origin),
        ("/down", module, "origin: 'http://127.0.0.1:%d'" % dead),
        ("/none", module)], extra_config="spark: {dir: %s}\n" % (d / "spark"))


def test_passthrough_answers_what_the_origin_answers(server):
    status, fields, body = http_request(server, "/app/items?q=1", body=b"payload",
                                        headers={"x-action": "3", "x-status": "1",
                                                 "x-body": "1", "Connection-Token": "t"})
    assert status == 201, body
    assert fields["x-origin"] == "yes" and fields["x-flare"] == "origin's"
    seen = json.loads(body)
    assert seen["method"] == "POST" and seen["path"] == "/app/items?q=1"
    assert seen["body"] == "payload"
    assert seen["headers"]["x-action"] == "3"
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert seen["headers"]["x-forwarded-proto"] == "http"
    assert seen["headers"]["x-forwarded-host"] == "t"
    assert seen["headers"]["host"] == "127.0.0.1:%d" % int(seen["headers"]["host"].split(":")[1])


def test_transform_lays_the_flare_over_the_origin(server):
    status, fields, body = http_request(server, "/app/t", headers={"x-action": "2"})
    assert status == 201 and fields["x-flare"] == "yes" and fields["x-origin"] == "yes"
    assert json.loads(body)["path"] == "/app/t"
    status, fields, body = http_request(server, "/app/t",
                                        headers={"x-action": "2", "x-status": "1", "x-body": "1"})
    assert (status, body) == (299, b"from the flare")
    assert fields["x-flare"] == "yes" and fields["x-origin"] == "yes"


def test_respond_on_a_route_with_an_origin_does_not_forward(server):
    status, fields, body = http_request(server, "/app/r", headers={"x-action": "1", "x-body": "1"})
    assert (status, body) == (200, b"from the flare")
    assert "x-origin" not in fields


def test_http2_clients_are_forwarded_too(server):
    out = subprocess.run(["curl", "-sS", "-i", "--http2-prior-knowledge", "-H", "x-action: 3",
                          server.url("/app/h2")], capture_output=True, timeout=60 * edge.SLOW)
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/2 201"), out
    assert json.loads(body)["path"] == "/app/h2"


def test_fields_named_by_connection_are_not_forwarded(server):
    # RFC 9110 7.6.1, both ways: the client's to the origin, the origin's to the client.
    for action in ("3", "2"):
        raw = ("GET /app/conn HTTP/1.1\r\nHost: t\r\nx-action: %s\r\n"
               "Connection: keep-alive, X-Secret\r\nX-Secret: s\r\nX-Kept: k\r\n"
               "connection: x-other\r\nX-Other: o\r\n\r\n" % action).encode()
        resp, reader = edge.http1_request(server.port, raw)
        reader.sock.close()
        assert resp.status == 201 and resp.header("x-origin") == "yes", resp
        assert resp.header("x-internal") is None and resp.header("x-hop") is None, resp
        seen = json.loads(resp.body)["headers"]
        assert "x-secret" not in seen and "x-other" not in seen, seen
        assert seen["x-kept"] == "k"


def test_head_keeps_the_origins_content_length(server):
    for action in ("3", "2"):  # passthrough, transform
        raw = ("HEAD /app/h HTTP/1.1\r\nHost: t\r\nx-action: %s\r\nConnection: close\r\n\r\n"
               % action).encode()
        resp, reader = edge.http1_request(server.port, raw, head=True)
        assert resp.status == 200 and resp.header("x-origin") == "yes", resp
        assert resp.header("content-length") == "1000", resp
        assert reader.read_to_eof() == b""
        out = subprocess.run(["curl", "-sS", "-I", "--http2-prior-knowledge", "-H",
                              "x-action: " + action, server.url("/app/h")],
                             capture_output=True, timeout=60 * edge.SLOW)
        head = out.stdout.decode("latin-1").lower()
        assert head.startswith("http/2 200") and "content-length: 1000\r\n" in head, out


def test_an_origin_that_does_not_answer_is_502(server):
    status, _, body = http_request(server, "/down/x", headers={"x-action": "3"})
    assert status == 502 and b"did not answer" in body and b"/down" not in body, body
    deadline = time.monotonic() + 10 * edge.SLOW  # logged at warn, with the origin's address
    while "the origin did not answer" not in server.stderr():
        assert time.monotonic() < deadline, server.stderr()
        time.sleep(0.05)
    status, _, body = http_request(server, "/none/x", headers={"x-action": "3"})
    assert status == 502 and b"has no 'origin:'" in body, body
    assert http_request(server, "/")[2] == b"hello"


def test_config_checks_origins(tmp_path):
    for origin, words in [("ftp://x", "'origin' is http://HOST"),
                          ("http://x/path", "without a path"),
                          ("http://", "'origin' is http://HOST")]:
        run = edge.serve_check("routes: [{flare: hello, origin: '%s'}]\n" % origin, tmp_path)
        assert run.returncode == 2 and words in run.stderr, (origin, run.stderr)

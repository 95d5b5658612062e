"""Outbound HTTP/2 under `ember serve`: a route's origin and beam_fetch
(tests/edge/wasm/proxy.wat, beam.wat) against HTTP/2-only origins run by this
test (tests/edge/h2_origin.py, on python3-h2, not Ember's code): TLS with
ALPN h2 chosen automatically, cleartext with `origin_protocol: h2` /
`beam.protocol: h2` (prior knowledge), requests from one loop multiplexed on
one connection, and an HTTP/1.1-only TLS origin (Python's http.server)
reached over HTTP/1.1 when HTTP/2 is not on offer.
"""

import concurrent.futures
import http.server
import json
import os
import ssl
import subprocess
import threading

import pytest

import edge
from edge import http_request
from h2_origin import H2Origin

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wasm")


class Http1Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        payload = json.dumps({"path": self.path, "protocol": self.request_version}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def origins(tmp_path_factory):
    d = tmp_path_factory.mktemp("h2origin")
    cert, key = edge.make_cert(str(d), "origin", "origin.test")
    tls, clear = H2Origin((cert, key)), H2Origin()
    h1 = edge.OriginServer(("127.0.0.1", 0), Http1Origin)
    h1.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    h1.socket = ctx.wrap_socket(h1.socket, server_side=True)
    threading.Thread(target=h1.serve_forever, daemon=True).start()
    yield {"tls": tls, "clear": clear, "h1": h1.server_address[1], "cert": cert}
    tls.close()
    clear.close()
    h1.shutdown()


def wat(tmp_path_factory, name):
    out = str(tmp_path_factory.mktemp("mod") / (name + ".wasm"))
    subprocess.run(["wat2wasm", os.path.join(HERE, name + ".wat"), "-o", out], check=True,
                   capture_output=True)
    return out


@pytest.fixture(scope="module")
def server(start_server, tmp_path_factory, origins):
    proxy, beam = wat(tmp_path_factory, "proxy"), wat(tmp_path_factory, "beam")
    d = tmp_path_factory.mktemp("srv")
    tls, clear, h1 = origins["tls"].port, origins["clear"].port, origins["h1"]
    beam_cfg = ("beam: {allow: ['127.0.0.1'], ca_file: %s, timeout: %ds}\nspark: {dir: %s}\n"
                % (origins["cert"], 20 * edge.SLOW, d / "spark"))
    return start_server(tls=False, loops=1, extra_config=beam_cfg, wasm_routes=[
        ("/tls", proxy, "origin: 'https://127.0.0.1:%d'" % tls),
        ("/clear", proxy, "origin: 'http://127.0.0.1:%d', origin_protocol: h2" % clear),
        ("/h1", proxy, "origin: 'https://127.0.0.1:%d'" % h1),
        ("/beam", beam, "capabilities: [beam]")])


def test_an_https_origin_that_speaks_h2_gets_http2(server, origins):
    status, fields, body = http_request(server, "/tls/items?q=1", body=b"payload",
                                        headers={"x-action": "3", "X-Mixed-Case": "v"})
    assert status == 200, body
    assert fields["x-origin"] == "h2"
    seen = json.loads(body)
    assert seen["protocol"] == "HTTP/2" and seen["method"] == "POST"
    assert seen["path"] == "/tls/items?q=1" and seen["body"] == "payload"
    assert seen["authority"] == "127.0.0.1:%d" % origins["tls"].port
    assert seen["headers"]["x-mixed-case"] == "v"  # lower-cased, as HTTP/2 wants
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert "connection" not in seen["headers"] and "host" not in seen["headers"]


def test_prior_knowledge_to_a_cleartext_origin(server):
    status, fields, body = http_request(server, "/clear/x", headers={"x-action": "3"})
    assert status == 200, body
    assert json.loads(body)["protocol"] == "HTTP/2"


def test_requests_from_one_loop_share_one_connection(server, origins):
    before = origins["clear"].connections

    def one(i):
        return http_request(server, "/clear/n%d" % i, headers={"x-action": "3"})

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(64)))
    assert all(a[0] == 200 for a in answers), [a for a in answers if a[0] != 200][:2]
    assert {a[1]["x-conn"] for a in answers} == {answers[0][1]["x-conn"]}
    assert origins["clear"].connections - before <= 1


def test_an_origin_without_h2_is_reached_over_http11(server):
    for _ in range(2):  # the first finds out, the second already knows
        status, _, body = http_request(server, "/h1/old", headers={"x-action": "3"})
        assert status == 200, body
        assert json.loads(body) == {"path": "/h1/old", "protocol": "HTTP/1.1"}


def test_beam_fetch_over_http2(server, origins):
    url = "https://127.0.0.1:%d/api?x=1" % origins["tls"].port
    status, _, body = http_request(server, "/beam", headers={"x-url": url})
    assert status == 200, body
    envelope = json.loads(body)
    assert envelope["status"] == 200
    assert envelope["headers"]["x-origin"] == "h2"
    seen = json.loads(envelope["body"])
    assert seen["protocol"] == "HTTP/2" and seen["path"] == "/api?x=1"


def test_config_checks_the_protocol_keys(tmp_path):
    for text, words in [
            ("routes: [{flare: hello, origin: 'http://x', origin_protocol: h3}]\n",
             "'origin_protocol' must be auto, http1 or h2"),
            ("routes: [{flare: hello, origin_protocol: h2}]\n", "'origin_protocol' needs an"),
            ("beam: {protocol: spdy}\n", "'protocol' must be auto, http1 or h2")]:
        run = edge.serve_check(text, tmp_path)
        assert run.returncode == 2 and words in run.stderr, (text, run.stderr)

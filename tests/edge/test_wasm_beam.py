"""beam_fetch (tests/edge/wasm/beam.wat) under `ember serve` with one loop,
against origins run by this test (Python's http.server, plain and TLS):
the envelope, options reaching the origin, two fetches in one invocation,
HTTP/2 clients, the loop serving others while flares wait, and every refusal
(capability, allowlist, options, size, time, count) answered as "no response"
with the reason in the log; a client that leaves and a drain while waiting.
"""

import http.server
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

import edge
from edge import http_request

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wasm")
BEAM_TIMEOUT = 4 * edge.SLOW  # seconds; sanitizer builds are slower


def wait_seen(path, count=1):
    """Until the origin has seen `path` `count` times (the flare is waiting)."""
    deadline = time.monotonic() + 20 * edge.SLOW
    while sum(1 for s in Origin.seen if s[1] == path) < count:
        assert time.monotonic() < deadline, "the origin never saw %s x%d" % (path, count)
        time.sleep(0.01)


class Origin(http.server.BaseHTTPRequestHandler):
    """Answers what it saw as JSON. /slow=S sleeps S seconds; /gate/NAME
    waits until the test opens gate NAME (gate(NAME).set())."""
    protocol_version = "HTTP/1.1"
    seen = []
    gates = {}
    lock = threading.Lock()

    @classmethod
    def gate(cls, name):
        with cls.lock:
            return cls.gates.setdefault(name, threading.Event())

    def answer(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        Origin.seen.append((self.command, self.path, dict(self.headers), body))
        if self.path.startswith("/slow"):
            time.sleep(float(self.path.split("=")[1]) if "=" in self.path else 1.0)
        if self.path.startswith("/gate/"):
            Origin.gate(self.path[len("/gate/"):]).wait(120)
        if self.path.startswith("/big"):
            payload = b"x" * (2 << 20)
        else:
            payload = json.dumps({"method": self.command, "path": self.path,
                                  "body": body.decode(errors="replace"),
                                  "x-a": self.headers.get("x-a")}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Origin", "yes")
        self.send_header("Set-Cookie", "a=1")
        self.send_header("Set-Cookie", "b=2")
        self.end_headers()
        try:
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the size test's client stops reading

    do_GET = do_POST = do_PUT = answer

    def log_message(self, *args):
        pass


def serve_origin(tls_files=None):
    server = edge.OriginServer(("127.0.0.1", 0), Origin)
    server.daemon_threads = True
    if tls_files:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls_files)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def origins(tmp_path_factory):
    d = tmp_path_factory.mktemp("origin")
    cert, key = edge.make_cert(str(d), "origin", "origin.test")
    plain, tls = serve_origin(), serve_origin((cert, key))
    yield {"plain": plain.server_address[1], "tls": tls.server_address[1], "cert": cert}
    plain.shutdown()
    tls.shutdown()


def beam_config(d, origins, extra=""):
    return ("beam: {allow: ['127.0.0.1:%d', '127.0.0.1:%d'], timeout: %dms, max_response: 1m,"
            " fetches_per_invocation: 2, ca_file: %s}\nspark: {dir: %s}\n%s"
            % (origins["plain"], origins["tls"], BEAM_TIMEOUT * 1000, origins["cert"],
               d / "spark", extra))


@pytest.fixture(scope="module")
def module_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("beam")
    out = str(d / "beam.wasm")
    subprocess.run(["wat2wasm", os.path.join(HERE, "beam.wat"), "-o", out], check=True,
                   capture_output=True)
    return out


@pytest.fixture(scope="module")
def server(start_server, tmp_path_factory, origins, module_file):
    d = tmp_path_factory.mktemp("srv")
    return start_server(tls=False, loops=1, log="info",
                        wasm_routes=[("/beam", module_file, "capabilities: [beam]"),
                                     ("/nobeam", module_file)],
                        extra_config=beam_config(d, origins))


def fetch(server, url, opts=None, twice=False, path="/beam"):
    headers = {"x-url": url}
    if opts is not None:
        headers["x-opts"] = json.dumps(opts) if not isinstance(opts, str) else opts
    if twice:
        headers["x-twice"] = "1"
    status, _, body = http_request(server, path, headers=headers)
    return status, (json.loads(body) if status == 200 else body)


def log_says(server, words):
    deadline = time.monotonic() + 10 * edge.SLOW
    while time.monotonic() < deadline:
        if words in server.stderr():
            return True
        time.sleep(0.05)
    return False


def test_fetch_answers_the_envelope(server, origins):
    status, env = fetch(server, "http://127.0.0.1:%d/hello?x=1" % origins["plain"])
    assert status == 200 and env["status"] == 200, env
    assert json.loads(env["body"]) == {"method": "GET", "path": "/hello?x=1", "body": "",
                                       "x-a": None}
    assert env["headers"]["x-origin"] == "yes"
    assert env["headers"]["set-cookie"] == "a=1, b=2"  # repeated fields are joined


def test_options_reach_the_origin(server, origins):
    opts = {"method": "PUT", "body": "payload \u00e9", "headers": {"x-a": "1", "Host": "evil"}}
    status, env = fetch(server, "http://127.0.0.1:%d/put" % origins["plain"], opts)
    assert status == 200, env
    seen = json.loads(env["body"])
    assert seen == {"method": "PUT", "path": "/put", "body": "payload \u00e9", "x-a": "1"}
    method, path, headers, body = Origin.seen[-1]
    assert headers["Host"] == "127.0.0.1:%d" % origins["plain"]  # the flare's Host is dropped


def test_two_fetches_in_one_invocation_and_https(server, origins):
    status, env = fetch(server, "https://127.0.0.1:%d/twice" % origins["tls"], twice=True)
    assert status == 200 and json.loads(env["body"])["path"] == "/twice", env
    assert [s[1] for s in Origin.seen[-2:]] == ["/twice", "/twice"]


def test_http2_clients_get_the_answer_too(server, origins):
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-H",
                          "x-url: http://127.0.0.1:%d/h2" % origins["plain"],
                          server.url("/beam")], capture_output=True, timeout=60 * edge.SLOW)
    env = json.loads(out.stdout)
    assert json.loads(env["body"])["path"] == "/h2", out


def test_waiting_flares_do_not_hold_up_the_loop(server, origins):
    results = []
    path = "/gate/loop"

    def waiting():
        results.append(fetch(server, "http://127.0.0.1:%d%s" % (origins["plain"], path)))

    threads = [threading.Thread(target=waiting) for _ in range(4)]
    for t in threads:
        t.start()
    wait_seen(path, 4)
    # Four flares wait at the origin; the one loop still answers everything else.
    for _ in range(10):
        assert http_request(server, "/")[2] == b"hello"
        status, env = fetch(server, "http://127.0.0.1:%d/quick" % origins["plain"])
        assert status == 200
    assert results == []
    Origin.gate("loop").set()
    for t in threads:
        t.join()
    assert [r[0] for r in results] == [200] * 4


@pytest.mark.parametrize("case", ["capability", "allowlist", "options", "size", "time",
                                  "not-a-url"])
def test_refusals_answer_no_response_and_say_why(server, origins, case):
    plain = "http://127.0.0.1:%d" % origins["plain"]
    args, words = {
        "capability": (dict(url=plain + "/x", path="/nobeam"), "does not grant the beam"),
        "allowlist": (dict(url="http://127.0.0.1:1/x"), "127.0.0.1:1 is not in beam.allow"),
        "options": (dict(url=plain + "/x", opts='{"method": 7}'), "options must be a JSON"),
        "size": (dict(url=plain + "/big"), "response body over 1048576 bytes"),
        "time": (dict(url=plain + "/slow=%g" % (BEAM_TIMEOUT + 2)), "timed out"),
        "not-a-url": (dict(url="ftp://127.0.0.1/x"), "not an absolute http"),
    }[case]
    status, body = fetch(server, **args)
    assert status == 502 and body == b"no response", (case, status, body)
    assert log_says(server, words), (case, server.stderr()[-2000:])
    assert http_request(server, "/")[2] == b"hello"


def test_the_fetch_limit_per_invocation(start_server, tmp_path_factory, origins, module_file):
    d = tmp_path_factory.mktemp("limit")
    s = start_server(tls=False, loops=1, log="info",
                     wasm_routes=[("/beam", module_file, "capabilities: [beam]")],
                     extra_config=beam_config(d, origins).replace(
                         "fetches_per_invocation: 2", "fetches_per_invocation: 1"))
    url = "http://127.0.0.1:%d/x" % origins["plain"]
    assert fetch(s, url)[0] == 200
    assert fetch(s, url, twice=True) == (502, b"no response")
    assert log_says(s, "used its 1 fetches (beam.fetches_per_invocation)")


def test_clients_that_leave_while_their_flares_wait(server, origins):
    # HTTP/1.1: the connection closes.
    sock = edge.connect(server.port)
    sock.sendall(("GET /beam HTTP/1.1\r\nHost: t\r\nx-url: http://127.0.0.1:%d/gate/leave1"
                  "\r\n\r\n" % origins["plain"]).encode())
    wait_seen("/gate/leave1")
    sock.close()
    # HTTP/2: the stream is reset, the connection stays.
    h2 = edge.H2(server.port)
    h2.headers(1, edge.request_headers("/beam", extra=[
        ("x-url", "http://127.0.0.1:%d/gate/leave2" % origins["plain"])]))
    wait_seen("/gate/leave2")
    h2.send(edge.frame(0x3, 0, 1, b"\x00\x00\x00\x08"))  # RST_STREAM CANCEL
    Origin.gate("leave1").set()
    Origin.gate("leave2").set()
    # The answers are dropped; the server and the HTTP/2 connection go on.
    h2.headers(3, edge.request_headers("/beam", extra=[
        ("x-url", "http://127.0.0.1:%d/after" % origins["plain"])]))
    hdrs, body, reset = h2.response(3)
    assert edge.h2_status(hdrs) == 200 and reset is None, (hdrs, body)
    h2.close()
    assert fetch(server, "http://127.0.0.1:%d/after" % origins["plain"])[0] == 200
    assert server.alive()


def test_max_waiting_answers_503(start_server, tmp_path_factory, origins, module_file):
    d = tmp_path_factory.mktemp("busy")
    s = start_server(tls=False, loops=1,
                     wasm_routes=[("/beam", module_file, "capabilities: [beam]")],
                     extra_config=beam_config(d, origins).replace(
                         "fetches_per_invocation: 2", "fetches_per_invocation: 2, max_waiting: 2"))
    url = "http://127.0.0.1:%d/gate/busy" % origins["plain"]
    results = []
    threads = [threading.Thread(target=lambda: results.append(fetch(s, url))) for _ in range(2)]
    for t in threads:
        t.start()
    wait_seen("/gate/busy", 2)
    status, fields, body = http_request(s, "/beam", headers={"x-url": url})
    assert status == 503 and fields.get("retry-after") == "1", (status, body)
    assert b"too many requests waiting" in body
    Origin.gate("busy").set()
    for t in threads:
        t.join()
    assert [r[0] for r in results] == [200, 200]
    assert fetch(s, url)[0] == 200  # room again


def test_a_drain_lets_waiting_flares_answer(start_server, tmp_path_factory, origins, module_file):
    d = tmp_path_factory.mktemp("drain")
    s = start_server(tls=False, loops=1,
                     wasm_routes=[("/beam", module_file, "capabilities: [beam]")],
                     extra_config=beam_config(d, origins))
    result = []
    url = "http://127.0.0.1:%d/gate/drain" % origins["plain"]
    t = threading.Thread(target=lambda: result.append(fetch(s, url, twice=True)))
    t.start()
    wait_seen("/gate/drain")
    s.signal(signal.SIGTERM)
    time.sleep(0.2)
    Origin.gate("drain").set()  # the second fetch starts during the drain
    t.join()
    assert result and result[0][0] == 200, result
    assert s.stop() == 0, s.stderr()
    s.stopped_by_test = True


def test_a_drain_that_times_out_ends_waiting_flares(start_server, tmp_path_factory, origins,
                                                    module_file):
    d = tmp_path_factory.mktemp("cut")
    s = start_server(tls=False, loops=1, limits={"drain_timeout": "%dms" % (500 * edge.SLOW)},
                     wasm_routes=[("/beam", module_file, "capabilities: [beam]")],
                     extra_config=beam_config(d, origins))
    sock = edge.connect(s.port)
    sock.sendall(("GET /beam HTTP/1.1\r\nHost: t\r\nx-url: http://127.0.0.1:%d/gate/cut"
                  "\r\n\r\n" % origins["plain"]).encode())
    wait_seen("/gate/cut")
    s.signal(signal.SIGTERM)
    assert s.stop() == 1, s.stderr()  # the drain timed out; the waiting flare was ended
    s.stopped_by_test = True
    sock.close()
    Origin.gate("cut").set()
    assert "drain timed out" in s.stderr()
    assert "Sanitizer" not in s.stderr()


def test_config_checks_the_beam_section(tmp_path):
    for beam, words in [("{allow: [http://x/]}", "'beam.allow' entries are HOST"),
                        ("{allow: ['*.example.com:8443']}", "'beam.allow' entries are HOST"),
                        ("{allow: ['::1']}", "'beam.allow' entries are HOST"),
                        ("{allow: [example.com.]}", "'beam.allow' entries are HOST"),
                        ("{allow: x}", "'beam.allow' must be a list"),
                        ("{timeout: 0s}", "timeouts must be above 0"),
                        ("{max_response: 65m}", "at most 64m"),
                        ("{color: red}", "unknown key 'color'"),
                        ("{ca_file: /nonexistent/ca.pem}", "beam.ca_file")]:
        run = edge.serve_check("listeners: [{listen: '127.0.0.1:0'}]\nroutes: [{flare: hello}]\n"
                               "beam: %s\n" % beam, tmp_path)
        assert run.returncode == 2 and words in run.stderr, (beam, run.returncode, run.stderr)
    run = edge.serve_check("routes: [{flare: hello}]\nbeam: {allow: ['*', api.example.com, "
                           "'db:5984', '[::1]:8080', '[::1]', '*.example.org'], max_waiting: 10}\n",
                           tmp_path)
    assert run.returncode == 0, run.stderr

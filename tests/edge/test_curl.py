"""curl against `ember serve`: HTTP/1.1, h2c (prior knowledge and Upgrade),
h2 and HTTP/1.1 over TLS, SNI. Bodies and statuses are checked exactly."""

import os
import subprocess

import pytest

import edge


@pytest.fixture(scope="module")
def server(start_server):
    return start_server(tls=True, sni=True)


@pytest.fixture(scope="module")
def blob(tmp_path_factory):
    """Files of pseudo-random bytes: 1 MiB and 2 MiB."""
    d = tmp_path_factory.mktemp("blobs")
    out = {}
    for name, size in (("1m", 1 << 20), ("2m", 2 << 20)):
        p = d / name
        p.write_bytes(os.urandom(size))
        out[name] = str(p)
    return out


class Result:
    def __init__(self, proc, body, headers, out):
        self.proc = proc
        self.body = body
        self.headers = headers  # list of (lower-case name, value) of the last response
        fields = out.split()
        self.status = int(fields[0])
        self.version = fields[1]
        self.connects = [int(x) for x in fields[2:]]
        self.stderr = proc.stderr.decode(errors="replace")

    def header(self, name):
        v = [val for n, val in self.headers if n == name]
        return v[-1] if v else None


def curl(tmp_path, *args, urls):
    """Runs curl on `urls` (one connection when they share a host); returns
    the last response with its status, HTTP version and connects per URL."""
    body = tmp_path / "body"
    head = tmp_path / "head"
    cmd = ["curl", "-sS", "-v", "--max-time", str(int(120 * edge.SLOW)), "-o", str(body),
           "-D", str(head), "-w", "%{http_code} %{http_version} %{num_connects}\\n"] + list(args)
    extra = []
    for u in urls[1:]:
        extra += ["-o", str(body), u]
    proc = subprocess.run(cmd + [urls[0]] + extra, capture_output=True, timeout=180 * edge.SLOW)
    assert proc.returncode == 0, "curl failed (%d): %s" % (proc.returncode, proc.stderr.decode())
    out = proc.stdout.decode().split("\n")
    lines = [l for l in out if l.strip()]
    first = lines[0].split()
    status, version = first[0], first[1]
    connects = [l.split()[2] for l in lines]
    # The headers of the last response (after any 100 Continue or 101).
    blocks = head.read_bytes().decode("latin-1").split("\r\n\r\n")
    blocks = [b for b in blocks if b.strip()]
    last = blocks[-1].split("\r\n")[1:]
    headers = [(l.split(":", 1)[0].strip().lower(), l.split(":", 1)[1].strip()) for l in last if ":" in l]
    r = Result(proc, body.read_bytes(), headers, " ".join([status, version] + connects))
    r.all_status = [int(l.split()[0]) for l in lines]
    r.header_blocks = blocks
    return r


def test_get_http11(server, tmp_path):
    r = curl(tmp_path, "--http1.1", urls=[server.url("/")])
    assert (r.status, r.version, r.body) == (200, "1.1", b"hello")
    assert r.header("content-type") == "text/plain"
    assert r.header("content-length") == "5"


def test_post_echo_http11(server, tmp_path):
    r = curl(tmp_path, "--http1.1", "-H", "Content-Type: text/x-test", "--data-binary", "ping!",
             urls=[server.url("/echo?q=1")])
    assert (r.status, r.version, r.body) == (200, "1.1", b"ping!")
    assert r.header("content-type") == "text/x-test"
    assert r.header("x-echo-method") == "POST"
    assert r.header("x-echo-url") == "/echo?q=1"
    assert r.header("x-echo-protocol") == "HTTP/1.1"


def test_one_mib_both_ways_http11(server, tmp_path, blob):
    r = curl(tmp_path, "--http1.1", "--data-binary", "@" + blob["1m"], urls=[server.url("/echo")])
    assert r.status == 200
    assert r.body == open(blob["1m"], "rb").read()


def test_chunked_upload(server, tmp_path, blob):
    r = curl(tmp_path, "--http1.1", "-H", "Transfer-Encoding: chunked", "--data-binary",
             "@" + blob["1m"], urls=[server.url("/echo")])
    assert "transfer-encoding: chunked" in r.stderr.lower()
    assert r.status == 200
    assert r.body == open(blob["1m"], "rb").read()


def test_expect_100_continue_2mib(server, tmp_path, blob):
    # A long expect100 timeout: the body goes only after the server's 100.
    r = curl(tmp_path, "--http1.1", "-H", "Expect: 100-continue", "--expect100-timeout", "60",
             "--data-binary", "@" + blob["2m"], urls=[server.url("/echo")])
    assert "HTTP/1.1 100 Continue" in r.stderr, r.stderr
    assert r.status == 200
    assert r.body == open(blob["2m"], "rb").read()


def test_keep_alive_reuse(server, tmp_path):
    r = curl(tmp_path, "--http1.1", urls=[server.url("/"), server.url("/echo")])
    assert r.connects == [1, 0], r.stderr
    assert "Re-using existing connection" in r.stderr
    assert r.all_status == [200, 200]


def test_head_has_no_body(server, tmp_path):
    r = curl(tmp_path, "--http1.1", "-I", urls=[server.url("/")])
    assert r.status == 200
    assert r.header("content-length") == "5"
    # On the wire: no body bytes, and the connection serves the next request.
    s = edge.connect(server.port)
    s.sendall(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
    rd = edge.Reader(s)
    head = edge.read_response(rd, head=True)
    assert head.status == 200 and head.header("content-length") == "5"
    nxt = edge.read_response(rd)
    assert nxt.status == 200 and nxt.body == b"hello"
    s.close()


def test_h2c_prior_knowledge(server, tmp_path):
    r = curl(tmp_path, "--http2-prior-knowledge", urls=[server.url("/")])
    assert (r.status, r.version, r.body) == (200, "2", b"hello")
    r = curl(tmp_path, "--http2-prior-knowledge", "--data-binary", "h2 body",
             urls=[server.url("/echo")])
    assert (r.status, r.version, r.body) == (200, "2", b"h2 body")
    assert r.header("x-echo-protocol") == "HTTP/2"


def test_h2c_prior_knowledge_one_mib(server, tmp_path, blob):
    r = curl(tmp_path, "--http2-prior-knowledge", "--data-binary", "@" + blob["1m"],
             urls=[server.url("/echo")])
    assert (r.status, r.version) == (200, "2")
    assert r.body == open(blob["1m"], "rb").read()


def test_h2c_upgrade(server, tmp_path):
    r = curl(tmp_path, "--http2", urls=[server.url("/")])
    assert "Upgrade: h2c" in r.stderr
    assert r.header_blocks[0].startswith("HTTP/1.1 101"), r.header_blocks
    assert (r.status, r.version, r.body) == (200, "2", b"hello")


def test_h2c_upgrade_with_body(server, tmp_path):
    r = curl(tmp_path, "--http2", "--data-binary", "upgraded body", urls=[server.url("/echo")])
    assert (r.status, r.body) == (200, b"upgraded body")
    if r.version == "2":
        assert r.header("x-echo-protocol") == "HTTP/2"


def test_h2c_upgrade_then_more_requests(server, tmp_path):
    r = curl(tmp_path, "--http2", urls=[server.url("/"), server.url("/echo?x")])
    assert r.connects == [1, 0]
    assert r.all_status == [200, 200]
    assert r.version == "2"
    assert r.header("x-echo-url") == "/echo?x"


def test_h2_tls(server, tmp_path):
    r = curl(tmp_path, "--http2", "--cacert", server.cert, urls=[server.tls_url("/")])
    assert (r.status, r.version, r.body) == (200, "2", b"hello")
    assert "ALPN: server accepted h2" in r.stderr


def test_h2_tls_one_mib(server, tmp_path, blob):
    r = curl(tmp_path, "--http2", "--cacert", server.cert, "--data-binary", "@" + blob["1m"],
             urls=[server.tls_url("/echo")])
    assert (r.status, r.version) == (200, "2")
    assert r.body == open(blob["1m"], "rb").read()
    assert r.header("x-echo-protocol") == "HTTP/2"


def test_http11_tls(server, tmp_path, blob):
    r = curl(tmp_path, "--http1.1", "--cacert", server.cert, urls=[server.tls_url("/")])
    assert (r.status, r.version, r.body) == (200, "1.1", b"hello")
    r = curl(tmp_path, "--http1.1", "--cacert", server.cert, "--data-binary", "@" + blob["1m"],
             urls=[server.tls_url("/echo")])
    assert r.status == 200 and r.body == open(blob["1m"], "rb").read()
    assert r.header("x-echo-protocol") == "HTTP/1.1"


def test_tls_keep_alive_reuse(server, tmp_path):
    r = curl(tmp_path, "--http1.1", "--cacert", server.cert,
             urls=[server.tls_url("/"), server.tls_url("/")])
    assert r.connects == [1, 0]
    assert r.all_status == [200, 200]


def test_sni_selects_certificate(server, tmp_path):
    name = "sni.ember.test:%d:127.0.0.1" % server.tls_port
    url = "https://sni.ember.test:%d/" % server.tls_port
    # The SNI certificate (self-signed) verifies only if the server sent it.
    r = curl(tmp_path, "--resolve", name, "--cacert", server.sni_cert, urls=[url])
    assert (r.status, r.body) == (200, b"hello")
    assert "CN=sni.ember.test" in r.stderr
    # Without that SNI name: the default certificate.
    r = curl(tmp_path, "--cacert", server.cert, "--resolve",
             "localhost:%d:127.0.0.1" % server.tls_port,
             urls=["https://localhost:%d/" % server.tls_port])
    assert (r.status, r.body) == (200, b"hello")
    assert "CN=ember-edge-test" in r.stderr
    bad = subprocess.run(["curl", "-sS", "--max-time", "60", "--resolve", name, "--cacert",
                          server.cert, url], capture_output=True)
    assert bad.returncode == 60, bad.stderr  # the server sent the SNI certificate, not the default one

"""nghttp, h2load and wrk against `ember serve`: every request answered 2xx,
no errors. No rate is asserted beyond "some requests completed" (the suite
also runs against slow sanitizer builds)."""

import re
import subprocess

import pytest

import edge


@pytest.fixture(scope="module")
def server(start_server):
    return start_server(tls=True)


def run(cmd, timeout=240):
    p = subprocess.run(cmd, capture_output=True, timeout=timeout * edge.SLOW)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def test_nghttp_h2c_verbose(server):
    rc, out, err = run(["nghttp", "-nv", server.url("/")])
    assert rc == 0, out + err
    assert "recv SETTINGS frame" in out
    assert ":status: 200" in out
    assert "recv DATA frame <length=5, flags=0x01" in out
    assert "recv GOAWAY" not in out


def test_nghttp_body_h2c(server, tmp_path):
    data = tmp_path / "data"
    data.write_bytes(b"nghttp upload " * 1000)
    rc, out, err = run(["nghttp", "-d", str(data), server.url("/echo")])
    assert rc == 0, err
    assert out.encode() == data.read_bytes()


def test_nghttp_upgrade(server):
    rc, out, err = run(["nghttp", "-nvu", server.url("/")])
    assert rc == 0, out + err
    assert "HTTP Upgrade response" in out and "HTTP/1.1 101" in out
    assert ":status: 200" in out


def test_nghttp_tls(server):
    rc, out, err = run(["nghttp", "-nv", server.tls_url("/")])
    assert rc == 0, out + err
    assert "The negotiated protocol: h2" in out
    assert ":status: 200" in out


def test_nghttp_many_streams(server):
    urls = [server.url("/?n=%d" % i) for i in range(50)]
    rc, out, err = run(["nghttp", "-nv", "-m", "2"] + urls)
    assert rc == 0, out + err
    assert out.count(":status: 200") == 100


H2LOAD_DONE = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                         r"(\d+) failed, (\d+) errored, (\d+) timeout")
H2LOAD_CODES = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")


def check_h2load(out, n):
    m = H2LOAD_DONE.search(out)
    assert m, out
    total, started, done, ok, failed, errored, timeout = map(int, m.groups())
    assert (total, done, ok, failed, errored, timeout) == (n, n, n, 0, 0, 0), out
    c = H2LOAD_CODES.search(out)
    assert c and tuple(map(int, c.groups())) == (n, 0, 0, 0), out


@pytest.mark.parametrize("path", ["/", "/echo"])
def test_h2load_h2c(server, path, tmp_path):
    args = ["h2load", "-n", "2000", "-c", "4", "-m", "16", "-T", "120"]
    if path == "/echo":
        data = tmp_path / "d"
        data.write_bytes(b"x" * 3000)
        args += ["-d", str(data)]
    rc, out, err = run(args + [server.url(path)])
    assert rc == 0, out + err
    assert "Application protocol: h2c" in out
    check_h2load(out, 2000)


def test_h2load_tls(server):
    rc, out, err = run(["h2load", "-n", "2000", "-c", "4", "-m", "16", "-T", "120",
                        server.tls_url("/")])
    assert rc == 0, out + err
    assert "Application protocol: h2" in out
    check_h2load(out, 2000)


def test_h2load_http11(server):
    rc, out, err = run(["h2load", "--h1", "-n", "2000", "-c", "4", "-m", "8", "-T", "120",
                        server.url("/")])
    assert rc == 0, out + err
    check_h2load(out, 2000)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_wrk(server, tls):
    url = server.tls_url("/") if tls else server.url("/")
    rc, out, err = run(["wrk", "-t1", "-c16", "-d2s", "--timeout", "30s", url])
    assert rc == 0, out + err
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert m and float(m.group(1)) > 0, out
    m = re.search(r"(\d+) requests in", out)
    assert m and int(m.group(1)) > 0, out
    assert "Socket errors" not in out, out
    assert "Non-2xx or 3xx" not in out, out

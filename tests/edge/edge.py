"""Shared helpers for the edge server tests: start `ember serve` from a
generated config, certificates, and raw-socket clients for HTTP/1.1,
HTTP/2 (hyperframe + hpack) and WebSocket frames.

Every wait is bounded by a generous timeout (the same suite runs against a
ThreadSanitizer build, several times slower); nothing asserts speed.
"""

import collections
import http.server
import os
import select
import signal
import socket
import ssl
import struct
import subprocess
import time

import hpack
import hyperframe.frame as hf

# Seconds a single read may wait for the server; scaled for slow builds.
SLOW = float(os.environ.get("EMBER_TEST_SLOW", "1"))
TIMEOUT = 20.0 * SLOW


def ember_binary():
    path = os.environ.get("EMBER_BIN")
    if not path or not os.access(path, os.X_OK):
        raise RuntimeError("EMBER_BIN must name the ember binary (got %r)" % path)
    return path


def free_ports(n):
    """n distinct ports that were free a moment ago (bind port 0, close)."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


class OriginServer(http.server.ThreadingHTTPServer):
    """Python's threading HTTP server as an origin for Ember's outbound
    requests: a listen backlog of 128, not socketserver's 5, which a burst
    of Ember's new connections overflows on a slow (sanitizer) run, the
    kernel then resetting one before it is accepted."""
    request_queue_size = 128
    daemon_threads = True


def make_cert(directory, name, cn, dns=()):
    """A self-signed EC certificate for CN with IP SAN 127.0.0.1 (and DNS
    names). Returns (cert_path, key_path)."""
    cert = os.path.join(directory, name + ".pem")
    key = os.path.join(directory, name + ".key")
    san = ",".join(["IP:127.0.0.1"] + ["DNS:" + d for d in dns])
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn,
         "-addext", "subjectAltName=" + san, "-addext", "basicConstraints=critical,CA:TRUE"],
        check=True, capture_output=True)
    return cert, key


DEFAULT_ROUTES = [
    ("*", "/ws", "ws-echo"),
    ("*", "/chat", "chat"),
    ("*", "/echo", "echo"),
    ("*", "/", "hello"),
]


class Ember:
    """One `ember serve` process with a plain and (optionally) a TLS listener."""

    def __init__(self, workdir, limits=None, tls=True, loops=2, sni=False, alpn=None,
                 wasm_routes=(), wasm=None, log="warn", extra_config=""):
        self.workdir = workdir
        # (path, module file[, extra route keys as YAML flow text]), ahead of the defaults
        self.wasm_routes = list(wasm_routes)
        self.extra_config = extra_config  # more top-level YAML (e.g. secrets:)
        self.wasm = dict(wasm or {})  # the config's `wasm:` settings
        self.log = log
        self.limits = dict(limits or {})
        self.tls = tls
        self.loops = loops
        self.sni = sni
        self.alpn = alpn
        self.proc = None
        self.port = None
        self.tls_port = None
        self.cert = self.key = None
        self.sni_cert = self.sni_key = None
        if tls:
            self.cert, self.key = make_cert(workdir, "server", "ember-edge-test", ["localhost"])
            if sni:
                self.sni_cert, self.sni_key = make_cert(workdir, "sni", "sni.ember.test",
                                                        ["sni.ember.test"])
        self.stderr_path = os.path.join(workdir, "ember.stderr")
        self.config_path = os.path.join(workdir, "ember.yaml")

    def _config(self):
        lines = ["loops: %d" % self.loops, "log: %s" % self.log, "limits:"]
        limits = {"drain_timeout": "20s"}
        limits.update(self.limits)
        for k, v in limits.items():
            lines.append("  %s: %s" % (k, v))
        lines.append("listeners:")
        lines.append("  - listen: 127.0.0.1:%d" % self.port)
        if self.tls:
            lines.append("  - listen: 127.0.0.1:%d" % self.tls_port)
            lines.append("    tls:")
            lines.append("      certificates:")
            lines.append("        - {cert: %s, key: %s}" % (self.cert, self.key))
            if self.sni:
                lines.append("        - {cert: %s, key: %s, hosts: [sni.ember.test]}"
                             % (self.sni_cert, self.sni_key))
            if self.alpn is not None:
                lines.append("      alpn: [%s]" % ", ".join(self.alpn))
        if self.wasm:
            lines.append("wasm:")
            for k, v in self.wasm.items():
                lines.append("  %s: %s" % (k, v))
        lines.append("routes:")
        for route in self.wasm_routes:
            extra = (", " + route[2]) if len(route) > 2 else ""
            lines.append('  - {path: %s, wasm: "%s"%s}' % (route[0], route[1], extra))
        for host, path, flare in DEFAULT_ROUTES:
            lines.append('  - {host: "%s", path: %s, flare: %s}' % (host, path, flare))
        return "\n".join(lines) + "\n" + self.extra_config

    def start(self):
        for attempt in range(5):
            self.port, self.tls_port = free_ports(2)
            with open(self.config_path, "w") as f:
                f.write(self._config())
            err = open(self.stderr_path, "ab")
            self.proc = subprocess.Popen([ember_binary(), "serve", "--config", self.config_path],
                                         stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
            err.close()
            banner = b""
            deadline = time.monotonic() + 30 * SLOW
            # The banner is printed after every listener is bound.
            while b"loops " not in banner and time.monotonic() < deadline:
                r, _, _ = select.select([self.proc.stdout], [], [], 0.5)
                if r:
                    chunk = os.read(self.proc.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    banner += chunk
            if b"loops " in banner:
                self.banner = banner.decode()
                return self
            rc = self.proc.wait(timeout=30 * SLOW) if self.proc.poll() is None else self.proc.returncode
            if rc == 3:  # cannot bind: a port was taken meanwhile
                continue
            raise RuntimeError("ember serve did not start (status %s): %s\n%s"
                               % (rc, banner.decode(errors="replace"), self.stderr()))
        raise RuntimeError("ember serve could not bind free ports: " + self.stderr())

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode(errors="replace")[-8000:]
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if sig == signal.SIGTERM:
            self.terminated = True
        self.proc.send_signal(sig)

    def stop(self, timeout=60):
        """SIGTERM (unless sent already: a second one cuts the drain short)
        and wait; returns the exit status."""
        if self.proc.poll() is None and not getattr(self, "terminated", False):
            self.signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "hung"
        self.proc.stdout.close()
        return rc

    # ---- addresses ----
    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def tls_url(self, path="/"):
        return "https://127.0.0.1:%d%s" % (self.tls_port, path)


def serve_check(config_text, directory):
    """`ember serve --config FILE --check` on `config_text` (FILE in
    `directory`): the CompletedProcess, text mode."""
    path = os.path.join(str(directory), "check.yaml")
    with open(path, "w") as f:
        f.write(config_text)
    return subprocess.run([ember_binary(), "serve", "--config", path, "--check"],
                          capture_output=True, text=True, timeout=120 * SLOW)


def stop_and_check(server):
    """Teardown for module fixtures: the server must still run (no crash)
    and drain cleanly (status 0) on SIGTERM."""
    was_alive = server.alive()
    rc = server.stop()
    assert was_alive, "ember serve died during the tests (status %s):\n%s" % (
        server.proc.returncode, server.stderr())
    assert rc == 0, "ember serve exited with %s on SIGTERM:\n%s" % (rc, server.stderr())


# ---------------------------------------------------------------- sockets

def http_request(server, path, body=None, method=None, headers=None, host="t"):
    """One HTTP/1.1 request on a fresh connection: (status, headers, body)."""
    s = connect(server.port)
    try:
        head = "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n" % (
            method or ("POST" if body is not None else "GET"), path, host)
        for k, v in (headers or {}).items():
            head += "%s: %s\r\n" % (k, v)
        data = body or b""
        if body is not None:
            head += "Content-Length: %d\r\n" % len(data)
        s.sendall(head.encode() + b"\r\n" + data)
        raw = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
    finally:
        s.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        fields[k.strip().lower()] = v.strip()
    return status, fields, payload


def connect(port, timeout=TIMEOUT):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def tls_context(cafile, alpn=None):
    ctx = ssl.create_default_context(cafile=cafile)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def connect_tls(port, cafile, alpn=None, server_hostname="127.0.0.1", timeout=TIMEOUT):
    raw = connect(port, timeout)
    return tls_context(cafile, alpn).wrap_socket(raw, server_hostname=server_hostname)


def recv_all(sock, timeout=TIMEOUT):
    """Everything until the peer closes (or timeout: returns what came)."""
    sock.settimeout(timeout)
    out = b""
    try:
        while True:
            b = sock.recv(65536)
            if not b:
                break
            out += b
    except (socket.timeout, ConnectionResetError):
        pass
    return out


def closed_by_peer(sock, timeout=TIMEOUT):
    """True when the peer closes the connection (EOF or reset) in time,
    discarding anything still sent."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return False


class Reader:
    """Buffered reads from a socket, for parsing responses."""

    def __init__(self, sock, timeout=TIMEOUT):
        self.sock = sock
        self.buf = b""
        self.eof = False
        self.timeout = timeout

    def _fill(self):
        if self.eof:
            raise EOFError("connection closed")
        self.sock.settimeout(self.timeout)
        try:
            b = self.sock.recv(65536)
        except ConnectionResetError:
            b = b""
        if not b:
            self.eof = True
            raise EOFError("connection closed")
        self.buf += b

    def read_until(self, sep):
        while sep not in self.buf:
            self._fill()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_to_eof(self):
        try:
            while True:
                self._fill()
        except EOFError:
            pass
        out, self.buf = self.buf, b""
        return out

    def at_eof(self):
        """True when nothing more comes and the peer closed."""
        if self.buf:
            return False
        try:
            self._fill()
        except EOFError:
            return True
        except socket.timeout:
            return False
        return False


class Response:
    def __init__(self, status, reason, headers, body, version):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (lower-case name, value)
        self.body = body
        self.version = version

    def header(self, name):
        vals = [v for n, v in self.headers if n == name.lower()]
        return vals[0] if vals else None

    def header_all(self, name):
        return [v for n, v in self.headers if n == name.lower()]

    def __repr__(self):
        return "Response(%d %s, %r, %r)" % (self.status, self.reason, self.headers, self.body[:200])


def read_response(reader, head=False):
    """One HTTP/1.1 response (interim 1xx answers are returned too)."""
    line = reader.read_until(b"\r\n").decode("latin-1").rstrip("\r\n")
    version, _, rest = line.partition(" ")
    code, _, reason = rest.partition(" ")
    status = int(code)
    headers = []
    while True:
        l = reader.read_until(b"\r\n")
        if l == b"\r\n":
            break
        name, _, value = l.decode("latin-1").partition(":")
        headers.append((name.strip().lower(), value.strip()))
    resp = Response(status, reason, headers, b"", version)
    if head or status < 200 or status in (204, 304):
        return resp
    te = resp.header("transfer-encoding")
    cl = resp.header("content-length")
    if te and "chunked" in te.lower():
        body = b""
        while True:
            size = int(reader.read_until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                while reader.read_until(b"\r\n") != b"\r\n":
                    pass
                break
            body += reader.read_exact(size)
            reader.read_exact(2)
        resp.body = body
    elif cl is not None:
        resp.body = reader.read_exact(int(cl))
    else:
        resp.body = reader.read_to_eof()
    return resp


def http1_request(port, raw, head=False, timeout=TIMEOUT):
    """Sends raw bytes on a fresh connection; returns (response, reader)."""
    s = connect(port, timeout)
    s.sendall(raw)
    r = Reader(s, timeout)
    return read_response(r, head=head), r


def get(path="/", host="t"):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode()


def assert_serves(server):
    """A fresh connection gets the hello flare's exact answer (plain HTTP/1.1)."""
    s = connect(server.port)
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: health\r\nConnection: close\r\n\r\n")
        resp = read_response(Reader(s))
    finally:
        s.close()
    assert resp.status == 200, resp
    assert resp.body == b"hello", resp


# ---------------------------------------------------------------- HTTP/2 raw frames

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# RFC 9113 section 7.
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0, 1, 2, 3
SETTINGS_TIMEOUT, STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM = 4, 5, 6, 7
CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, ENHANCE_YOUR_CALM = 8, 9, 10, 11

ERROR_NAMES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
               4: "SETTINGS_TIMEOUT", 5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR",
               7: "REFUSED_STREAM", 8: "CANCEL", 9: "COMPRESSION_ERROR", 10: "CONNECT_ERROR",
               11: "ENHANCE_YOUR_CALM", 12: "INADEQUATE_SECURITY", 13: "HTTP_1_1_REQUIRED"}

# Frame types.
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20


def frame(ftype, flags, stream, payload=b"", length=None):
    """A raw frame; `length` overrides the header's length field."""
    n = len(payload) if length is None else length
    return struct.pack(">I", n)[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def settings_frame(pairs=(), flags=0):
    return frame(SETTINGS, flags, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def request_headers(path="/", method="GET", authority="127.0.0.1", extra=(), scheme="http"):
    return [(":method", method), (":scheme", scheme), (":path", path),
            (":authority", authority)] + list(extra)


class H2:
    """A raw HTTP/2 client connection: frames built by hand, headers
    encoded with hpack, frames read with hyperframe."""

    def __init__(self, port, handshake=True, timeout=TIMEOUT, sock=None):
        self.sock = sock or connect(port, timeout)
        self.timeout = timeout
        self.buf = b""
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.dec.max_allowed_table_size = 65536
        self.frames = []  # everything read, in order
        self.by_stream = {}  # stream -> frames not yet taken by response()
        self.eof = False
        self.server_settings = {}
        if handshake:
            self.send(PREFACE + settings_frame())
            self.read_until(lambda f: isinstance(f, hf.SettingsFrame) and "ACK" not in f.flags)
            self.send(settings_frame(flags=ACK))

    def send(self, data):
        self.sock.sendall(data)

    def encode(self, headers):
        return self.enc.encode(headers)

    def headers(self, stream, headers, end_stream=True, end_headers=True, extra_flags=0):
        flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0) | extra_flags
        self.send(frame(HEADERS, flags, stream, self.encode(headers)))

    def data(self, stream, payload, end_stream=True):
        self.send(frame(DATA, END_STREAM if end_stream else 0, stream, payload))

    def _read_raw(self):
        while True:
            if len(self.buf) >= 9:
                length = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + length:
                    f, _ = hf.Frame.parse_frame_header(memoryview(self.buf[:9]))
                    f.parse_body(memoryview(self.buf[9:9 + length]))
                    self.buf = self.buf[9 + length:]
                    return f
            if self.eof:
                return None
            self.sock.settimeout(self.timeout)
            try:
                b = self.sock.recv(1 << 20)
            except ConnectionResetError:
                b = b""
            if not b:
                self.eof = True
            self.buf += b

    def _read_frame(self):
        """The next frame, recorded in self.frames. Header blocks are decoded
        here, in arrival order (HPACK state is per connection): a HEADERS
        frame gets `.decoded` with its block's fields (CONTINUATIONs folded in)."""
        f = self._read_raw()
        if f is None:
            return None
        if isinstance(f, hf.SettingsFrame) and "ACK" not in f.flags:
            self.server_settings.update(f.settings)
        if isinstance(f, hf.HeadersFrame):
            block = f.data
            while "END_HEADERS" not in f.flags:
                g = self._read_raw()
                if g is None:
                    break
                block += g.data
                if "END_HEADERS" in g.flags:
                    f.flags.add("END_HEADERS")
            f.decoded = [(k.decode(), v.decode()) for k, v in self.dec.decode(block, raw=True)]
        self.frames.append(f)
        if f.stream_id:
            self.by_stream.setdefault(f.stream_id, collections.deque()).append(f)
        return f

    def read_until(self, pred):
        """Reads frames until pred(frame) is true; returns that frame, or
        None at EOF. Raises socket.timeout when nothing comes."""
        while True:
            f = self._read_frame()
            if f is None or pred(f):
                return f

    def goaway(self):
        """The GOAWAY the server sends, then EOF (returns the frame or None)."""
        g = self.read_until(lambda f: isinstance(f, hf.GoAwayFrame))
        return g

    def wait_closed(self):
        """Reads to EOF; returns every frame read meanwhile."""
        start = len(self.frames)
        while self._read_frame() is not None:
            pass
        return self.frames[start:]

    def response(self, stream):
        """(headers, body, reset code or None) of one stream, reading to its
        end. Frames of other streams read meanwhile stay in self.frames for
        their own response() calls."""
        hdrs, body = [], b""
        queue = self.by_stream.setdefault(stream, collections.deque())
        while True:
            while not queue:
                if self._read_frame() is None:
                    raise EOFError("connection closed before stream %d ended" % stream)
            f = queue.popleft()
            if isinstance(f, hf.HeadersFrame):
                hdrs += f.decoded
            elif isinstance(f, hf.DataFrame):
                body += f.data
                n = f.flow_controlled_length
                if n:
                    # Keep windows open: large answers must not stall.
                    upd = frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", n))
                    if "END_STREAM" not in f.flags:
                        upd += frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", n))
                    try:
                        self.send(upd)
                    except OSError:
                        pass  # closing: the answer is read all the same
            elif isinstance(f, hf.RstStreamFrame):
                return hdrs, body, f.error_code
            if "END_STREAM" in f.flags:
                return hdrs, body, None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def h2_status(hdrs):
    for k, v in hdrs:
        if k == ":status":
            return int(v)
    return None


def h2_assert_serves(port):
    """A fresh h2c connection gets the hello flare's answer."""
    c = H2(port)
    try:
        c.headers(1, request_headers("/"))
        hdrs, body, rst = c.response(1)
    finally:
        c.close()
    assert rst is None and h2_status(hdrs) == 200 and body == b"hello", (hdrs, body, rst)


# ---------------------------------------------------------------- WebSocket raw frames

WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
WS_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def ws_upgrade_request(path="/ws", host="t", key=WS_KEY, version="13", extra=""):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: %s\r\n%s\r\n"
            % (path, host, key, version, extra)).encode()


def ws_frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length_form=None, key=b"\x11\x22\x33\x44",
             length=None):
    """A client frame. length_form forces 7/16/64-bit length encoding;
    length overrides the declared length."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if mask else 0
    form = length_form or (7 if n < 126 else 16 if n < 65536 else 64)
    if form == 7:
        head = bytes([b0, mbit | n])
    elif form == 16:
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if mask:
        masked = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        return head + key + masked
    return head + payload


def ws_close_payload(code, reason=b""):
    return struct.pack(">H", code) + reason


class WS:
    """A raw WebSocket client connection (after a 101)."""

    def __init__(self, port, path="/ws", timeout=TIMEOUT):
        self.sock = connect(port, timeout)
        self.sock.sendall(ws_upgrade_request(path))
        self.reader = Reader(self.sock, timeout)
        resp = read_response(self.reader)
        assert resp.status == 101, resp
        assert resp.header("sec-websocket-accept") == WS_ACCEPT, resp

    def send(self, data):
        self.sock.sendall(data)

    def read_frame(self):
        """(fin, opcode, payload) of the next server frame; None at EOF."""
        try:
            h = self.reader.read_exact(2)
        except EOFError:
            return None
        fin = bool(h[0] & 0x80)
        assert h[0] & 0x70 == 0, "server set reserved bits"
        assert not h[1] & 0x80, "server masked a frame"
        n = h[1] & 0x7F
        if n == 126:
            n = struct.unpack(">H", self.reader.read_exact(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self.reader.read_exact(8))[0]
        return fin, h[0] & 0x0F, self.reader.read_exact(n)

    def read_message(self):
        """(opcode, payload) of the next data message, answering nothing."""
        op, data = None, b""
        while True:
            f = self.read_frame()
            assert f is not None, "connection closed"
            fin, o, p = f
            if o in (OP_PING, OP_PONG):
                return o, p
            if o == OP_CLOSE:
                return o, p
            if op is None:
                op = o
            data += p
            if fin:
                return op, data

    def expect_close(self):
        """The server's Close code (None when it sent no payload) and then EOF.
        Data frames before the Close are skipped."""
        while True:
            f = self.read_frame()
            assert f is not None, "connection closed without a Close frame"
            if f[1] == OP_CLOSE:
                payload = f[2]
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                return code, payload[2:]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def ws_assert_serves(port):
    ws = WS(port)
    try:
        ws.send(ws_frame(OP_TEXT, b"still here"))
        assert ws.read_message() == (OP_TEXT, b"still here")
    finally:
        ws.close()

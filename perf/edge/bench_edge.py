#!/usr/bin/python3
"""The edge benchmark: Ember vs nginx vs h2o vs libwebsockets, one run.

usage: bench_edge.py [--build DIR] [--quick] [--rounds N] [--seconds S] ...
       (perf/edge/run.sh builds the tools and runs this; see perf/edge/README.md)

Loads (server pinned to one core, load generator to the other):
  http1  wrk -t1 -c64, HTTP/1.1 keep-alive GET, 5-byte body
  h2c    h2load -t1 -c16 -m16, HTTP/2 prior knowledge over TCP
  h2tls  h2load -t1 -c16 -m16, HTTP/2 over TLS 1.3 (ALPN h2)
  ws     ember-ws-load, 64 connections, 32-byte masked text, 1 in flight each
Servers: ember (ember serve), nginx, h2o, floor (do-nothing epoll HTTP/1.1),
lws (libwebsockets echo), floor-ws (do-nothing epoll WebSocket echo).

Rounds are interleaved (A B C A B C ...). Each measurement: server CPU
(utime+stime+cutime+cstime of the server's whole process tree, /proc) over the
load generator's lifetime, divided by the requests it completed; the rate and
p50/p99 latency from the generator. Then RSS per idle keep-alive connection
(10,000 connections held by ember-idle-conns) and, for Ember, heap calls per
request (LD_PRELOAD counter). Tables on stdout, progress on stderr, files in
--out. Exit status: 0 done, 1 harness error, 2 usage, 3 a target failed (only
with --strict).
"""
import argparse
import csv
import datetime
import os
import random
import re
import select
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Quantile grid kept per measurement (for the CDF plot): 0.1 % steps + tail.
GRID = [i / 10 for i in range(1, 1000)] + [99.95, 99.99]

LOADS = {
    "http1": dict(title="HTTP/1.1 keep-alive: wrk -t1 -c64, GET / -> 200 with a 5-byte body",
                  tool="wrk", servers=["ember", "nginx", "h2o", "floor"], unit="req"),
    "h2c": dict(title="h2c (prior knowledge): h2load -t1 -c16 -m16, GET / -> 5-byte body",
                tool="h2load", servers=["ember", "h2o", "nginx"], unit="req"),
    "h2tls": dict(title="h2 over TLS 1.3: h2load -t1 -c16 -m16, GET / -> 5-byte body",
                  tool="h2load", servers=["ember", "h2o", "nginx"], unit="req"),
    "ws": dict(title="WebSocket echo: ember-ws-load, 64 connections, 32-byte masked text, "
                     "1 in flight each",
               tool="ws", servers=["ember", "lws", "floor-ws"], unit="msg"),
}
IDLE_SERVERS = ["ember", "nginx", "h2o"]


# ---- output ----------------------------------------------------------------------------

class Out:
    """Everything printed to stdout is also kept for report.txt."""

    def __init__(self):
        self.lines = []

    def __call__(self, text=""):
        print(text, flush=True)
        self.lines.append(text)


out = Out()


def progress(text):
    print(f"[edge {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class HarnessError(Exception):
    pass


# ---- processes -------------------------------------------------------------------------

STARTED = []  # every Popen we started, stopped by PID at exit


def stop(p, grace=5.0):
    """SIGTERM the process, wait, then SIGKILL its process group (it is a
    session leader we created, so the group id is its PID)."""
    if p.poll() is not None:
        return
    try:
        os.kill(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def stop_all():
    for p in reversed(STARTED):
        stop(p, grace=3.0)
    STARTED.clear()
    # We are a child subreaper: whatever the servers left behind (h2o's
    # helpers outlive it by a moment) was reparented to us. End and reap it.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = [p for p in tree(os.getpid()) if p != os.getpid()]
        for p in left:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 2
        while left and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.02)
                left = [p for p in tree(os.getpid()) if p != os.getpid()]


def become_subreaper():
    import ctypes
    PR_SET_CHILD_SUBREAPER = 36
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


class Runner:
    def __init__(self, args, tools):
        self.a = args
        self.tools = tools

    def sched_prefix(self, cpu):
        cmd = [self.tools["sched"]]
        if not self.a.no_pin and cpu is not None:
            cmd += ["--cpu", str(cpu)]
        if self.a.no_tune:
            cmd += ["--no-tune"]
        return cmd + ["--nofile", "65536", "--"]

    def spawn(self, cmd, cpu, stdout=None, stderr=None, env=None):
        full = self.sched_prefix(cpu) + cmd
        e = dict(os.environ)
        if env:
            e.update(env)
        p = subprocess.Popen(full, stdout=stdout, stderr=stderr, env=e, stdin=subprocess.DEVNULL)
        STARTED.append(p)
        return p

    def retune(self, pid):
        if self.a.no_tune:
            return
        subprocess.run([self.tools["sched"], "--retune", str(pid)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=10)

    def show(self, pid):
        r = subprocess.run([self.tools["sched"], "--show", str(pid)], capture_output=True,
                           text=True, timeout=10)
        return r.stdout.strip().splitlines()


def ppid_map():
    m = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        m[int(d)] = int(s[s.rindex(")") + 2:].split()[1])
    return m


def tree(root):
    m = ppid_map()
    pids = [root]
    for p in pids:
        pids.extend(c for c, pp in m.items() if pp == p)
    return pids


def cpu_ticks(root):
    """utime+stime+cutime+cstime over the process tree of ROOT, in ticks."""
    total = 0
    for p in tree(root):
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(")") + 2:].split()
        total += sum(int(x) for x in fields[11:15])
    return total


def cpu_busy():
    """Busy ticks (all but idle, iowait and steal) per CPU, from /proc/stat."""
    busy = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                v = line.split()
                t = [int(x) for x in v[1:]]
                busy[int(v[0][3:])] = sum(t[:8]) - t[3] - t[4] - t[7]
    return busy


def rss_kib(root):
    total = 0
    for p in tree(root):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def pick_ports(n):
    """N free TCP ports on 127.0.0.1 between 20000 and 32000 (below the
    ephemeral range, so no client socket takes them)."""
    ports = []
    while len(ports) < n:
        p = random.randrange(20000, 32000)
        if p in ports:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            ports.append(p)
        except OSError:
            pass
        finally:
            s.close()
    return ports


# ---- servers ---------------------------------------------------------------------------

class Server:
    """A server under test: how to start it and where each load reaches it."""

    def __init__(self, name, cmd, ports, endpoints, env=None, missing=None):
        self.name = name
        self.cmd = cmd
        self.ports = ports            # all must accept connections before it is ready
        self.endpoints = endpoints    # load -> (port, path)
        self.env = env
        self.proc = None
        self.reason = missing         # why it is not available (None: available)
        self.bad = {}                 # load -> why its answers were wrong
        self.log = None

    @property
    def up(self):
        return self.reason is None and self.proc is not None and self.proc.poll() is None

    def start(self, runner, logdir, cpu, timeout=10.0, tag=None):
        if self.reason:
            return
        self.log = os.path.join(logdir, f"server-{tag or self.name}.log")
        logf = open(self.log, "ab")
        self.proc = runner.spawn(self.cmd, cpu, stdout=logf, stderr=logf, env=self.env)
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.reason = f"exited with status {self.proc.returncode}: {last_line(self.log)}"
                return
            if all(port_open(p) for p in self.ports):
                return
            time.sleep(0.05)
        stop(self.proc)
        self.reason = f"did not listen on {self.ports} within {timeout:.0f} s"


def last_line(path):
    try:
        with open(path, errors="replace") as f:
            lines = [ln.strip() for ln in f if ln.strip()]
        return lines[-1][:200] if lines else "(no output)"
    except OSError:
        return "(no log)"


def make_cert(tmp):
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=30)
    return cert, key


def ember_config(path, plain, tls, cert, key):
    with open(path, "w") as f:
        f.write(f"""# generated by perf/edge/bench_edge.py
loops: 1
pin_loops: false
log: warn
limits:
  max_connections: 20000
  header_timeout: 10s
  body_timeout: 30s
  idle_timeout: 600s
listeners:
  - listen: 127.0.0.1:{plain}
  - listen: 127.0.0.1:{tls}
    tls:
      certificates:
        - {{cert: {cert}, key: {key}}}
      alpn: [h2, http/1.1]
routes:
  - {{host: "*", path: /ws, flare: ws-echo}}
  - {{host: "*", path: /, flare: hello}}
""")


def nginx_config(d, p1, p2, p3, cert, key):
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(f"""# generated by perf/edge/bench_edge.py
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 65536;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  keepalive_requests 1000000000;  # the default 1000 would measure reconnects
  keepalive_timeout 600s;
  default_type text/plain;
  ssl_certificate {cert};
  ssl_certificate_key {key};
  ssl_protocols TLSv1.3;
  server {{
    listen 127.0.0.1:{p1};
    listen 127.0.0.1:{p2} http2;      # without ssl: prior-knowledge h2c only
    listen 127.0.0.1:{p3} ssl http2;
    location / {{ return 200 "hello"; }}
  }}
}}
""")
    return path


def h2o_config(d, plain, tls, cert, key):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "hello.txt"), "w") as f:
        f.write("hello")
    path = os.path.join(d, "h2o.conf")
    with open(path, "w") as f:
        f.write(f"""# generated by perf/edge/bench_edge.py
user: root
num-threads: 1
max-connections: 20000
pid-file: {d}/h2o.pid
error-log: {d}/error.log
http1-request-timeout: 600
http2-idle-timeout: 600
listen:
  host: 127.0.0.1
  port: {plain}
listen:
  host: 127.0.0.1
  port: {tls}
  ssl:
    certificate-file: {cert}
    key-file: {key}
    ocsp-update-interval: 0
hosts:
  default:
    paths:
      /:
        file.file: {d}/hello.txt
""")
    return path


# ---- correctness probes ----------------------------------------------------------------

def probe_http1(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if m and len(body) >= int(m.group(1)):
                    break
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    if not status.startswith("HTTP/1.1 200") or body != b"hello":
        return f"HTTP/1.1 GET / answered {status!r} with body {body[:40]!r}, want 200 'hello'"
    return None


def probe_h2(port, tls, tools):
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/"
    r = subprocess.run([tools["nghttp"], url], capture_output=True, timeout=15)
    if r.returncode != 0 or r.stdout != b"hello":
        return (f"nghttp {url}: status {r.returncode}, body {r.stdout[:40]!r} "
                f"{r.stderr.decode(errors='replace').strip()[:120]}")
    return None


def probe_ws(port, path, tools):
    r = subprocess.run([tools["ws"], "-p", str(port), "-P", path, "-c", "2", "-n", "200",
                        "-d", "5"], capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        return (r.stderr or r.stdout).strip()[:200]
    return None


# ---- measurements ----------------------------------------------------------------------

def nearest_rank(sorted_vals, p):
    import numpy as np
    n = len(sorted_vals)
    if n == 0:
        return float("nan")
    k = min(n - 1, max(0, int(np.ceil(p / 100 * n)) - 1))
    return float(sorted_vals[k])


def grid_from(sorted_vals):
    return [nearest_rank(sorted_vals, p) for p in GRID]


def run_load(runner, tools, a, load, server, seconds, tmp, count=None):
    """Runs one load against SERVER. Returns a dict with ops, seconds, rate,
    p50, p99 (us), grid (latency quantiles, us), cli_cpu (s), srv_cpu (s),
    wall (s) and error (None or why the measurement is void)."""
    port, path = server.endpoints[load]
    tool = LOADS[load]["tool"]
    raw = os.path.join(tmp, f"lat-{load}-{server.name}.txt")
    if os.path.exists(raw):
        os.unlink(raw)  # h2load's --log-file appends
    if tool == "wrk":
        cmd = [tools["wrk"], "-t1", "-c64", f"-d{max(1, round(seconds))}s", "--latency",
               "-s", tools["wrk_lua"], f"http://127.0.0.1:{port}{path}"]
    elif tool == "h2load":
        scheme = "https" if load == "h2tls" else "http"
        cmd = [tools["h2load"], "-t1", "-c16", "-m16", f"--log-file={raw}"]
        cmd += ["-n", str(count)] if count else ["-D", f"{int(seconds * 1000)}ms"]
        cmd += [f"{scheme}://127.0.0.1:{port}{path}"]
    else:
        cmd = [tools["ws"], "-p", str(port), "-P", path, "-c", "64", "-s", "32",
               "-d", str(seconds if not count else 3600), "-o", raw, "--stall", "5"]
        if count:
            cmd += ["-n", str(count)]
    res = dict(error=None)
    if server.proc is not None:
        runner.retune(server.proc.pid)
        ticks0 = cpu_ticks(server.proc.pid)
    busy0 = cpu_busy()
    t0 = time.monotonic()
    outf = tempfile.TemporaryFile(mode="w+")
    errf = tempfile.TemporaryFile(mode="w+")
    p = runner.spawn(cmd, a.client_cpu, stdout=outf, stderr=errf)
    limit = (seconds if not count else 120) + 30
    time.sleep(0.05)
    runner.retune(p.pid)  # wrk and h2load start their threads after exec
    rusage = None
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid == p.pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            rusage = ru
            break
        if time.monotonic() - t0 > limit:
            stop(p)
            res["error"] = f"{tool} did not finish within {limit:.0f} s"
            break
        time.sleep(0.01)
    wall = time.monotonic() - t0
    STARTED.remove(p)
    if server.proc is not None:
        res["srv_cpu"] = (cpu_ticks(server.proc.pid) - ticks0) / CLK_TCK
    busy1 = cpu_busy()
    res["wall"] = wall
    res["cli_cpu"] = rusage.ru_utime + rusage.ru_stime if rusage else float("nan")
    if not a.no_pin:
        # What else ran on the two cores meanwhile (other work on the box).
        def other(cpu, ours):
            return max(0.0, (busy1.get(cpu, 0) - busy0.get(cpu, 0)) / CLK_TCK - ours) / wall
        res["other_srv"] = other(a.server_cpu, res.get("srv_cpu", 0))
        res["other_cli"] = other(a.client_cpu, res["cli_cpu"])
    outf.seek(0)
    errf.seek(0)
    text, etext = outf.read(), errf.read()
    outf.close()
    errf.close()
    if res["error"]:
        return res
    if server.proc is not None and server.proc.poll() is not None:
        res["error"] = f"the server died (status {server.proc.returncode})"
        return res
    if p.returncode != 0:
        res["error"] = f"{tool} exited with {p.returncode}: {(etext or text).strip()[-200:]}"
        return res
    try:
        if tool == "wrk":
            parse_wrk(text, res)
        elif tool == "h2load":
            parse_h2load(text, raw, load, res)
        else:
            parse_ws(text, raw, res)
    except (ValueError, IndexError, KeyError, AttributeError) as e:
        res["error"] = f"cannot parse {tool} output ({e}): {text[-300:]!r}"
    if os.path.exists(raw):
        os.unlink(raw)
    return res


def parse_wrk(text, res):
    m = re.search(r"^EDGE requests=(\d+) duration_us=(\d+) connect=(\d+) read=(\d+) "
                  r"write=(\d+) status=(\d+) timeout=(\d+)", text, re.M)
    n, dur = int(m.group(1)), int(m.group(2)) / 1e6
    errors = sum(int(m.group(i)) for i in range(3, 8))
    if errors:
        res["error"] = f"wrk counted {errors} errors ({m.group(0)})"
    q = {float(k): float(v) for k, v in re.findall(r"^EDGE_Q ([\d.]+) (\d+)", text, re.M)}
    res.update(ops=n, seconds=dur, rate=n / dur, p50=q[50.0], p99=q[99.0],
               grid=[q[round(p, 2)] for p in GRID])


def parse_h2load(text, raw, load, res):
    import numpy as np
    fin = re.search(r"^finished in ([\d.]+)(ms|s),", text, re.M)
    secs = float(fin.group(1)) / (1000 if fin.group(2) == "ms" else 1)
    m = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text, re.M)
    ok, failed = int(m.group(4)), int(m.group(5))
    proto = re.search(r"^Application protocol: (\S+)", text, re.M)
    want = "h2" if load == "h2tls" else "h2c"
    if not proto or proto.group(1) != want:
        res["error"] = f"h2load negotiated {proto.group(1) if proto else 'nothing'}, want {want}"
    if load == "h2tls":
        tls = re.search(r"^TLS Protocol: (\S+)", text, re.M)
        res["tls"] = tls.group(1) if tls else "?"
        if res["tls"] != "TLSv1.3":
            res["error"] = f"h2load negotiated {res['tls']}, want TLSv1.3"
    if failed:
        res["error"] = f"h2load: {failed} requests failed"
    data = np.fromfile(raw, dtype=np.int64, sep=" ").reshape(-1, 3)
    if np.any(data[:, 1] != 200):
        res["error"] = "h2load logged responses other than 200"
    lat = np.sort(data[:, 2].astype(np.float64))
    res.update(ops=ok, seconds=secs, rate=ok / secs, p50=nearest_rank(lat, 50),
               p99=nearest_rank(lat, 99), grid=grid_from(lat))


def parse_ws(text, raw, res):
    import numpy as np
    m = re.search(r"^RESULT messages=(\d+) seconds=([\d.]+)", text, re.M)
    n, secs = int(m.group(1)), float(m.group(2))
    lat = np.sort(np.fromfile(raw, dtype=np.float64, sep=" ") / 1000.0)
    res.update(ops=n, seconds=secs, rate=n / secs, p50=nearest_rank(lat, 50),
               p99=nearest_rank(lat, 99), grid=grid_from(lat))


# ---- idle connections ------------------------------------------------------------------

def idle_rss(runner, tools, a, server, port):
    """RSS growth of SERVER's process tree per idle keep-alive connection."""
    time.sleep(0.3)
    before = rss_kib(server.proc.pid)
    p = runner.spawn([tools["idle"], "-p", str(port), "-n", str(a.idle_conns), "-t", "120"],
                     a.client_cpu, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 150
    line = ""
    while time.monotonic() < deadline and p.poll() is None:
        r, _, _ = select.select([p.stdout], [], [], 0.5)
        if r:
            line = p.stdout.readline().decode().strip()
            break
    if not line.startswith("READY"):
        stop(p)
        STARTED.remove(p)
        return dict(error=f"ember-idle-conns: {p.stderr.read().decode().strip()[:200]}")
    time.sleep(1.0)  # let the server settle (lazy frees, timers)
    during = rss_kib(server.proc.pid)
    os.kill(p.pid, signal.SIGTERM)
    try:
        o, _ = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        stop(p)
        o = b""
    STARTED.remove(p)
    m = re.search(rb"HELD (\d+) of (\d+)", o)
    held = int(m.group(1)) if m else -1
    res = dict(before=before, during=during, held=held,
               per_conn=(during - before) * 1024 / a.idle_conns, error=None)
    if held != a.idle_conns:
        res["error"] = f"only {held} of {a.idle_conns} connections stayed open"
    time.sleep(0.5)
    res["after"] = rss_kib(server.proc.pid)
    return res


# ---- heap calls ------------------------------------------------------------------------

ALLOC_KEYS = ["malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign",
              "valloc", "pvalloc", "reallocarray", "new"]
FREE_KEYS = ["free", "delete"]


def read_counters(path):
    c = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.partition(" ")
                if v.strip().isdigit():
                    c[k] = int(v)
    except OSError:
        pass
    return c


def dump_counters(server, path, seq):
    os.kill(server.proc.pid, signal.SIGUSR2)
    for _ in range(5000):
        c = read_counters(path)
        if c.get("seq") == seq:
            return c
        time.sleep(0.001)
    raise HarnessError(f"{server.name}: the allocation counter did not answer SIGUSR2")


def count_allocs(runner, tools, a, server, loads, tmp):
    """Heap calls per request for SERVER (started under the LD_PRELOAD shim).

    Two counted runs per load, a short and a long one, on fresh connections
    each: (calls(long) - calls(short)) / (requests(long) - requests(short)) is
    the steady-state cost per request, with connection set-up and tear-down
    cancelled out; what is left of the short run is the cost per connection."""
    rows = []
    path = os.path.join(tmp, f"alloc-{server.name}.txt")
    seq = 1
    c0 = dump_counters(server, path, seq)
    if sum(c0.get(k, 0) for k in ALLOC_KEYS) == 0:
        raise HarnessError(f"{server.name}: the shim counted no allocation: not interposing")
    for load in loads:
        if load not in server.endpoints:
            continue
        tool = LOADS[load]["tool"]
        conns = 16 if tool == "h2load" else 64
        n = a.alloc_requests
        plan = [(1, None), (2 if a.quick else 3, None)] if tool == "wrk" else \
            [(1, n // 5), (1, n)]
        w = run_load(runner, tools, a, load, server, 1, tmp,
                     count=None if tool == "wrk" else n // 5)  # warm-up
        runs = []
        err = w["error"]
        for secs, count in plan:
            if err:
                break
            seq += 1
            before = dump_counters(server, path, seq)
            r = run_load(runner, tools, a, load, server, secs, tmp, count=count)
            seq += 1
            after = dump_counters(server, path, seq)
            err = r["error"]
            runs.append((r.get("ops", 0),
                         {k: after.get(k, 0) - before.get(k, 0) for k in ALLOC_KEYS + FREE_KEYS}))
        if err:
            rows.append(dict(load=load, error=err))
            continue
        (r1, d1), (r2, d2) = runs
        if r2 <= r1:
            rows.append(dict(load=load, error=f"the long run did no more requests ({r2} <= {r1})"))
            continue
        dd = {k: (d2[k] - d1[k]) / (r2 - r1) for k in d1}
        allocs = sum(dd[k] for k in ALLOC_KEYS)
        per_conn = (sum(d1[k] for k in ALLOC_KEYS) - allocs * r1) / conns
        which = ", ".join(f"{k} {dd[k]:.3f}" for k in ALLOC_KEYS + FREE_KEYS
                          if abs(dd[k]) >= 0.0005)
        rows.append(dict(load=load, ops=f"{r1}+{r2}", error=None, allocs=allocs,
                         frees=sum(dd[k] for k in FREE_KEYS), per_conn=per_conn,
                         which=which or "none"))
    return rows


# ---- summaries -------------------------------------------------------------------------

def med(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt_rate(x):
    if x != x:
        return "-"
    return f"{x / 1000:.1f}k" if x >= 1000 else f"{x:.0f}"


def fmt(x, nd=2):
    return "-" if x != x else f"{x:.{nd}f}"


def cell(xs, f):
    if not xs:
        return "-"
    if len(xs) == 1:
        return f(xs[0])
    return f"{f(med(xs))} [{f(min(xs))}-{f(max(xs))}]"


def table(rows):
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def plot(outdir, pooled, loads, plot_script_ok=True):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
    except ImportError as e:
        progress(f"no plot: {e}")
        return None
    panels = [ld for ld in loads if pooled.get(ld)]
    if not panels:
        return None
    colors = {"ember": "#d62728", "nginx": "#2ca02c", "h2o": "#1f77b4", "floor": "#7f7f7f",
              "lws": "#9467bd", "floor-ws": "#7f7f7f"}
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3.6 * len(panels)), squeeze=False)
    for ax, ld in zip(axes[:, 0], panels):
        for name, vals in pooled[ld].items():
            v = np.sort(np.array(vals))
            if v.size == 0:
                continue
            y = np.arange(1, v.size + 1) / v.size
            p50, p99 = np.percentile(v, 50), np.percentile(v, 99)
            c = colors.get(name)
            ax.plot(v, y, color=c, linewidth=1.6,
                    label=f"{name}  p50 {p50:.0f} us, p99 {p99:.0f} us")
            ax.axvline(p99, color=c, linestyle="--", linewidth=0.7)
        ax.set_xscale("log")
        ax.set_title(LOADS[ld]["title"], fontsize=9)
        ax.set_xlabel("latency (us), all rounds pooled")
        ax.set_ylabel("fraction of requests")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = os.path.join(outdir, "latency_cdf.png")
    fig.savefig(path, dpi=110)
    return path


# ---- main ------------------------------------------------------------------------------

def parse_args():
    ap = argparse.ArgumentParser(
        description="Ember vs nginx vs h2o vs libwebsockets (see perf/edge/README.md)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build-perf"),
                    help="build directory holding perf/edge/* and ember (default build-perf)")
    ap.add_argument("--ember", help="the ember binary (default BUILD/ember)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5, help="per measurement (whole seconds)")
    ap.add_argument("--warmup", type=int, default=1, help="seconds per server before round 1")
    ap.add_argument("--loads", default="http1,h2c,h2tls,ws")
    ap.add_argument("--servers", default="ember,nginx,h2o,floor,lws,floor-ws")
    ap.add_argument("--idle-conns", type=int, default=10000, help="0 skips the RSS test")
    ap.add_argument("--alloc-requests", type=int, default=20000)
    ap.add_argument("--no-alloc", action="store_true", help="skip the heap-call count")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--no-tune", action="store_true", help="no setsid nice/slice tuning")
    ap.add_argument("--out", help="results directory (default perf/edge/results/<time>)")
    ap.add_argument("--strict", action="store_true", help="exit 3 when a target fails")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run (~30 s): 1 round x 1 s, no warm-up, 1000 idle conns")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.seconds, a.warmup = 1, 1, 0
        a.idle_conns = min(a.idle_conns, 1000)
        a.alloc_requests = min(a.alloc_requests, 5000)
    if a.rounds < 1 or a.seconds < 1:
        ap.error("--rounds and --seconds must be >= 1")
    a.loads = [x for x in a.loads.split(",") if x]
    a.servers = [x for x in a.servers.split(",") if x]
    for ld in a.loads:
        if ld not in LOADS:
            ap.error(f"unknown load {ld} (http1, h2c, h2tls, ws)")
    return a


def find_tools(a):
    b = os.path.join(a.build, "perf", "edge")
    t = dict(sched=os.path.join(b, "ember-sched"), ws=os.path.join(b, "ember-ws-load"),
             lws=os.path.join(b, "ember-lws-echo"), floor=os.path.join(b, "ember-edge-floor"),
             idle=os.path.join(b, "ember-idle-conns"),
             shim=os.path.join(a.build, "perf", "libember_alloc_count.so"),
             wrk_lua=os.path.join(HERE, "wrk_report.lua"),
             ember=a.ember or os.path.join(a.build, "ember"))
    for k in ("sched", "ws", "lws", "floor", "idle"):
        if not os.access(t[k], os.X_OK):
            raise HarnessError(f"{t[k]} is missing: build it (perf/edge/run.sh does)")
    for k in ("wrk", "h2load", "nghttp", "nginx", "h2o", "openssl"):
        t[k] = shutil.which(k) or shutil.which(k, path="/usr/sbin:/sbin")
    if not t["openssl"]:
        raise HarnessError("openssl is missing (apt-get install openssl)")
    return t


def versions(t):
    def first(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            s = (r.stdout + r.stderr).strip().splitlines()
            return s[0] if s else "?"
        except (OSError, subprocess.TimeoutExpired):
            return "not installed"
    v = {}
    if t["nginx"]:
        v["nginx"] = first([t["nginx"], "-v"])
    if t["h2o"]:
        v["h2o"] = first([t["h2o"], "--version"])
    if t["wrk"]:
        v["wrk"] = first([t["wrk"], "-v"])
    if t["h2load"]:
        v["h2load"] = first([t["h2load"], "--version"])
    v["libwebsockets"] = first(["pkg-config", "--modversion", "libwebsockets"])
    return v


def main():
    a = parse_args()
    tools = find_tools(a)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    outdir = a.out or os.path.join(HERE, "results", stamp)
    os.makedirs(os.path.join(outdir, "latency"), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="ember-edge-")
    if not a.no_pin:
        os.sched_setaffinity(0, {a.client_cpu})  # keep the server's core for the server
    runner = Runner(a, tools)
    become_subreaper()
    t_start = time.monotonic()
    try:
        return run(a, tools, runner, outdir, tmp, t_start)
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def run(a, tools, runner, outdir, tmp, t_start):
    load0 = open("/proc/loadavg").read().split()[:3]
    cpu_model = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                      if ln.startswith("model name")), "?")
    out("EDGE BENCHMARK: Ember vs nginx vs h2o vs libwebsockets")
    out(f"command : {' '.join(shlex.quote(x) for x in sys.argv)}")
    out(f"date    : {datetime.datetime.now().isoformat(timespec='seconds')}")
    out(f"machine : {os.cpu_count()} CPUs, {cpu_model}, Linux {os.uname().release}")
    out(f"load avg: {' '.join(load0)} at start")
    out(f"plan    : {a.rounds} round(s) x {a.seconds} s per server and load, interleaved; "
        f"warm-up {a.warmup} s; server on CPU {a.server_cpu}, load on CPU {a.client_cpu}"
        + (" (not pinned)" if a.no_pin else "")
        + ("" if a.no_tune else "; setsid, nice -19, 100 us slice (ember-sched)"))
    for k, v in versions(tools).items():
        out(f"{k:8}: {v}")

    # ---- servers
    progress("generating certificate and configs in " + tmp)
    cert, key = make_cert(tmp)
    ports = pick_ports(12)
    servers = {}
    ember_yaml = os.path.join(tmp, "ember.yaml")
    ember_config(ember_yaml, ports[0], ports[1], cert, key)
    ember_missing = None if os.access(tools["ember"], os.X_OK) else \
        f"no ember binary at {tools['ember']}"
    servers["ember"] = Server(
        "ember", [tools["ember"], "serve", "--config", ember_yaml], [ports[0], ports[1]],
        {"http1": (ports[0], "/"), "h2c": (ports[0], "/"), "h2tls": (ports[1], "/"),
         "ws": (ports[0], "/ws")}, env={"EMBER_LOG": "warn"}, missing=ember_missing)
    ng = nginx_config(os.path.join(tmp, "nginx"), ports[2], ports[3], ports[4], cert, key)
    servers["nginx"] = Server(
        "nginx", [tools["nginx"] or "nginx", "-p", os.path.join(tmp, "nginx"), "-c", ng, "-e",
                  os.path.join(tmp, "nginx", "error.log")], [ports[2], ports[3], ports[4]],
        {"http1": (ports[2], "/"), "h2c": (ports[3], "/"), "h2tls": (ports[4], "/")},
        missing=None if tools["nginx"] else "nginx not installed (apt-get install nginx-light)")
    hc = h2o_config(os.path.join(tmp, "h2o"), ports[5], ports[6], cert, key)
    servers["h2o"] = Server(
        "h2o", [tools["h2o"] or "h2o", "-c", hc], [ports[5], ports[6]],
        {"http1": (ports[5], "/"), "h2c": (ports[5], "/"), "h2tls": (ports[6], "/")},
        missing=None if tools["h2o"] else "h2o not installed (apt-get install h2o)")
    servers["floor"] = Server("floor", [tools["floor"], "--port", str(ports[7])], [ports[7]],
                              {"http1": (ports[7], "/")})
    servers["floor-ws"] = Server("floor-ws", [tools["floor"], "--port", str(ports[8]), "--mode",
                                              "ws"], [ports[8]], {"ws": (ports[8], "/ws")})
    servers["lws"] = Server("lws", [tools["lws"], "--port", str(ports[9])], [ports[9]],
                            {"ws": (ports[9], "/ws")})
    for name in list(servers):
        if name not in a.servers:
            del servers[name]
    for s in servers.values():
        progress(f"starting {s.name}")
        s.start(runner, outdir, a.server_cpu)
        if s.reason:
            progress(f"{s.name}: not available: {s.reason}")
    for name in ("nginx", "h2o", "floor", "floor-ws", "lws"):
        if name in servers and servers[name].reason:
            raise HarnessError(f"rival {name} did not start: {servers[name].reason} "
                               f"(log: {servers[name].log})")

    loads = []
    for ld in a.loads:
        tool = LOADS[ld]["tool"]
        if tool in ("wrk", "h2load") and not tools[tool]:
            out(f"{ld}: skipped, {tool} is not installed")
            continue
        loads.append(ld)

    # ---- correctness probes
    for s in servers.values():
        if not s.up:
            continue
        for ld in loads:
            if ld not in s.endpoints:
                continue
            port, path = s.endpoints[ld]
            if ld == "http1":
                why = probe_http1(port)
            elif ld in ("h2c", "h2tls"):
                why = probe_h2(port, ld == "h2tls", tools) if tools["nghttp"] else None
            else:
                why = probe_ws(port, path, tools)
            if why:
                s.bad[ld] = why
                progress(f"{s.name} {ld}: WRONG ANSWER: {why}")
                if s.name != "ember":
                    raise HarnessError(f"rival {s.name} answers {ld} wrongly: {why}")

    out("")
    out("SCHEDULING (read back from the kernel: pid/tid comm: policy, nice, slice, cpus)")
    for s in servers.values():
        if s.up:
            runner.retune(s.proc.pid)
            for line in runner.show(s.proc.pid):
                out(f"  {s.name:8} {line}")
        else:
            out(f"  {s.name:8} not available: {s.reason}")

    # ---- idle keep-alive connections (fresh servers, before any load)
    idle = {}
    if a.idle_conns > 0 and "http1" in loads:
        for name in IDLE_SERVERS:
            s = servers.get(name)
            if s is None:
                continue
            if not s.up or "http1" in s.bad:
                idle[name] = dict(error=f"not available: {s.reason or s.bad.get('http1')}")
                continue
            progress(f"idle: {a.idle_conns} keep-alive connections to {name}")
            idle[name] = idle_rss(runner, tools, a, s, s.endpoints["http1"][0])
            r = idle[name]
            progress(f"idle: {name}: " + (r["error"] or f"{r['per_conn']:.0f} B per connection"))

    # ---- the timed loads, interleaved
    meas = {}  # (load, server) -> list of results
    total = sum(a.rounds * len([n for n in LOADS[ld]["servers"] if n in servers])
                for ld in loads)
    k = 0
    for ld in loads:
        names = [n for n in LOADS[ld]["servers"] if n in servers]
        live = [n for n in names if servers[n].up and ld not in servers[n].bad]
        if a.warmup > 0:
            for n in live:
                progress(f"{ld}: warm-up {n} ({a.warmup} s)")
                run_load(runner, tools, a, ld, servers[n], a.warmup, tmp)
        for rnd in range(1, a.rounds + 1):
            for n in names:
                k += 1
                if n not in live:
                    continue
                r = run_load(runner, tools, a, ld, servers[n], a.seconds, tmp)
                r["round"] = rnd
                meas.setdefault((ld, n), []).append(r)
                if r["error"]:
                    progress(f"[{k}/{total}] {ld} round {rnd} {n}: VOID: {r['error']}")
                else:
                    progress(f"[{k}/{total}] {ld} round {rnd} {n}: {fmt_rate(r['rate'])} "
                             f"{LOADS[ld]['unit']}/s, {r['srv_cpu'] / r['ops'] * 1e6:.2f} us "
                             f"CPU/{LOADS[ld]['unit']}, p50 {r['p50']:.0f} us, "
                             f"p99 {r['p99']:.0f} us")
                if not servers[n].up and n != "ember":
                    raise HarnessError(f"{n} died during {ld}: see {servers[n].log}")

    # ---- heap calls per request (Ember; the floor as the shim's control)
    allocs = {}
    if not a.no_alloc and os.path.exists(tools["shim"]):
        aports = pick_ports(4)
        ay = os.path.join(tmp, "ember-alloc.yaml")
        ember_config(ay, aports[0], aports[1], cert, key)
        cands = []
        if "ember" in servers:
            cands.append(Server("ember", [tools["ember"], "serve", "--config", ay],
                                [aports[0], aports[1]],
                                {"http1": (aports[0], "/"), "h2c": (aports[0], "/"),
                                 "h2tls": (aports[1], "/"), "ws": (aports[0], "/ws")},
                                missing=servers["ember"].reason))
        if "floor" in servers and "floor-ws" in servers:
            cands.append(Server("floor", [tools["floor"], "--port", str(aports[2])], [aports[2]],
                                {"http1": (aports[2], "/")}))
            cands.append(Server("floor-ws", [tools["floor"], "--port", str(aports[3]), "--mode",
                                             "ws"], [aports[3]], {"ws": (aports[3], "/ws")}))
        for s in cands:
            if s.reason:
                allocs[s.name] = s.reason
                continue
            s.env = {"EMBER_LOG": "warn", "LD_PRELOAD": tools["shim"],
                     "EMBER_ALLOC_COUNT_FILE": os.path.join(tmp, f"alloc-{s.name}.txt")}
            s.start(runner, outdir, a.server_cpu, tag=f"alloc-{s.name}")
            if s.reason:
                allocs[s.name] = s.reason
                continue
            progress(f"allocations: {s.name} under {tools['shim']}")
            try:
                allocs[s.name] = count_allocs(runner, tools, a, s,
                                              [ld for ld in loads if ld not in servers.get(
                                                  s.name, s).bad], tmp)
            except HarnessError as e:
                if s.name != "ember":
                    raise
                allocs[s.name] = str(e)
            stop(s.proc)
            STARTED.remove(s.proc)

    load1 = open("/proc/loadavg").read().split()[:3]
    report(a, outdir, servers, loads, meas, idle, allocs, load1, tmp)
    progress(f"done in {time.monotonic() - t_start:.0f} s; results in {outdir}")
    return 3 if (a.strict and FAILED) else 0


FAILED = []


def report(a, outdir, servers, loads, meas, idle, allocs, load1, tmp):
    out(f"load avg: {' '.join(load1)} at end")
    out("")
    out("RESULTS (median [min-max] over rounds; CPU = server process tree utime+stime from "
        "/proc over the load's lifetime / requests)")
    summary = {}
    pooled = {}
    mrows = []
    for ld in loads:
        unit = LOADS[ld]["unit"]
        out("")
        out(f"{LOADS[ld]['title']}  ({a.rounds} x {a.seconds} s)")
        rows = [["server", "rounds", f"{unit}/s", f"srv CPU us/{unit}", "p50 us", "p99 us",
                 "srv core", "cli core", "other srv/cli"]]
        cli_busy = []
        other_all = []
        notes = []
        for n in LOADS[ld]["servers"]:
            if n not in servers:
                continue
            s = servers[n]
            if s.reason:
                rows.append([n, "n/a"] + [""] * 7)
                notes.append(f"{n}: not available: {s.reason}")
                continue
            if ld in s.bad:
                rows.append([n, "WRONG"] + [""] * 7)
                notes.append(f"{n}: wrong answer: {s.bad[ld]}")
                continue
            rs = meas.get((ld, n), [])
            good = [r for r in rs if not r["error"]]
            nan = float("nan")
            for r in rs:
                mrows.append([ld, n, r["round"], r.get("ops", ""), fmt(r.get("seconds", nan), 4),
                              fmt(r.get("rate", nan), 1),
                              fmt(r["srv_cpu"] / r["ops"] * 1e6, 3) if r.get("ops") else "",
                              fmt(r.get("p50", nan), 1), fmt(r.get("p99", nan), 1),
                              fmt(r["srv_cpu"] / r["wall"], 3) if "srv_cpu" in r else "",
                              fmt(r["cli_cpu"] / r["wall"], 3), fmt(r.get("other_srv", nan), 3),
                              fmt(r.get("other_cli", nan), 3), r["error"] or ""])
            if not good:
                rows.append([n, f"0/{len(rs)}"] + [""] * 7)
                notes.append(f"{n}: every measurement void: {rs[0]['error'] if rs else '-'}")
                continue
            for r in rs:
                if r["error"]:
                    notes.append(f"{n}: round {r['round']} void: {r['error']}")
            rate = [r["rate"] for r in good]
            cpu = [r["srv_cpu"] / r["ops"] * 1e6 for r in good]
            p50 = [r["p50"] for r in good]
            p99 = [r["p99"] for r in good]
            score = [r["srv_cpu"] / r["wall"] for r in good]
            ccore = [r["cli_cpu"] / r["wall"] for r in good]
            cli_busy += ccore
            oth = [(r["other_srv"], r["other_cli"]) for r in good if "other_srv" in r]
            other_all.extend(oth)
            other_cell = "-"
            if oth:
                other_cell = (f"{med([o[0] for o in oth]) * 100:.0f}%/"
                              f"{med([o[1] for o in oth]) * 100:.0f}%")
            summary[(ld, n)] = dict(rate=med(rate), cpu=med(cpu), p50=med(p50), p99=med(p99),
                                    srv_core=med(score), cli_core=med(ccore), n=len(good))
            pooled.setdefault(ld, {})[n] = [v for r in good for v in r["grid"]]
            rows.append([n, f"{len(good)}/{len(rs)}", cell(rate, fmt_rate),
                         cell(cpu, lambda x: fmt(x, 2)), cell(p50, lambda x: fmt(x, 0)),
                         cell(p99, lambda x: fmt(x, 0)), cell(score, lambda x: f"{x * 100:.0f}%"),
                         cell(ccore, lambda x: f"{x * 100:.0f}%"), other_cell])
        for line in table(rows):
            out("  " + line)
        for note in notes:
            out("  " + note)
        o_srv = med([o[0] for o in other_all])
        o_cli = med([o[1] for o in other_all])
        if other_all and max(o_srv, o_cli) > 0.05:
            out(f"  noise: other work ran on the server's core {o_srv * 100:.0f}% and on the "
                f"load's {o_cli * 100:.0f}% of the time (median): absolute figures are likely "
                "inflated; compare ratios")
        if cli_busy and med(cli_busy) >= 0.9:
            out(f"  bottleneck: the load generator's core was {med(cli_busy) * 100:.0f}% busy "
                "(median): the rate cannot rank servers, CPU per request and latency can")
        for n in LOADS[ld]["servers"]:
            s = summary.get((ld, n))
            if s and n != "ember" and s.get("srv_core", 0) >= 0.9:
                out(f"  bottleneck: {n} is server-bound ({s['srv_core'] * 100:.0f}% of its core)")

    # ---- idle
    if idle:
        out("")
        out(f"MEMORY: RSS per idle keep-alive connection ({a.idle_conns} connections, each "
            "after one request; VmRSS of the server's process tree)")
        rows = [["server", "RSS before", f"with {a.idle_conns} idle", "after close",
                 "per connection"]]
        notes = []
        for n, r in idle.items():
            if r.get("error"):
                rows.append([n, "n/a", "", "", ""])
                notes.append(f"{n}: {r['error']}")
            else:
                rows.append([n, f"{r['before'] / 1024:.1f} MiB", f"{r['during'] / 1024:.1f} MiB",
                             f"{r['after'] / 1024:.1f} MiB", f"{r['per_conn']:.0f} B"])
        for line in table(rows):
            out("  " + line)
        for note in notes:
            out("  " + note)
        out("  (user-space memory only: the kernel's socket buffers are not in RSS)")

    # ---- allocations
    if allocs:
        out("")
        out("HEAP CALLS PER REQUEST (LD_PRELOAD counter perf/alloc_count.c, read with SIGUSR2 "
            "around each run; the floor is the control)")
        notes = []
        rows = [["server", "load", "requests", "allocs/req", "frees/req", "allocs/conn",
                 "which calls (per req)"]]
        for n, rs in allocs.items():
            if isinstance(rs, str):
                rows.append([n, "n/a", "", "", "", "", ""])
                notes.append(f"{n}: not available: {rs}")
                continue
            for r in rs:
                if r["error"]:
                    rows.append([n, r["load"], "void", "", "", "", ""])
                    notes.append(f"{n} {r['load']}: {r['error']}")
                else:
                    rows.append([n, r["load"], r["ops"], fmt(r["allocs"], 3), fmt(r["frees"], 3),
                                 fmt(r["per_conn"], 1), r["which"]])
        for line in table(rows):
            out("  " + line)
        for note in notes:
            out("  " + note)
        out("  (per request: (calls(long run) - calls(short run)) / (requests(long) - "
            "requests(short)),")
        out("   fresh connections in each run; allocs/conn: what the short run spent beyond that, "
            "per connection)")

    # ---- targets
    out("")
    out("TARGETS (ratios of medians; N/A when a side has no measurement)")

    def target(text, num, den, limit, higher_better, key):
        a_ = summary.get(num)
        b_ = summary.get(den)
        if not a_ or not b_:
            who = num[1] if not a_ else den[1]
            out(f"  N/A   {text}  ({who} not measured)")
            return
        ratio = a_[key] / b_[key]
        ok = ratio >= limit if higher_better else ratio <= limit
        if not ok:
            FAILED.append(text)
        out(f"  {'PASS' if ok else 'FAIL'}  {text}  ratio {ratio:.3f} "
            f"({'>=' if higher_better else '<='} {limit:g})")

    if "http1" in loads:
        target("HTTP/1.1 rate >= nginx's", ("http1", "ember"), ("http1", "nginx"), 1.0, True,
               "rate")
        target("HTTP/1.1 server CPU/req <= nginx's", ("http1", "ember"), ("http1", "nginx"), 1.0,
               False, "cpu")
        target("HTTP/1.1 server CPU/req <= 1.1x the floor's", ("http1", "ember"),
               ("http1", "floor"), 1.1, False, "cpu")
        target("HTTP/1.1 p99 <= nginx's", ("http1", "ember"), ("http1", "nginx"), 1.0, False,
               "p99")
    for ld, label in (("h2c", "h2c"), ("h2tls", "h2 over TLS")):
        if ld in loads:
            target(f"{label} rate >= 1.1x h2o's", (ld, "ember"), (ld, "h2o"), 1.1, True, "rate")
            target(f"{label} server CPU/req <= 0.9x h2o's", (ld, "ember"), (ld, "h2o"), 0.9,
                   False, "cpu")
    if "ws" in loads:
        target("WebSocket echo rate >= libwebsockets'", ("ws", "ember"), ("ws", "lws"), 1.0,
               True, "rate")
        target("WebSocket echo server CPU/msg <= 0.9x libwebsockets'", ("ws", "ember"),
               ("ws", "lws"), 0.9, False, "cpu")
    if idle:
        e, n = idle.get("ember"), idle.get("nginx")
        if e and n and not e.get("error") and not n.get("error"):
            ratio = e["per_conn"] / n["per_conn"] if n["per_conn"] > 0 else float("inf")
            ok = e["per_conn"] <= n["per_conn"]
            if not ok:
                FAILED.append("rss")
            out(f"  {'PASS' if ok else 'FAIL'}  RSS per idle keep-alive connection <= nginx's  "
                f"ratio {ratio:.3f} (<= 1)  ({e['per_conn']:.0f} B vs {n['per_conn']:.0f} B)")
        else:
            out("  N/A   RSS per idle keep-alive connection <= nginx's  (ember not measured)")

    # ---- files
    with open(os.path.join(outdir, "measurements.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["load", "server", "round", "ops", "seconds", "rate", "srv_cpu_us_per_op",
                    "p50_us", "p99_us", "srv_core", "cli_core", "other_srv_core",
                    "other_cli_core", "error"])
        w.writerows(mrows)
    with open(os.path.join(outdir, "summary.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["load", "server", "rounds", "rate", "srv_cpu_us_per_op", "p50_us", "p99_us",
                    "srv_core", "cli_core"])
        for (ld, n), s in summary.items():
            w.writerow([ld, n, s["n"], f"{s['rate']:.1f}", f"{s['cpu']:.3f}", f"{s['p50']:.1f}",
                        f"{s['p99']:.1f}", f"{s['srv_core']:.3f}", f"{s['cli_core']:.3f}"])
    if idle:
        with open(os.path.join(outdir, "idle_rss.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["server", "conns", "rss_before_kib", "rss_idle_kib", "rss_after_kib",
                        "bytes_per_conn", "error"])
            for n, r in idle.items():
                w.writerow([n, a.idle_conns, r.get("before", ""), r.get("during", ""),
                            r.get("after", ""), f"{r['per_conn']:.0f}" if "per_conn" in r else "",
                            r.get("error") or ""])
    for ld, per in pooled.items():
        for n, vals in per.items():
            with open(os.path.join(outdir, "latency", f"{ld}_{n}.csv"), "w") as f:
                f.write("quantile_pct,latency_us\n")
                nrounds = len(vals) // len(GRID)
                for i in range(nrounds):
                    for p, v in zip(GRID, vals[i * len(GRID):(i + 1) * len(GRID)]):
                        f.write(f"{p},{v}\n")
    for name in ("ember.yaml", "nginx/nginx.conf", "h2o/h2o.conf"):
        src = os.path.join(tmp, name)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(outdir, "conf-" + os.path.basename(name)))
    png = None if a.no_plot else plot(outdir, pooled, loads)
    out("")
    out(f"files   : report.txt measurements.csv summary.csv idle_rss.csv latency/*.csv "
        f"conf-*{' latency_cdf.png' if png else ''} server-*.log in {outdir}")
    with open(os.path.join(outdir, "report.txt"), "w") as f:
        f.write("\n".join(out.lines) + "\n")


def on_signal(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        sys.exit(main())
    except HarnessError as e:
        print(f"bench_edge: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("bench_edge: interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)

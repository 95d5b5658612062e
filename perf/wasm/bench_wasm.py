#!/usr/bin/python3
"""The Wasm flare benchmark: Wasm flares against their native twins in one
server, and spark against Redis, in one run.

usage: bench_wasm.py [--build DIR] [--quick] [--rounds N] [--seconds S] [--out DIR]
       (perf/wasm/run.sh builds what it needs and runs this; see perf/wasm/README.md)

One ember-wasm-bench-server (one loop, pinned to the server core) serves
every flare; the load generator runs on the other core. Loads:
  hello-h1   wrk -t1 -c64, GET -> 200 "hello"        native hello vs Wasm hello
  hello-h2c  h2load -t1 -c16 -m16, the same           native vs Wasm
  fnv        h2load -t1 -c16 -m16, POST 16 KiB body, FNV-1a of it   native vs Wasm
  spark-get  wrk -t1 -c64, GET a 64-byte value        Wasm spark vs redis-benchmark GET -c 64
  spark-set  wrk -t1 -c64, POST a 64-byte value       Wasm spark vs redis-benchmark SET -c 64
  fiber      wrk -t1 -c64, hello on a fiber           Wasm hello vs the same on a fiber
  beam       wrk -t1 -c64, beam_fetch of /hello-native   native hello vs a Wasm fetch of it
  origin     wrk -t1 -c64, passthrough to the server's own hello   over HTTP/1.1 vs h2c
Rounds interleave the two sides. Server CPU per request: utime+stime of the
server's process tree (/proc) over the load generator's run. Then the runaway
flares: a loop that never calls the host (stopped by fuel) and one that reads
the clock on every turn (stopped by the wall-clock guard), timed request by
request. Tables on stdout, progress on stderr, files in --out. Exit status: 0
done, 1 harness error, 2 usage, 3 a target failed (only with --strict).
"""
import argparse
import datetime
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
_spec = importlib.util.spec_from_file_location("bench_edge",
                                               os.path.join(ROOT, "perf", "edge", "bench_edge.py"))
edge = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(edge)

FLARES = ("hello", "hello_fiber", "beam", "proxy", "fnv", "spark", "runaway", "runaway_host")
VALUE = b"v" * 64
FUEL = 200_000_000   # the default budget
TIMEOUT_MS = 200     # the wall-clock guard, short so the runaway test is quick
# load -> (title, tool, [(rival side, where), (Ember's side, where)])
LOADS = {
    "hello-h1": ("hello over HTTP/1.1: wrk -t1 -c64", "wrk",
                 [("native", "/hello-native"), ("wasm", "/hello-wasm")]),
    "hello-h2c": ("hello over h2c: h2load -t1 -c16 -m16", "h2load",
                  [("native", "/hello-native"), ("wasm", "/hello-wasm")]),
    "fnv": ("FNV-1a over a 16 KiB POST body: h2load -t1 -c16 -m16", "h2load-body",
            [("native", "/fnv-native"), ("wasm", "/fnv-wasm")]),
    "spark-get": ("spark get of a 64-byte value: wrk -t1 -c64 vs redis-benchmark -c 64 GET",
                  "wrk", [("redis", "get"), ("wasm", "/spark")]),
    "spark-set": ("spark set of a 64-byte value: wrk -t1 -c64 POST vs redis-benchmark -c 64 SET",
                  "wrk-post", [("redis", "set"), ("wasm", "/spark")]),
    # What waiting costs (no target: measured, see docs/serve.md).
    "fiber": ("hello on a fiber (imports beam_fetch, route grants beam): wrk -t1 -c64", "wrk",
              [("wasm", "/hello-wasm"), ("fiber", "/hello-fiber")]),
    "beam": ("beam_fetch of the server's own native hello: wrk -t1 -c64", "wrk",
             [("native", "/hello-native"), ("beam", "/beam")]),
    "origin": ("a route's origin (the server's own native hello) over HTTP/1.1 and h2c: "
               "wrk -t1 -c64", "wrk-proxy", [("http1", "/origin-h1"), ("h2", "/origin-h2")]),
}
TARGETS = [
    ("hello-h1", "rate", ">=", 0.9, "Wasm hello rate >= 0.9x native (HTTP/1.1)"),
    ("hello-h1", "cpu", "<=", 1.2, "Wasm hello server CPU/request <= 1.2x native (HTTP/1.1)"),
    ("hello-h2c", "rate", ">=", 0.9, "Wasm hello rate >= 0.9x native (h2c)"),
    ("hello-h2c", "cpu", "<=", 1.2, "Wasm hello server CPU/request <= 1.2x native (h2c)"),
    ("fnv", "cpu", "<=", 1.1, "Wasm FNV server CPU/request <= 1.1x native"),
    ("spark-get", "rate", ">=", 1.0, "spark get rate >= Redis GET"),
    ("spark-set", "rate", ">=", 1.0, "spark set rate >= Redis SET"),
]


def progress(text):
    print(f"[wasm {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def parse_args():
    ap = argparse.ArgumentParser(description="Wasm flares vs native, spark vs Redis")
    ap.add_argument("--build", default=os.path.join(ROOT, "build-perf"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--runaways", type=int, default=5, help="timed runaway requests of each kind")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--no-tune", action="store_true")
    ap.add_argument("--out", help="results directory (default perf/wasm/results/<time>)")
    ap.add_argument("--strict", action="store_true", help="exit 3 when a target fails")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round x 1 s")
    ap.add_argument("--loads", help="comma-separated loads to run (default: all): " +
                    ", ".join(LOADS))
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.seconds, a.runaways = 1, 1, 2
    if a.rounds < 1 or a.seconds < 1:
        ap.error("--rounds and --seconds must be >= 1")
    return a


def build_flares(out):
    cc, ld = shutil.which("clang-14"), shutil.which("wasm-ld-14")
    if not cc or not ld:
        raise edge.HarnessError("clang-14 and wasm-ld-14 are missing (scripts/setup.sh)")
    for name in FLARES:
        subprocess.run([cc, "--target=wasm32", "-O2", "-nostdlib", "-ffreestanding",
                        "-fuse-ld=lld", "-Wall", "-Wextra", "-Werror",
                        "-I", os.path.join(ROOT, "include"), "-Wl,--no-entry", "-Wl,--strip-all",
                        "-o", os.path.join(out, name + ".wasm"),
                        os.path.join(HERE, "flares", name + ".c")], check=True)


def write_config(path, port, tmp):
    w = lambda n: os.path.join(tmp, n + ".wasm")  # noqa: E731
    with open(path, "w") as f:
        f.write(f"""# generated by perf/wasm/bench_wasm.py
loops: 1
log: warn
limits:
  max_connections: 20000
  idle_timeout: 600s
listeners:
  - listen: 127.0.0.1:{port}
wasm:
  cache_dir: {tmp}/cache
  fuel: {FUEL}
  timeout: {TIMEOUT_MS}ms
spark:
  dir: {tmp}/spark
beam:
  allow: ["127.0.0.1:{port}"]
  max_connections_per_origin: 64
routes:
  - {{host: "*", path: /hello-native, flare: hello}}
  - {{host: "*", path: /fnv-native, flare: fnv}}
  - {{host: "*", path: /hello-wasm, wasm: {w("hello")}}}
  - {{host: "*", path: /fnv-wasm, wasm: {w("fnv")}}}
  - {{host: "*", path: /spark, wasm: {w("spark")}, capabilities: [writes_spark_kv]}}
  - {{host: "*", path: /hello-fiber, wasm: {w("hello_fiber")}, capabilities: [beam]}}
  - {{host: "*", path: /beam, wasm: {w("beam")}, capabilities: [beam]}}
  - {{host: proxy.test, path: /origin-h1, wasm: {w("proxy")}, origin: "http://127.0.0.1:{port}", origin_protocol: http1}}
  - {{host: proxy.test, path: /origin-h2, wasm: {w("proxy")}, origin: "http://127.0.0.1:{port}", origin_protocol: h2}}
  - {{host: "*", path: /origin-h1, flare: hello}}
  - {{host: "*", path: /origin-h2, flare: hello}}
  - {{host: "*", path: /runaway-host, wasm: {w("runaway_host")}}}
  - {{host: "*", path: /runaway, wasm: {w("runaway")}}}
""")


def run_http(runner, tools, a, tool, port, path, srv_pid, tmp):
    """One wrk or h2load run against the server; the dict of bench_edge.run_load."""
    url = f"http://127.0.0.1:{port}{path}"
    raw = os.path.join(tmp, "h2load.log")
    if os.path.exists(raw):
        os.unlink(raw)
    if tool.startswith("wrk"):
        cmd = [tools["wrk"], "-t1", "-c64", f"-d{a.seconds}s", "-s",
               tools["wrk_post"] if tool == "wrk-post" else tools["wrk_lua"], url]
        if tool == "wrk-proxy":  # the proxy routes; the origin's Host reaches hello
            cmd[1:1] = ["-H", "Host: proxy.test"]
    else:
        cmd = [tools["h2load"], "-t1", "-c16", "-m16", f"--log-file={raw}", "-D",
               f"{a.seconds * 1000}ms", url]
        if tool == "h2load-body":
            cmd[1:1] = ["-d", tools["body16k"]]
    env = {"EMBER_WRK_REPORT": tools["wrk_lua"], "EMBER_WRK_BODY": VALUE.decode()}
    return measure(runner, a, cmd, srv_pid, env,
                   lambda text, res: edge.parse_wrk(text, res) if tool.startswith("wrk")
                   else edge.parse_h2load(text, raw, "h2c", res))


def run_redis(runner, tools, a, op, port, srv_pid):
    n = 20_000 if a.quick else 100_000 * a.seconds
    cmd = [tools["redis-benchmark"], "-p", str(port), "-c", "64", "-n", str(n), "-t", op,
           "-d", str(len(VALUE)), "--csv", "-r", "1"]

    def parse(text, res):
        rows = [ln for ln in text.splitlines() if ln.startswith('"') and not ln.startswith('"test')]
        cols = [c.strip('"') for c in rows[-1].split(",")]
        rate = float(cols[1])
        res.update(ops=n, seconds=n / rate, rate=rate, p50=float(cols[4]) * 1000,
                   p99=float(cols[6]) * 1000)
    return measure(runner, a, cmd, srv_pid, None, parse)


def measure(runner, a, cmd, srv_pid, env, parse):
    res = dict(error=None)
    runner.retune(srv_pid)
    ticks0 = edge.cpu_ticks(srv_pid)
    t0 = time.monotonic()
    r = subprocess.run(runner.sched_prefix(None if a.no_pin else a.client_cpu) + cmd,
                       capture_output=True, text=True, timeout=a.seconds + 120,
                       env=dict(os.environ, **(env or {})))
    res["wall"] = time.monotonic() - t0
    res["srv_cpu"] = (edge.cpu_ticks(srv_pid) - ticks0) / edge.CLK_TCK
    if r.returncode != 0:
        res["error"] = f"{cmd[0]} exited with {r.returncode}: {(r.stderr or r.stdout)[-300:]}"
        return res
    try:
        parse(r.stdout, res)
    except (ValueError, IndexError, KeyError, AttributeError) as e:
        res["error"] = f"cannot parse {os.path.basename(cmd[0])} output ({e}): {r.stdout[-300:]!r}"
    if not res["error"]:
        res["cpu_us"] = res["srv_cpu"] * 1e6 / res["ops"]
    return res


def timed_requests(port, path, n):
    """Seconds each of N sequential GETs took, and the statuses."""
    times, statuses = [], []
    for _ in range(n):
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=60) as r:
                statuses.append(r.status)
        except urllib.error.HTTPError as e:
            statuses.append(e.code)
        times.append(time.monotonic() - t0)
    return times, statuses


def check_answers(port):
    """Every flare answers what it should before anything is timed."""
    def get(path, data=None):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
    body = bytes(range(256)) * 64
    h = 0xcbf29ce484222325
    for b in body:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    want = {"/hello-native": (200, b"hello"), "/hello-wasm": (200, b"hello"),
            "/hello-fiber": (200, b"hello")}
    for path, (st, text) in want.items():
        if get(path) != (st, text):
            raise edge.HarnessError(f"{path} answered {get(path)}, want {(st, text)}")
    for path in ("/fnv-native", "/fnv-wasm"):
        got = get(path, body)
        if got != (200, b"%016x" % h):
            raise edge.HarnessError(f"{path} answered {got}, want FNV-1a {h:016x}")
    status, got = get("/beam")
    if status != 200 or json.loads(got).get("body") != "hello":
        raise edge.HarnessError(f"/beam answered {status} {got[:200]!r}, want hello's envelope")
    for path in ("/origin-h1", "/origin-h2"):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     headers={"Host": "proxy.test"})
        with urllib.request.urlopen(req, timeout=10) as r:
            if (r.status, r.read()) != (200, b"hello"):
                raise edge.HarnessError(f"{path} through the proxy did not answer hello")
    if get("/spark", VALUE)[0] != 204 or get("/spark") != (200, VALUE):
        raise edge.HarnessError(f"/spark does not store and read back: {get('/spark')}")


def main():
    a = parse_args()
    b = os.path.join(a.build, "perf")
    tools = dict(sched=os.path.join(b, "edge", "ember-sched"),
                 server=os.path.join(b, "wasm", "ember-wasm-bench-server"),
                 wrk_lua=os.path.join(ROOT, "perf", "edge", "wrk_report.lua"),
                 wrk_post=os.path.join(HERE, "wrk_post.lua"))
    for k in ("sched", "server"):
        if not os.access(tools[k], os.X_OK):
            progress(f"{tools[k]} is missing: build it (perf/wasm/run.sh does)")
            return 1
    for k in ("wrk", "h2load", "redis-server", "redis-benchmark"):
        tools[k] = shutil.which(k)
        if not tools[k]:
            progress(f"{k} is missing: run scripts/setup.sh")
            return 1
    outdir = a.out or os.path.join(HERE, "results",
                                   datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(outdir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="ember-wasm-bench-")
    if not a.no_pin:
        os.sched_setaffinity(0, {a.client_cpu})
    runner = edge.Runner(argparse.Namespace(no_pin=a.no_pin, no_tune=a.no_tune), tools)
    edge.become_subreaper()
    try:
        return run(a, tools, runner, outdir, tmp)
    except (edge.HarnessError, subprocess.SubprocessError, OSError) as e:
        progress(f"bench failed: {e}")
        return 1
    finally:
        edge.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def run(a, tools, runner, outdir, tmp):
    build_flares(tmp)
    tools["body16k"] = os.path.join(tmp, "body16k")
    with open(tools["body16k"], "wb") as f:
        f.write(bytes(range(256)) * 64)
    port, rport = edge.pick_ports(2)
    cfg = os.path.join(tmp, "edge.yaml")
    write_config(cfg, port, tmp)
    cpu = None if a.no_pin else a.server_cpu
    ember = edge.Server("ember", [tools["server"], cfg], [port], {})
    ember.start(runner, outdir, cpu, timeout=120)  # the first start compiles the modules
    redis = edge.Server("redis", [tools["redis-server"], "--port", str(rport), "--bind",
                                  "127.0.0.1", "--dir", tmp, "--save", "", "--appendonly", "no"],
                        [rport], {})
    redis.start(runner, outdir, cpu)
    for s in (ember, redis):
        if not s.up:
            raise edge.HarnessError(f"{s.name} did not start: {s.reason}")
    check_answers(port)
    progress(f"serving on {port} (redis on {rport}); {a.rounds} round(s) x {a.seconds} s")
    loads = {ld: v for ld, v in LOADS.items() if not a.loads or ld in a.loads.split(",")}
    results = {(ld, side): [] for ld, (_, _, sides) in loads.items() for side, _ in sides}
    total = a.rounds * len(results)
    done = 0
    for rnd in range(a.rounds):
        for ld, (title, tool, sides) in loads.items():
            for side, where in sides:
                if side == "redis":
                    res = run_redis(runner, tools, a, where, rport, redis.proc.pid)
                else:
                    res = run_http(runner, tools, a, tool, port, where, ember.proc.pid, tmp)
                results[(ld, side)].append(res)
                done += 1
                progress(f"[{done}/{total}] round {rnd + 1} {ld} {side}: " +
                         (f"ERROR {res['error']}" if res["error"] else
                          f"{res['rate']:,.0f}/s p50 {res['p50']:.0f} us "
                          f"cpu {res['cpu_us']:.2f} us/req"))
    runaway = {kind: timed_requests(port, path, a.runaways)
               for kind, path in (("fuel", "/runaway"), ("timeout", "/runaway-host"))}
    if not ember.up:
        raise edge.HarnessError("the server died during the run")
    return report(a, outdir, results, runaway)


def report(a, outdir, results, runaway):
    lines = []
    out = lines.append
    out(f"WASM FLARES vs NATIVE, SPARK vs REDIS  ({a.rounds} round(s) x {a.seconds} s; "
        "server core %s, client core %s)" % (a.server_cpu, a.client_cpu))
    med = {}
    for ld, (title, _, sides) in LOADS.items():
        if (ld, sides[0][0]) not in results:
            continue  # not in --loads
        out("")
        out(title)
        out(f"  {'side':8} {'req/s (min-max)':>28} {'p50 us':>9} {'p99 us':>9} {'srv CPU us/req':>15}")
        for side, _ in sides:
            rs = [r for r in results[(ld, side)] if not r["error"]]
            if not rs:
                errs = {r["error"] for r in results[(ld, side)]}
                out(f"  {side:8} not measured: {'; '.join(errs)}")
                continue
            m = {k: statistics.median(r[k] for r in rs) for k in ("rate", "p50", "p99", "cpu_us")}
            med[(ld, side)] = m
            lo, hi = min(r["rate"] for r in rs), max(r["rate"] for r in rs)
            out(f"  {side:8} {m['rate']:>12,.0f} ({lo:,.0f}-{hi:,.0f}) {m['p50']:>9.0f} "
                f"{m['p99']:>9.0f} {m['cpu_us']:>15.2f}")
        a_side, b_side = sides[1][0], sides[0][0]
        if (ld, a_side) in med and (ld, b_side) in med:
            x, y = med[(ld, a_side)], med[(ld, b_side)]
            out(f"  {a_side} / {b_side}: rate {x['rate'] / y['rate']:.2f}x, "
                f"p50 {x['p50'] / y['p50']:.2f}x, server CPU/req {x['cpu_us'] / y['cpu_us']:.2f}x")
    out("")
    out(f"RUNAWAY FLARES  (fuel {FUEL:,} per invocation, wall-clock guard {TIMEOUT_MS} ms)")
    for kind, (times, statuses) in runaway.items():
        what = ("no host calls: stopped by fuel" if kind == "fuel"
                else "a host call every turn: stopped by the wall-clock guard")
        out(f"  {what}: statuses {sorted(set(statuses))}, "
            f"time to answer median {statistics.median(times) * 1000:.0f} ms "
            f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})")
    out("")
    out("TARGETS  (issue 7 part 6; ratios of medians, measured side by side)")
    failed = 0
    for ld, metric, op, factor, text in TARGETS:
        sides = [s for s, _ in LOADS[ld][2]]
        x, y = med.get((ld, sides[1])), med.get((ld, sides[0]))
        if not x or not y:
            out(f"  {text:62} not measured")
            failed += 1
            continue
        key = "rate" if metric == "rate" else "cpu_us"
        r = x[key] / y[key]
        ok = r >= factor if op == ">=" else r <= factor
        failed += not ok
        out(f"  {text:62} {r:6.2f}x  {'PASS' if ok else 'FAIL'}")
    t_times, t_statuses = runaway["timeout"]
    ok = all(s == 500 for s in t_statuses) and all(
        abs(t * 1000 - TIMEOUT_MS) <= 0.1 * TIMEOUT_MS for t in t_times)
    failed += not ok
    out(f"  {'runaway stopped within its budget +-10% (500 at the guard)':62} "
        f"{statistics.median(t_times) * 1000:5.0f} ms  {'PASS' if ok else 'FAIL'}")
    f_ok = all(s == 500 for s in runaway["fuel"][1])
    failed += not f_ok
    out(f"  {'fuel-only runaway answered 500':62} {'':8} {'PASS' if f_ok else 'FAIL'}")
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(outdir, "report.txt"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump({f"{ld}/{side}": [{k: v for k, v in r.items() if k != "grid"} for r in rs]
                   for (ld, side), rs in results.items()}, f, indent=1)
    progress(f"results in {outdir}")
    return 3 if a.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())

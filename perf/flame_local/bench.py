#!/usr/bin/env python3
"""run_task through `ember flame-local`: Ember's C++ client SDK against a
Python grpcio client doing what flamepy does (grpc.aio, CreateTask then
WatchTask), the same session manager and echo service, in one run.

flame-local and its instances run on core 0 (setsid, nice -19, short slice
through ember-sched), the clients on core 1, one after the other, rounds
interleaved (C++, Python, C++, ...). Each client opens its own session of
"bench-echo" with --instances instances, warms up, then times --tasks tasks
with --in-flight of them in flight. Rate and latency (create to final state,
p50/p99) come from the client; client CPU from its getrusage; server CPU
(flame-local and its instances) from /proc over the timed run.

usage: perf/flame_local/bench.py [--build DIR] [--rounds N] [--tasks N]
           [--in-flight 1,32] [--payload BYTES] [--instances N] [--out DIR] [--quick]

Exit: 0 done, 1 harness error (a client or flame-local failed), 2 usage.
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLIENTS = ("ember-cpp", "grpcio-aio")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class HarnessError(Exception):
    pass


def tree_cpu_seconds(root):
    """utime+stime (+ reaped children's) over ROOT's process tree."""
    ppid = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    s = f.read()
                ppid[int(d)] = int(s[s.rindex(")") + 2:].split()[1])
            except OSError:
                pass
    pids = [root]
    for p in pids:
        pids.extend(c for c, pp in ppid.items() if pp == p)
    ticks = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ticks += sum(int(x) for x in s[s.rindex(")") + 2:].split()[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tasks", type=int, default=5000)
    p.add_argument("--in-flight", default="1,32")
    p.add_argument("--payload", type=int, default=64)
    p.add_argument("--instances", type=int, default=1)
    p.add_argument("--out", default=None, help="results directory (default: a new one under /tmp)")
    p.add_argument("--quick", "--smoke", dest="smoke", action="store_true",
                   help="one short round: proves the bench runs")
    a = p.parse_args()
    if a.smoke:
        a.rounds, a.tasks = 1, 300
    try:
        a.in_flight = [int(x) for x in a.in_flight.split(",")]
    except ValueError:
        p.error("--in-flight wants a comma-separated list of whole numbers")
    if a.rounds < 1 or a.tasks < 1 or min(a.in_flight) < 1:
        p.error("--rounds, --tasks and --in-flight must be at least 1")
    return a


def pb2_dir(tmp):
    """flame_pb2 for the grpcio client, generated from proto/flame.proto."""
    out = os.path.join(tmp, "pb2")
    os.makedirs(out)
    subprocess.run(["protoc", "--python_out=" + out, "-I", os.path.join(ROOT, "proto"),
                    os.path.join(ROOT, "proto", "flame.proto")], check=True)
    return out


class FlameLocal:
    def __init__(self, a, tmp):
        self.log_path = os.path.join(tmp, "flame-local.log")
        # ember-sched: own session (so killpg reaches the instances), core 0,
        # nice -19 and a short slice.
        cmd = [self.sched(a), "--cpu", "0", "--",
               os.path.join(a.build, "ember"), "flame-local", "--listen", "127.0.0.1:0",
               "--state", os.path.join(tmp, "state.db"), "--socket-dir", tmp,
               "--instances", str(max(a.instances, 1) * 2), "--delay-release", "1s"]
        with open(self.log_path, "w") as logf:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=logf)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise HarnessError("flame-local exited: " + self.log())
            m = re.search(r"serving flame\.v1\.Frontend on http://127\.0\.0\.1:(\d+)", self.log())
            if m:
                self.endpoint = "127.0.0.1:" + m.group(1)
                return
            if time.monotonic() > deadline:
                raise HarnessError("flame-local did not start: " + self.log())
            time.sleep(0.05)

    @staticmethod
    def sched(a):
        path = os.path.join(a.build, "perf", "edge", "ember-sched")
        if not os.path.exists(path):
            raise HarnessError(f"{path} is missing: build with -DEMBER_BUILD_PERF=ON")
        return path

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def run_client(a, which, server, in_flight, pb2, echo):
    common = ["--service", echo, "--tasks", str(a.tasks), "--in-flight", str(in_flight),
              "--payload", str(a.payload), "--instances", str(a.instances),
              "--warmup", str(min(200, a.tasks))]
    if which == "ember-cpp":
        cmd = [os.path.join(a.build, "perf", "flame_local", "ember-flame-run-task-load"),
               "--endpoint", "http://" + server.endpoint] + common
    else:
        cmd = ["/usr/bin/python3", os.path.join(HERE, "run_task_load.py"), "--pb2", pb2,
               "--endpoint", server.endpoint] + common
    cpu0 = tree_cpu_seconds(server.proc.pid)
    r = subprocess.run(["taskset", "-c", "1"] + cmd, capture_output=True, text=True,
                       timeout=600)
    cpu = tree_cpu_seconds(server.proc.pid) - cpu0
    if r.returncode != 0:
        raise HarnessError(f"{which} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    # The server's CPU spans warm-up and session set-up too: per task over all
    # tasks that ran, a slight overestimate shared by both clients.
    res["server_cpu_us"] = cpu * 1e6 / (a.tasks + min(200, a.tasks))
    return res


def med_range(xs, fmt):
    return f"{fmt(statistics.median(xs))} ({fmt(min(xs))}–{fmt(max(xs))})"


def report(a, results):
    lines = []
    head = ("| in flight | client | tasks/s | p50 µs | p99 µs | client CPU µs/task | "
            "flame-local CPU µs/task |")
    lines += [head, "|---|---|---|---|---|---|---|"]
    ratios = []
    for k in a.in_flight:
        med = {}
        for c in CLIENTS:
            rs = results[(k, c)]
            col = {m: [r[m] for r in rs] for m in
                   ("rate", "p50_us", "p99_us", "client_cpu_us", "server_cpu_us")}
            med[c] = {m: statistics.median(v) for m, v in col.items()}
            lines.append(f"| {k} | {c} | {med_range(col['rate'], lambda x: f'{x:,.0f}')} | "
                         f"{med_range(col['p50_us'], lambda x: f'{x:,.0f}')} | "
                         f"{med_range(col['p99_us'], lambda x: f'{x:,.0f}')} | "
                         f"{med_range(col['client_cpu_us'], lambda x: f'{x:.1f}')} | "
                         f"{med_range(col['server_cpu_us'], lambda x: f'{x:.1f}')} |")
        e, p = med["ember-cpp"], med["grpcio-aio"]
        ratios.append(f"| {k} | {e['rate'] / p['rate']:.2f}× | {e['p50_us'] / p['p50_us']:.2f}× | "
                      f"{e['client_cpu_us'] / p['client_cpu_us']:.2f}× | "
                      f"{e['server_cpu_us'] / p['server_cpu_us']:.2f}× |")
    lines += ["", "C++ client / grpcio client (medians):", "",
              "| in flight | rate | p50 | client CPU | flame-local CPU |", "|---|---|---|---|---|"]
    lines += ratios
    return "\n".join(lines)


def main():
    a = parse_args()
    for tool in ("taskset", "protoc"):
        if not shutil.which(tool):
            log(f"{tool} is missing: run scripts/setup.sh")
            return 1
    echo = os.path.join(a.build, "examples", "ember-flame-echo")
    if not os.path.exists(echo):
        echo = os.path.join(a.build, "perf", "ember-bench-echo")
    if not os.path.exists(os.path.join(a.build, "ember")):
        log(f"{a.build}/ember is missing: build ember_cli")
        return 1
    out = a.out or tempfile.mkdtemp(prefix="ember-bench-flame-local-")
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="ember-flame-local-")
    server = None
    try:
        pb2 = pb2_dir(tmp)
        server = FlameLocal(a, tmp)
        log(f"flame-local on {server.endpoint}; {a.rounds} rounds x {len(a.in_flight)} loads x "
            f"{len(CLIENTS)} clients, {a.tasks} tasks of {a.payload} B each")
        results = {(k, c): [] for k in a.in_flight for c in CLIENTS}
        total, done = a.rounds * len(a.in_flight) * len(CLIENTS), 0
        for rnd in range(a.rounds):
            for k in a.in_flight:
                for c in CLIENTS:
                    r = run_client(a, c, server, k, pb2, echo)
                    results[(k, c)].append(r)
                    done += 1
                    log(f"[{done}/{total}] round {rnd + 1}, {k} in flight, {c}: "
                        f"{r['rate']:,.0f} tasks/s, p50 {r['p50_us']:,.0f} µs, "
                        f"client {r['client_cpu_us']:.1f} µs/task, "
                        f"server {r['server_cpu_us']:.1f} µs/task")
        text = report(a, results)
        print(f"\nrun_task through flame-local: {a.tasks} tasks × {a.rounds} rounds, "
              f"{a.payload} B echo, {a.instances} instance(s); server core 0, client core 1\n")
        print(text)
        with open(os.path.join(out, "results.json"), "w") as f:
            json.dump({f"{k}/{c}": v for (k, c), v in results.items()}, f, indent=1)
        with open(os.path.join(out, "summary.md"), "w") as f:
            f.write(text + "\n")
        log(f"results in {out}")
        return 0
    except (HarnessError, subprocess.SubprocessError, OSError) as e:
        log(f"bench failed: {e}")
        return 1
    finally:
        if server:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

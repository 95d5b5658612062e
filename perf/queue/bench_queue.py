#!/usr/bin/env python3
"""Queue relay benchmark: Ember's queue::Microservice (identity process) against
a librabbitmq-c relay (suite c), or the same relay in Python on Ember
(slingshot_microservice) against a pika relay (suite python), through the real
RabbitMQ, side by side in one run.

Each run: ember-queue-driver preloads COUNT requests into the relay's in queue,
starts the relay (pinned through ember-sched), times until every result is in
the out queue and checks each arrived exactly once; the relay's CPU comes from
/proc/PID/stat. Rates and CPU per message are over the steady window (first to
last result: start-up, config fetch and pass excluded). See README.md.

Exit: 0 done (missed targets and a failing Ember do not fail the run), 1 harness
error, 2 usage, 3 a target missed under --strict.
"""
import argparse
import csv
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# mode -> (prefetch, rival uses confirms, Ember uses confirms,
#          target lines: (metric, op, factor))
MODES = {
    "p1": (1, False, False, [("rate", ">=", 1.0)]),
    "p1c": (1, False, True, []),
    "p256c": (256, True, True, [("rate", ">=", 1.2), ("cpu", "<=", 0.5)]),
    "py1": (1, False, False, [("rate", ">=", 2.0), ("cpu", "<=", 0.5)]),
    "py256": (256, False, True, [("rate", ">=", 2.0), ("cpu", "<=", 0.5)]),
}
MODE_TEXT = {
    "p1": "prefetch 1 without confirms (both: the reference's behaviour)",
    "p1c": "prefetch 1, Ember with confirms, the rival without (no target: the guarantee's cost)",
    "p256c": "prefetch 256, confirms before ack (both)",
    "py1": "prefetch 1 without confirms (both: the reference's behaviour)",
    "py256": "prefetch 256 (pika: no confirms; Ember: confirms)",
}
# suite -> (modes, Ember's relay, the rival)
SUITES = {
    "c": ("p1,p1c,p256c", "ember", "rabbitmq-c"),
    "python": ("py1,py256", "python-ember", "pika"),
}
RELAYS = ("ember", "rabbitmq-c", "python-ember", "pika")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class HarnessError(Exception):
    pass


def services_env(state):
    """The env file of scripts/services.sh, as a dict (bash does the unquoting)."""
    env_file = os.path.join(state, "env")
    out = subprocess.run(["bash", "-c", f'set -a; . "{env_file}"; env -0'],
                         check=True, capture_output=True).stdout
    env = {}
    for item in out.split(b"\0"):
        if b"=" in item:
            k, v = item.split(b"=", 1)
            env[k.decode()] = v.decode()
    return env


def median_range(xs):
    if not xs:
        return None, None, None
    return statistics.median(xs), min(xs), max(xs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--count", type=int, default=50000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smoke run: 3,000 messages, 1 round")
    ap.add_argument("--suite", choices=sorted(SUITES), default="c",
                    help="c: C++ relay vs librabbitmq-c; python: Python on Ember vs pika")
    ap.add_argument("--modes", help="default: the suite's")
    ap.add_argument("--relays", help="default: the suite's two")
    ap.add_argument("--workers", default="1",
                    help="Ember's process() workers, or 'loop' for process_on_loop")
    ap.add_argument("--ember-temp-dir", default="",
                    help="Ember's MicroserviceOptions::temp_dir (default: $TMPDIR or /tmp)")
    ap.add_argument("--relay-cpu", default="0")
    ap.add_argument("--driver-cpu", default="1")
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--timeout", type=float, default=0, help="per run (default 60 s + 2 ms/msg)")
    ap.add_argument("--ember", help="another ember-queue-relay binary")
    ap.add_argument("--services", help="reuse a running services state dir (not stopped)")
    ap.add_argument("--out")
    ap.add_argument("--strict", action="store_true")
    ap.add_argument("--no-alloc", action="store_true",
                    help="skip counting Ember's heap allocations per message")
    a = ap.parse_args()
    if a.quick:
        a.count, a.rounds = 3000, 1
    suite_modes, ours, theirs = SUITES[a.suite]
    modes = [m for m in (a.modes or suite_modes).split(",") if m]
    relays = [r for r in (a.relays or f"{ours},{theirs}").split(",") if r]
    if any(m not in MODES for m in modes) or any(r not in RELAYS for r in relays):
        ap.error("unknown mode or relay")
    timeout = a.timeout or 60 + 0.002 * a.count

    bq = os.path.join(a.build, "perf", "queue")
    driver = os.path.join(bq, "ember-queue-driver")
    rival = os.path.join(bq, "ember-relay-rabbitmq-c")
    sched = os.path.join(a.build, "perf", "edge", "ember-sched")
    ember = a.ember or os.path.join(bq, "ember-queue-relay")
    for p in (driver, rival, sched):
        if not os.access(p, os.X_OK):
            raise HarnessError(f"{p} missing: build ember-queue-tools")
    ember_ok = os.access(ember, os.X_OK)
    if "ember" in relays and not ember_ok:
        log(f"{ember} missing: Ember's rows will say n/a")
    python_dir = os.path.join(a.build, "python")
    if "python-ember" in relays and not os.path.isdir(os.path.join(python_dir, "slingshot_microservice")):
        log(f"{python_dir}/slingshot_microservice missing: Python-on-Ember's rows will say n/a")
        ember_ok = False

    out = a.out or os.path.join(HERE, "results", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)

    own_state = None
    state = a.services
    try:
        if not state:
            own_state = tempfile.mkdtemp(prefix="ember-qbench-")
            state = own_state
            log(f"starting services in {state}")
            env = dict(os.environ, EMBER_SERVICES_DIR=state)
            r = subprocess.run([os.path.join(ROOT, "scripts", "services.sh"), "start"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=240)
            if r.returncode != 0:
                raise HarnessError("scripts/services.sh start failed:\n" + r.stderr.decode()[-2000:])
        senv = services_env(state)
        for k in ("RABBITMQ_PORT", "RABBITMQ_USER", "RABBITMQ_PASSWORD", "CONFIG_HOST", "CONFIG_DIR"):
            if k not in senv:
                raise HarnessError(f"services env lacks {k} (state {state})")
        run_env = dict(os.environ, **senv)
        run_env.setdefault("EMBER_LOG", "warn")
        host = senv.get("RABBITMQ_HOST", "127.0.0.1")
        broker = [host, senv["RABBITMQ_PORT"], senv["RABBITMQ_USER"], senv["RABBITMQ_PASSWORD"]]
        tag = f"qbench{os.getpid()}"
        broker_pid = find_beam(state)
        if not broker_pid:
            log("the broker's beam.smp not found: no broker CPU column")
        for m in modes:  # Ember's service documents
            for kind in ("ember", "pyember"):
                name = f"{tag}-{kind}-{m}"
                with open(os.path.join(senv["CONFIG_DIR"], name + ".json"), "w") as f:
                    json.dump({"in": name + "-in", "out": [{"case": True, "queues": [name + "-out"]}]}, f)
        run_env["PYTHONPATH"] = python_dir

        def pin(cpu):
            if a.no_pin:
                return ["setsid"]  # still its own process group, so the driver can stop it all
            return [sched, "--cpu", cpu, "--"]

        def one_run(relay, mode, rnd, count=None, relay_env=None, tag_log=""):
            count = count or a.count
            prefetch, confirms, ember_confirms, _ = MODES[mode]
            kind = {"ember": "ember", "python-ember": "pyember"}.get(relay, "c")
            name = f"{tag}-{kind}-{mode}"
            py = "/usr/bin/python3"
            if relay == "ember":
                cmd = [ember, name, senv["CONFIG_HOST"], str(prefetch), str(a.workers)]
                if a.ember_temp_dir:
                    cmd.append(a.ember_temp_dir)
                if not ember_confirms:
                    cmd.insert(1, "--no-confirms")
            elif relay == "python-ember":
                cmd = [py, os.path.join(HERE, "relay_ember.py"), name, senv["CONFIG_HOST"],
                       str(prefetch), str(a.workers)]
                if not ember_confirms:
                    cmd.insert(2, "--no-confirms")
            elif relay == "pika":
                cmd = [py, os.path.join(HERE, "relay_pika.py"), *broker, name + "-in", name + "-out",
                       str(prefetch)]
            else:
                cmd = [rival, *broker, name + "-in", name + "-out", str(prefetch)]
                if confirms:
                    cmd.append("--confirms")
            if relay_env:  # the relay's alone: the driver must not count itself
                cmd = ["env", *(f"{k}={v}" for k, v in relay_env.items()), *cmd]
            drv = ([] if a.no_pin else ["taskset", "-c", a.driver_cpu]) + [
                driver, *broker, name + "-in", name + "-out", str(count),
                "--timeout", str(timeout), "--base", str(10**12 + rnd * 10**8),
                *(["--broker-pid", broker_pid] if broker_pid else []), "--", *pin(a.relay_cpu), *cmd]
            logf = os.path.join(out, f"{relay}-{mode}-r{rnd}{tag_log}.log")
            with open(logf, "w") as lf:
                r = subprocess.run(drv, env=run_env, stdout=subprocess.PIPE, stderr=lf,
                                   timeout=timeout + 60)
            line = next((ln for ln in r.stdout.decode().splitlines() if ln.startswith("RESULT ")), None)
            if r.returncode in (1, 2) or line is None:
                raise HarnessError(f"driver failed (exit {r.returncode}) for {relay} {mode}; see {logf}")
            res = dict(kv.split("=", 1) for kv in line.split()[1:])
            res.update(relay=relay, mode=mode, round=rnd, ok=int(r.returncode == 0))
            n = int(res["count"])
            st, sc = float(res["steady_s"]), float(res["steady_cpu_s"])
            res["rate"] = (n - 1) / st if res["ok"] and st > 0 else 0.0
            res["cpu_us"] = sc / (n - 1) * 1e6 if res["ok"] and sc >= 0 else 0.0
            bc = float(res.get("broker_steady_cpu_s", -1))
            res["broker_cpu_us"] = bc / (n - 1) * 1e6 if res["ok"] and bc >= 0 else 0.0
            res["total_rate"] = n / float(res["wall_s"]) if res["ok"] else 0.0
            return res

        rows = []
        total = a.rounds * len(modes) * len(relays)
        k = 0
        log(f"{a.count} messages, {a.rounds} round(s), modes {modes}, relays {relays}, "
            f"relay cpu {a.relay_cpu}, driver cpu {a.driver_cpu}, load {open('/proc/loadavg').read().split()[:3]}")
        for rnd in range(a.rounds):
            for m in modes:
                order = relays if rnd % 2 == 0 else list(reversed(relays))
                for relay in order:
                    k += 1
                    if relay == ours and not ember_ok:
                        continue
                    res = one_run(relay, m, rnd)
                    if not res["ok"] and relay != ours:
                        raise HarnessError(f"the rival failed: {res}")
                    rows.append(res)
                    log(f"[{k}/{total}] round {rnd + 1} {m:6} {relay:10} "
                        + (f"{res['rate']:8.0f} msg/s  {res['cpu_us']:6.1f} µs CPU/msg"
                           if res["ok"] else f"WRONG: {line_summary(res)}"))

        # Heap allocations per message: Ember's relay under the LD_PRELOAD
        # counter (perf/alloc_count.c), a short and a long run per mode; the
        # difference cancels start-up and shutdown.
        allocs = {}
        shim = os.path.join(a.build, "perf", "libember_alloc_count.so")
        short, long_ = max(500, a.count // 5), a.count
        if not a.no_alloc and ours == "ember" and ember_ok and os.path.exists(shim) and short < long_:
            for m in modes:
                got = []
                try:
                    for n in (short, long_):
                        path = os.path.join(out, f"alloc-{m}-{n}.txt")
                        env = dict(LD_PRELOAD=shim, EMBER_ALLOC_COUNT_FILE=path,
                                   EMBER_ALLOC_COUNT_AT_EXIT="1")
                        res = one_run("ember", m, 0, count=n, relay_env=env, tag_log=f"-alloc{n}")
                        got.append(heap_calls(path) if res["ok"] else None)
                except HarnessError as e:  # optional: the rounds above still count
                    log(f"heap allocation count for {m} failed: {e}")
                    continue
                if None not in got:
                    allocs[m] = (got[1] - got[0]) / (long_ - short)
                    log(f"heap allocations per message, {m}: {allocs[m]:.2f}")

        fields = ["round", "mode", "relay", "ok", "count", "received", "dup", "bad", "missing",
                  "left_in", "wall_s", "steady_s", "cpu_s", "steady_cpu_s", "broker_steady_cpu_s", "rate", "cpu_us", "broker_cpu_us", "total_rate"]
        with open(os.path.join(out, "runs.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)

        lines = [f"Queue relay, {a.count} messages per run, {a.rounds} round(s), medians (min–max); "
                 f"rate and CPU over first→last result. Ember workers={a.workers}, "
                 f"suite {a.suite}, "
                 f"temp_dir={a.ember_temp_dir or 'default'}.", "",
                 "| mode | relay | msg/s | client CPU µs/msg | broker CPU µs/msg | msg/s incl. start-up | runs ok |",
                 "|---|---|---|---|---|---|---|"]
        summary = {}
        for m in modes:
            for relay in relays:
                rs = [r for r in rows if r["mode"] == m and r["relay"] == relay]
                good = [r for r in rs if r["ok"]]
                rate = median_range([r["rate"] for r in good])
                cpu = median_range([r["cpu_us"] for r in good])
                tot = median_range([r["total_rate"] for r in good])
                bro = median_range([r["broker_cpu_us"] for r in good])
                summary[(m, relay)] = (rate[0], cpu[0], len(good), len(rs))
                if not good:
                    lines.append(f"| {m} | {relay} | n/a | n/a | n/a | n/a | {len(good)}/{len(rs)} |")
                    continue
                lines.append(f"| {m} | {relay} | {rate[0]:.0f} ({rate[1]:.0f}–{rate[2]:.0f}) | "
                             f"{cpu[0]:.1f} ({cpu[1]:.1f}–{cpu[2]:.1f}) | {bro[0]:.1f} | {tot[0]:.0f} | {len(good)}/{len(rs)} |")
        lines += ["", "| mode | Ember/rival rate | Ember/rival CPU per msg | target | result |", "|---|---|---|---|---|"]
        missed = 0
        for m in modes:
            e, c = summary.get((m, ours)), summary.get((m, theirs))
            if not e or not c or e[0] is None or c[0] is None:
                lines.append(f"| {m} | n/a | n/a | | n/a |")
                continue
            rr, cr = e[0] / c[0], e[1] / c[1] if c[1] else float("nan")
            if not MODES[m][3]:
                lines.append(f"| {m} | {rr:.2f}× | {cr:.2f}× | none | — |")
            for metric, op, f in MODES[m][3]:
                v = rr if metric == "rate" else cr
                ok = v >= f if op == ">=" else v <= f
                missed += not ok
                lines.append(f"| {m} | {rr:.2f}× | {cr:.2f}× | {metric} {op} {f}× | {'PASS' if ok else 'FAIL'} |")
        if allocs:
            lines += ["", "| mode | Ember heap allocations per message |", "|---|---|"]
            lines += [f"| {m} | {v:.2f} |" for m, v in allocs.items()]
            lines += ["", "(LD_PRELOAD counter, runs of a fifth and all of --count messages; the "
                      "relay's process() returns a new vector per message: 1 of them.)"]
        lines += ["", "Modes: " + "; ".join(f"{m}: {MODE_TEXT[m]}" for m in modes) + "."]
        text = "\n".join(lines)
        with open(os.path.join(out, "summary.md"), "w") as f:
            f.write(text + "\n")
        print(text)
        log(f"results in {out}")
        return 3 if (a.strict and missed) else 0
    finally:
        if own_state:
            log("stopping services")
            subprocess.run([os.path.join(ROOT, "scripts", "services.sh"), "stop"],
                           env=dict(os.environ, EMBER_SERVICES_DIR=own_state),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
            shutil.rmtree(own_state, ignore_errors=True)


def find_beam(state):
    """PID of the broker's beam.smp: scripts/services.sh records the
    rabbitmq-server script, whose child (or itself after exec) is beam."""
    try:
        with open(os.path.join(state, "pids", "rabbitmq.pid")) as f:
            top = f.read().split()[0]
    except (OSError, IndexError):
        return ""
    todo, seen = [top], set()
    while todo:
        pid = todo.pop()
        seen.add(pid)
        try:
            if open(f"/proc/{pid}/comm").read().strip() == "beam.smp":
                return pid
        except OSError:
            continue
        for d in os.listdir("/proc"):
            if d.isdigit() and d not in seen:
                try:
                    st = open(f"/proc/{d}/stat").read()
                except OSError:
                    continue
                if st[st.rfind(")") + 2:].split()[1] == pid:
                    todo.append(d)
    return ""


def heap_calls(path):
    """Allocation calls in an alloc_count.c dump, or None."""
    try:
        kv = dict(ln.split() for ln in open(path) if len(ln.split()) == 2)
    except OSError:
        return None
    names = ("malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign",
             "valloc", "pvalloc", "reallocarray", "new")
    return sum(int(kv.get(k, 0)) for k in names)


def line_summary(res):
    return " ".join(f"{k}={res.get(k)}" for k in ("received", "dup", "bad", "missing", "left_in", "timed_out", "died"))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HarnessError as e:
        log(f"harness error: {e}")
        sys.exit(1)
    except subprocess.TimeoutExpired as e:
        log(f"harness error: timeout: {e}")
        sys.exit(1)

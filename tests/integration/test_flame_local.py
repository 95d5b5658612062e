"""`ember flame-local` driven by grpcio (Debian python3-grpcio), a
flame.v1.Frontend client nobody here wrote, with ember-test-service as the
application: the Frontend surface incl. both streams, scheduling one task at
a time per instance, failures and crashes mid-task, errors as gRPC statuses,
state kept across a restart, and 10,000 tasks over 4 instances.

Environment (set by CMake): EMBER_BIN, EMBER_TEST_SERVICE, FLAME_PB2_DIR.
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.environ["FLAME_PB2_DIR"])
import grpc  # noqa: E402
import flame_pb2 as pb  # noqa: E402

EMBER = os.environ["EMBER_BIN"]
SERVICE = os.environ["EMBER_TEST_SERVICE"]
SLOW = int(os.environ.get("EMBER_TEST_SLOW", "1"))
FINAL = (pb.Succeed, pb.Failed, pb.Cancelled)


class FlameLocal:
    """One flame-local process on a loopback port with its own state file."""

    def __init__(self, state_dir, instances=2):
        self.state_dir = state_dir
        self.instances = instances
        self.start()

    def start(self):
        self.log_path = os.path.join(self.state_dir, "flame-local.log")
        # A restart appends: only what this run wrote names its port.
        self.log_from = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(
                [EMBER, "flame-local", "--listen", "127.0.0.1:0",
                 "--state", os.path.join(self.state_dir, "state.db"),
                 "--instances", str(self.instances),
                 "--socket-dir", self.state_dir, "--delay-release", "1s"],
                stdout=subprocess.DEVNULL, stderr=log)
        port = wait_for("flame-local to serve", self.port)
        self.channel = grpc.insecure_channel("127.0.0.1:" + port)
        grpc.channel_ready_future(self.channel).result(timeout=10 * SLOW)

    def port(self):
        with open(self.log_path) as f:
            f.seek(self.log_from)
            log = f.read()
        assert self.proc.poll() is None, "flame-local exited: " + log
        m = re.search(r"serving flame\.v1\.Frontend on http://127\.0\.0\.1:(\d+)", log)
        return m.group(1) if m else None

    def stop(self):
        self.channel.close()
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30 * SLOW)

    def unary(self, method, request, reply_type, timeout=10):
        call = self.channel.unary_unary(
            "/flame.v1.Frontend/" + method,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=reply_type.FromString)
        return call(request, timeout=timeout * SLOW)

    def stream(self, method, request, timeout=30):
        call = self.channel.unary_stream(
            "/flame.v1.Frontend/" + method,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=pb.Task.FromString)
        return call(request, timeout=timeout * SLOW)

    # ---- the calls the tests use ----
    def register(self, name, **spec):
        spec.setdefault("command", SERVICE)
        self.unary("RegisterApplication",
                   pb.RegisterApplicationRequest(name=name, application=pb.ApplicationSpec(**spec)),
                   pb.Result)

    def create_session(self, sid, app, **spec):
        return self.unary("CreateSession",
                          pb.CreateSessionRequest(
                              session_id=sid, session=pb.SessionSpec(application=app, **spec)),
                          pb.Session)

    def create_task(self, sid, data):
        return self.unary("CreateTask",
                          pb.CreateTaskRequest(task=pb.TaskSpec(session_id=sid, input=data)),
                          pb.Task)

    def watch(self, sid, tid):
        return list(self.stream("WatchTask", pb.WatchTaskRequest(session_id=sid, task_id=tid)))

    def final(self, sid, tid):
        return self.watch(sid, tid)[-1]

    def session(self, sid):
        return self.unary("GetSession", pb.GetSessionRequest(session_id=sid), pb.Session)

    def tasks(self, sid):
        return list(self.stream("ListTask", pb.ListTaskRequest(session_id=sid)))

    def executors(self):
        return self.unary("ListExecutor", pb.ListExecutorRequest(), pb.ExecutorList).executors


@pytest.fixture
def state_dir():
    with tempfile.TemporaryDirectory(prefix="ember-flame-local-") as d:
        yield d


@pytest.fixture
def flame(state_dir):
    f = FlameLocal(state_dir)
    yield f
    if f.proc.poll() is None:
        assert f.stop() == 0


def wait_for(what, predicate, seconds=20):
    deadline = time.monotonic() + seconds * SLOW
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def test_tasks_run_and_their_outputs_come_back(flame):
    flame.register("echo")
    app = flame.unary("GetApplication", pb.GetApplicationRequest(name="echo"), pb.Application)
    assert app.metadata.name == "echo" and app.spec.command == SERVICE
    names = [a.metadata.name for a in
             flame.unary("ListApplication", pb.ListApplicationRequest(), pb.ApplicationList)
             .applications]
    assert "echo" in names
    ssn = flame.create_session("s1", "echo", min_instances=1, max_instances=2)
    assert ssn.metadata.id == "s1" and ssn.status.state == pb.Open
    ids = [flame.create_task("s1", b"in-%d" % i).metadata.id for i in range(40)]
    assert len(set(ids)) == 40
    for i, tid in enumerate(ids):
        t = flame.final("s1", tid)
        assert t.status.state == pb.Succeed, t
        assert t.spec.output == b"in-%d" % i
        assert t.status.completion_time >= t.status.creation_time > 0
    s = flame.session("s1")
    assert (s.status.succeed, s.status.failed, s.status.pending, s.status.running) == (40, 0, 0, 0)
    listed = flame.tasks("s1")
    assert sorted(t.metadata.id for t in listed) == sorted(ids)
    assert all(t.status.state == pb.Succeed for t in listed)
    closed = flame.unary("CloseSession", pb.CloseSessionRequest(session_id="s1"), pb.Session)
    assert closed.status.state == pb.Closed


def test_watch_streams_each_state_change_in_order(flame):
    flame.register("echo")
    flame.create_session("w", "echo")
    tid = flame.create_task("w", b"sleep:300").metadata.id
    states = [t.status.state for t in flame.watch("w", tid)]
    assert states[-1] == pb.Succeed
    assert pb.Running in states
    order = [pb.Pending, pb.Running, pb.Succeed]
    assert [order.index(s) for s in states] == sorted(order.index(s) for s in states)


def test_one_task_at_a_time_per_instance(flame, state_dir):
    events = os.path.join(state_dir, "events")
    flame.register("serial", max_instances=1,
                   environments=[pb.Environment(name="EMBER_TEST_EVENTS", value=events)])
    flame.create_session("one", "serial", max_instances=1)
    ids = [flame.create_task("one", b"sleep:50").metadata.id for _ in range(6)]
    for tid in ids:
        assert flame.final("one", tid).status.state == pb.Succeed
    kinds = [line.split("\t")[0] for line in open(events).read().splitlines()
             if line.startswith("task-")]
    assert kinds == ["task-begin", "task-end"] * 6


def test_failures_and_crashes_fail_the_task_and_the_session_goes_on(flame):
    flame.register("echo")
    flame.create_session("f", "echo", max_instances=1)
    failed = flame.final("f", flame.create_task("f", b"fail:boom").metadata.id)
    assert failed.status.state == pb.Failed
    assert any("boom" in e.message for e in failed.status.events), failed
    crashed = flame.final("f", flame.create_task("f", b"exit:3").metadata.id)
    assert crashed.status.state == pb.Failed
    assert any("exited with status 3" in e.message for e in crashed.status.events), crashed
    after = flame.final("f", flame.create_task("f", b"still here").metadata.id)
    assert after.status.state == pb.Succeed and after.spec.output == b"still here"
    s = flame.session("f")
    assert (s.status.succeed, s.status.failed) == (1, 2)


def test_an_application_that_cannot_start_fails_its_tasks_with_the_reason(flame):
    flame.register("missing", command="/nonexistent/flame-service")
    flame.create_session("m", "missing")
    t = flame.final("m", flame.create_task("m", b"x").metadata.id)
    assert t.status.state == pb.Failed
    assert any("cannot start" in e.message for e in t.status.events), t


def test_errors_are_grpc_statuses_naming_the_problem(flame):
    flame.register("echo")

    def code_of(fn):
        with pytest.raises(grpc.RpcError) as e:
            fn()
        return e.value.code(), e.value.details()

    code, details = code_of(lambda: flame.register("echo"))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "echo" in details
    code, details = code_of(lambda: flame.create_session("x", "nope"))
    assert code == grpc.StatusCode.NOT_FOUND and "nope" in details
    code, _ = code_of(lambda: flame.create_session("x", ""))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = code_of(lambda: flame.create_task("no-such-session", b"x"))
    assert code == grpc.StatusCode.NOT_FOUND
    flame.create_session("c", "echo")
    code, _ = code_of(lambda: flame.create_session("c", "echo"))
    assert code == grpc.StatusCode.ALREADY_EXISTS
    code, _ = code_of(lambda: flame.unary(
        "GetTask", pb.GetTaskRequest(session_id="c", task_id="999"), pb.Task))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = code_of(lambda: flame.watch("c", "999"))
    assert code == grpc.StatusCode.NOT_FOUND
    flame.unary("CloseSession", pb.CloseSessionRequest(session_id="c"), pb.Session)
    code, _ = code_of(lambda: flame.create_task("c", b"x"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    code, _ = code_of(lambda: flame.channel.unary_unary("/flame.v1.Frontend/NoSuchCall")(b""))
    assert code == grpc.StatusCode.UNIMPLEMENTED
    code, _ = code_of(lambda: flame.channel.unary_unary("/flame.v1.Frontend/GetSession")(
        b"\xff\xff\xff"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    # Still serving after all of that.
    assert flame.session("c").status.state == pb.Closed


def test_idle_instances_are_released_after_delay_release(flame):
    flame.register("echo", delay_release=1)
    flame.create_session("r", "echo", min_instances=1)
    assert flame.final("r", flame.create_task("r", b"x").metadata.id).status.state == pb.Succeed
    assert len(flame.executors()) == 1
    flame.unary("CloseSession", pb.CloseSessionRequest(session_id="r"), pb.Session)
    wait_for("the idle instance to be released", lambda: len(flame.executors()) == 0)


def test_a_restart_keeps_applications_sessions_and_finished_tasks(state_dir):
    first = FlameLocal(state_dir)
    first.register("echo")
    first.create_session("keep", "echo")
    ids = [first.create_task("keep", b"kept-%d" % i).metadata.id for i in range(5)]
    for tid in ids:
        assert first.final("keep", tid).status.state == pb.Succeed
    assert first.stop() == 0

    second = FlameLocal(state_dir)
    try:
        assert second.session("keep").status.succeed == 5
        outputs = {t.metadata.id: t.spec.output for t in second.tasks("keep")}
        assert outputs == {tid: b"kept-%d" % i for i, tid in enumerate(ids)}
        more = second.create_task("keep", b"after restart")
        assert more.metadata.id not in ids
        assert second.final("keep", more.metadata.id).spec.output == b"after restart"
    finally:
        assert second.stop() == 0


def test_ten_thousand_tasks_over_four_instances(state_dir):
    flame = FlameLocal(state_dir, instances=4)
    try:
        flame.register("echo")
        flame.create_session("many", "echo", min_instances=4, max_instances=4)
        call = flame.channel.unary_unary(
            "/flame.v1.Frontend/CreateTask",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=pb.Task.FromString)
        n = 10_000
        futures = [call.future(pb.CreateTaskRequest(
            task=pb.TaskSpec(session_id="many", input=b"task-%d" % i)), timeout=60 * SLOW)
            for i in range(n)]
        want = {}
        for i, f in enumerate(futures):
            want[f.result().metadata.id] = b"task-%d" % i
        wait_for("every task to finish",
                 lambda: flame.session("many").status.succeed == n, seconds=240)
        got = {t.metadata.id: t.spec.output for t in flame.tasks("many")
               if t.status.state == pb.Succeed}
        assert got == want
        assert len(flame.executors()) == 4
    finally:
        assert flame.stop() == 0


def test_the_cpp_pi_client_runs_against_flame_local(flame):
    """examples/flame/pi-client (Ember's client SDK) registers the Pi service
    and spreads its tasks over two instances."""
    port = flame.port()
    out = subprocess.run(
        [os.environ["EMBER_PI_CLIENT"], "--endpoint", "http://127.0.0.1:" + port,
         "--service", os.environ["EMBER_PI_SERVICE"], "--tasks", "40", "--samples", "200000",
         "--instances", "2"],
        capture_output=True, text=True, timeout=120 * SLOW)
    assert out.returncode == 0, out.stderr
    m = re.search(r"pi is about (\d\.\d+) \(40 tasks, 8000000 samples, 2 instances", out.stdout)
    assert m, out.stdout
    assert abs(float(m.group(1)) - 3.14159) < 0.01
    sessions = flame.unary("ListSession", pb.ListSessionRequest(), pb.SessionList).sessions
    assert [(s.status.succeed, s.status.state) for s in sessions] == [(40, pb.Closed)]
    assert flame.unary("GetApplication", pb.GetApplicationRequest(name="pi"),
                       pb.Application).spec.command == os.environ["EMBER_PI_SERVICE"]


def test_the_rest_of_the_frontend_surface(flame):
    """Update, unregister, open-or-create, delete, and the node calls."""

    def code_of(fn):
        with pytest.raises(grpc.RpcError) as e:
            fn()
        return e.value.code()

    flame.register("app", description="first")
    flame.unary("UpdateApplication", pb.UpdateApplicationRequest(
        name="app", application=pb.ApplicationSpec(command=SERVICE, description="second")),
        pb.Result)
    got = flame.unary("GetApplication", pb.GetApplicationRequest(name="app"), pb.Application)
    assert got.spec.description == "second"
    assert code_of(lambda: flame.unary("UpdateApplication", pb.UpdateApplicationRequest(
        name="nope", application=pb.ApplicationSpec(command=SERVICE)), pb.Result)) == \
        grpc.StatusCode.NOT_FOUND

    spec = pb.SessionSpec(application="app", min_instances=0)
    opened = flame.unary("OpenSession", pb.OpenSessionRequest(session_id="o", session=spec),
                         pb.Session)
    assert opened.metadata.id == "o" and opened.status.state == pb.Open
    again = flame.unary("OpenSession", pb.OpenSessionRequest(session_id="o", session=spec),
                        pb.Session)
    assert again.status.creation_time == opened.status.creation_time
    other = pb.SessionSpec(application="app", min_instances=1)
    assert code_of(lambda: flame.unary("OpenSession", pb.OpenSessionRequest(
        session_id="o", session=other), pb.Session)) == grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(lambda: flame.unary("OpenSession", pb.OpenSessionRequest(session_id="new"),
                                       pb.Session)) == grpc.StatusCode.NOT_FOUND
    # An application with an open session stays registered.
    assert code_of(lambda: flame.unary("UnregisterApplication",
                                       pb.UnregisterApplicationRequest(name="app"), pb.Result)) \
        == grpc.StatusCode.FAILED_PRECONDITION
    assert flame.final("o", flame.create_task("o", b"x").metadata.id).status.state == pb.Succeed

    deleted = flame.unary("DeleteSession", pb.DeleteSessionRequest(session_id="o"), pb.Session)
    assert deleted.metadata.id == "o"
    assert code_of(lambda: flame.session("o")) == grpc.StatusCode.NOT_FOUND
    assert len(flame.unary("ListSession", pb.ListSessionRequest(), pb.SessionList).sessions) == 0
    flame.unary("UnregisterApplication", pb.UnregisterApplicationRequest(name="app"), pb.Result)
    assert code_of(lambda: flame.unary("GetApplication", pb.GetApplicationRequest(name="app"),
                                       pb.Application)) == grpc.StatusCode.NOT_FOUND

    nodes = flame.unary("ListNodes", pb.ListNodesRequest(), pb.NodeList).nodes
    assert len(nodes) == 1 and nodes[0].metadata.name
    node = flame.unary("GetNode", pb.GetNodeRequest(name=nodes[0].metadata.name),
                       pb.GetNodeResponse).node
    assert node.metadata.name == nodes[0].metadata.name
    assert code_of(lambda: flame.unary("GetNode", pb.GetNodeRequest(name="elsewhere"),
                                       pb.GetNodeResponse)) == grpc.StatusCode.NOT_FOUND


def test_flame_main_names_and_a_service_speaking_the_wrapped_wire(flame):
    # The service answers in Flame main's wrapped edition (set, as a user
    # would, through the application's environments); flame-local reads both.
    flame.register("wrapped",
                   environments=[pb.Environment(name="EMBER_FLAME_WIRE", value="wrapped")])
    flame.create_session("m", "wrapped", common_data=b"publish:warm")
    for data in (b"publish:k1,k2", b"plain", b"fail:nope-wrapped"):
        t = flame.final("m", flame.create_task("m", data).metadata.id)
        if data.startswith(b"fail:"):
            assert t.status.state == pb.Failed and any(
                "nope-wrapped" in e.message for e in t.status.events), t
        else:
            assert t.status.state == pb.Succeed and t.spec.output == data, t
    # Flame main's renamed list calls answer as v0.6.0's do.
    apps = flame.unary("ListApplications", pb.ListApplicationRequest(), pb.ApplicationList)
    assert [a.metadata.name for a in apps.applications] == ["wrapped"]
    sessions = flame.unary("ListSessions", pb.ListSessionRequest(), pb.SessionList)
    assert [s.metadata.id for s in sessions.sessions] == ["m"]
    assert len(list(flame.stream("ListTasks", pb.ListTaskRequest(session_id="m")))) == 3
    assert len(flame.unary("ListExecutors", pb.ListExecutorRequest(), pb.ExecutorList).executors) >= 1

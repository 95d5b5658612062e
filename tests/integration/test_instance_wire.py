"""Ember's instance server under grpcio (Debian python3-grpcio) clients
generated from each edition's flame.proto: Flame v0.6.0's plain replies and
Flame main's wrapped ones with executor attributes; and flame-local under a
Frontend client of main's edition.

Environment (set by CMake): EMBER_TEST_SERVICE, EMBER_BIN (for flame-local),
FLAME_PB2_DIR (v0.6.0's flame_pb2) or FLAME_MAIN_PB2_DIR (main's), one per
run: both editions declare flame.v1 in a file named flame.proto, so they
cannot share a process.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

MAIN = "FLAME_MAIN_PB2_DIR" in os.environ
sys.path.insert(0, os.environ["FLAME_MAIN_PB2_DIR" if MAIN else "FLAME_PB2_DIR"])
import grpc  # noqa: E402
import flame_pb2 as pb  # noqa: E402

SERVICE = os.environ["EMBER_TEST_SERVICE"]
SLOW = int(os.environ.get("EMBER_TEST_SLOW", "1"))


class Instance:
    """ember-test-service started the way Flame's executor starts a service."""

    def __init__(self, tmp, env=None):
        self.sock = os.path.join(tmp, "instance.sock")
        self.log_path = os.path.join(tmp, "service.log")
        full = dict(os.environ, FLAME_INSTANCE_ENDPOINT=self.sock, **(env or {}))
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([SERVICE], env=full, stderr=log,
                                         stdout=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10 * SLOW
        while not os.path.exists(self.sock):
            assert self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, "no socket: " + self.log()
            time.sleep(0.01)
        self.channel = grpc.insecure_channel("unix:" + self.sock)

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def call(self, method, request, reply_type):
        rpc = self.channel.unary_unary(
            "/flame.v1.Instance/" + method,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=reply_type.FromString)
        return rpc(request, timeout=10 * SLOW)

    def close(self):
        self.channel.close()
        os.killpg(self.proc.pid, signal.SIGTERM)
        assert self.proc.wait(timeout=30 * SLOW) == 0, self.log()


@pytest.fixture
def tmp():
    with tempfile.TemporaryDirectory() as d:
        yield d


def session_context(app="echo", common=None, **newer):
    ctx = pb.SessionContext(application=pb.ApplicationContext(name=app))
    if MAIN:
        ctx.session = "s"
        if "tokens" in newer:
            ctx.tokens.update(newer["tokens"])
        ctx.workspace = newer.get("workspace", "")
    else:
        ctx.session_id = "s"
    if common is not None:
        ctx.common_data = common
    return ctx


def task_context(task_id, data=None, workspace=""):
    if MAIN:
        ctx = pb.TaskContext(task=task_id, session="s", workspace=workspace)
    else:
        ctx = pb.TaskContext(task_id=task_id, session_id="s")
    if data is not None:
        ctx.input = data
    return ctx


@pytest.mark.skipif(MAIN, reason="v0.6.0 edition")
@pytest.mark.parametrize("async_service", ["0", "1"])
def test_v060_plain_replies_and_unsent_attributes(tmp, async_service):
    inst = Instance(tmp, {"EMBER_TEST_ASYNC": async_service})
    try:
        r = inst.call("OnSessionEnter", session_context(common=b"publish:warm"), pb.Result)
        assert r.return_code == 0
        t = inst.call("OnTaskInvoke", task_context("1", b"hello"), pb.TaskResult)
        assert (t.return_code, t.output) == (0, b"hello")
        # Published attributes cannot ride on v0.6.0's replies: they wait, and
        # the log says how to send them.
        t = inst.call("OnTaskInvoke", task_context("2", b"publish:k1"), pb.TaskResult)
        assert (t.return_code, t.output) == (0, b"publish:k1")
        t = inst.call("OnTaskInvoke", task_context("3", b"fail:nope"), pb.TaskResult)
        assert (t.return_code, t.message) == (-1, "nope")
        t = inst.call("OnTaskInvoke", task_context("4"), pb.TaskResult)
        assert t.return_code == 0 and not t.HasField("output")
        assert inst.call("OnSessionLeave", pb.EmptyRequest(), pb.Result).return_code == 0
        assert "EMBER_FLAME_WIRE=wrapped" in inst.log()
    finally:
        inst.close()


@pytest.mark.skipif(not MAIN, reason="Flame main's edition")
@pytest.mark.parametrize("async_service", ["0", "1"])
def test_main_wrapped_replies_carry_attributes(tmp, async_service):
    inst = Instance(tmp, {"EMBER_TEST_ASYNC": async_service})
    try:
        r = inst.call("OnSessionEnter",
                      session_context(common=b"publish:warm,c1", tokens={"s3": "secret"},
                                      workspace="default"),
                      pb.OnSessionEnterResponse)
        assert r.HasField("result") and r.result.return_code == 0
        assert sorted(r.attributes.attr) == [b"c1", b"warm"]
        t = inst.call("OnTaskInvoke", task_context("1", b"publish:k", "default"),
                      pb.OnTaskInvokeResponse)
        assert (t.task_result.return_code, t.task_result.output) == (0, b"publish:k")
        assert list(t.attributes.attr) == [b"k"]
        big = b"x" * (1 << 20)
        t = inst.call("OnTaskInvoke", task_context("2", big, "default"), pb.OnTaskInvokeResponse)
        assert t.task_result.output == big and not t.HasField("attributes")
        t = inst.call("OnTaskInvoke", task_context("3", b"notfound:cache", "default"),
                      pb.OnTaskInvokeResponse)
        assert (t.task_result.return_code, t.task_result.message) == (-1, "'cache' not found")
        assert inst.call("OnSessionLeave", pb.EmptyRequest(), pb.Result).return_code == 0
        # Another session on the same connection: still wrapped.
        r = inst.call("OnSessionEnter", session_context(app="refuse", common=b"publish:z"),
                      pb.OnSessionEnterResponse)
        assert r.result.return_code == -1 and not r.HasField("attributes")
    finally:
        inst.close()


@pytest.mark.skipif(not MAIN, reason="Flame main's edition")
def test_main_configured_by_environment(tmp):
    inst = Instance(tmp, {"EMBER_FLAME_WIRE": "wrapped"})
    try:
        r = inst.call("OnSessionEnter", session_context(), pb.OnSessionEnterResponse)
        assert r.HasField("result") and r.result.return_code == 0
        t = inst.call("OnTaskInvoke", task_context("1", b"hi"), pb.OnTaskInvokeResponse)
        assert t.task_result.output == b"hi"
    finally:
        inst.close()


@pytest.mark.skipif(not MAIN or "EMBER_BIN" not in os.environ, reason="Flame main's edition")
def test_main_frontend_client_against_flame_local(tmp):
    """A Frontend client built from main's flame.proto: its newer fields
    (session tokens, task affinity) are accepted and its renamed list calls
    answered, while the service runs with wrapped replies."""
    import re
    log_path = os.path.join(tmp, "flame-local.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [os.environ["EMBER_BIN"], "flame-local", "--listen", "127.0.0.1:0",
             "--state", os.path.join(tmp, "state.db"), "--socket-dir", tmp,
             "--instances", "1", "--delay-release", "1s"],
            stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 20 * SLOW
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, open(log_path).read()
            m = re.search(r"on http://127\.0\.0\.1:(\d+)", open(log_path).read())
            if m:
                port = m.group(1)
                break
            time.sleep(0.05)
        ch = grpc.insecure_channel("127.0.0.1:" + port)

        def unary(name, req, resp):
            return ch.unary_unary("/flame.v1.Frontend/" + name,
                                  request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=resp.FromString)(req, timeout=10 * SLOW)

        env = [pb.Environment(name="EMBER_FLAME_WIRE", value="wrapped")]
        unary("RegisterApplication", pb.RegisterApplicationRequest(
            name="svc", application=pb.ApplicationSpec(command=SERVICE, environments=env)),
            pb.Result)
        spec = pb.SessionSpec(application="svc", common_data=b"publish:warm")
        spec.tokens["s3"] = "secret"
        unary("CreateSession", pb.CreateSessionRequest(session_id="m1", session=spec), pb.Session)
        task = pb.TaskSpec(session_id="m1", input=b"publish:k", affinity=[b"k"])
        tid = unary("CreateTask", pb.CreateTaskRequest(task=task), pb.Task).metadata.id
        watch = ch.unary_stream("/flame.v1.Frontend/WatchTask",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=pb.Task.FromString)
        last = list(watch(pb.WatchTaskRequest(task_id=tid, session_id="m1"), timeout=30 * SLOW))[-1]
        assert last.status.state == pb.Succeed and last.spec.output == b"publish:k", last
        sessions = unary("ListSessions", pb.ListSessionRequest(), pb.SessionList).sessions
        assert [s.metadata.id for s in sessions] == ["m1"]
        apps = unary("ListApplications", pb.ListApplicationRequest(), pb.ApplicationList)
        assert [a.metadata.name for a in apps.applications] == ["svc"]
        tasks = ch.unary_stream("/flame.v1.Frontend/ListTasks",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=pb.Task.FromString)
        assert [t.metadata.id for t in tasks(pb.ListTaskRequest(session_id="m1"),
                                             timeout=10 * SLOW)] == [tid]
        ch.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30 * SLOW) == 0, open(log_path).read()

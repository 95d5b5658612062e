"""Ember's instance server under grpcio (Debian python3-grpcio) clients
generated from each edition's flame.proto: Flame v0.6.0's plain replies and
Flame main's wrapped ones with executor attributes.

Environment (set by CMake): EMBER_TEST_SERVICE, FLAME_PB2_DIR (v0.6.0's
flame_pb2) or FLAME_MAIN_PB2_DIR (main's), one per run: both editions
declare flame.v1 in a file named flame.proto, so they cannot share a process.
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

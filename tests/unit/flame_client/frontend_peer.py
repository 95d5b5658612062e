"""A flame.v1.Frontend session manager in grpcio (an independent peer) for
Ember's Flame client tests.

Messages come from flame_pb2, generated from proto/flame.proto by protoc at
build time (the first argument is its directory). Tasks are run by one
worker thread: Pending -> Running -> Succeed with the input reversed as the
output; input "fail" ends Failed with an event "boom: the task failed";
input "hang" stays Running. WatchTask streams every state change until a
final one. It prints "PORT <n>" once serving.

usage: frontend_peer.py PB2_DIR [--tls CERT KEY] [--branch]
  --branch  serve Flame main's renamed calls (ListApplications, ListSessions,
            ListTasks); the v0.6.0 names answer UNIMPLEMENTED. PB2_DIR should
            then hold main's flame_pb2 (proto/flame-main/flame.proto); the
            peer checks that it does.
"""
import queue
import sys
import threading
import time
from concurrent import futures

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
import flame_pb2 as pb  # noqa: E402


def now_ms():
    return int(time.time() * 1000)


class Frontend:
    def __init__(self):
        self.lock = threading.Condition()
        self.apps = {}
        self.sessions = {}
        self.tasks = {}  # session id -> {task id: Task}
        self.work = queue.Queue()
        threading.Thread(target=self.worker, daemon=True).start()

    # ---- the executor ----
    def set_state(self, task, state, output=None, event=None):
        with self.lock:
            task.status.state = state
            if output is not None:
                task.spec.output = output
            if event:
                task.status.events.add(code=state, message=event, creation_time=now_ms())
            if state in (pb.Succeed, pb.Failed, pb.Cancelled):
                task.status.completion_time = now_ms()
            ssn = self.sessions[task.spec.session_id]
            ssn.status.pending -= 1 if state == pb.Running else 0
            if state == pb.Succeed:
                ssn.status.succeed += 1
            if state == pb.Failed:
                ssn.status.failed += 1
            self.lock.notify_all()

    def worker(self):
        while True:
            task = self.work.get()
            self.set_state(task, pb.Running)
            data = task.spec.input
            if data == b"hang":
                continue
            if data == b"fail":
                self.set_state(task, pb.Failed, event="boom: the task failed")
            else:
                self.set_state(task, pb.Succeed, output=data[::-1])

    # ---- applications ----
    def RegisterApplication(self, req, ctx):
        with self.lock:
            if req.name in self.apps:
                return pb.Result(return_code=-1, message="application %s already exists" % req.name)
            app = pb.Application()
            app.metadata.id = req.name
            app.metadata.name = req.name
            app.spec.CopyFrom(req.application)
            app.status.state = pb.Enabled
            app.status.creation_time = now_ms()
            self.apps[req.name] = app
            return pb.Result(return_code=0)

    def UnregisterApplication(self, req, ctx):
        with self.lock:
            if self.apps.pop(req.name, None) is None:
                return pb.Result(return_code=-1, message="application %s not found" % req.name)
            return pb.Result(return_code=0)

    def UpdateApplication(self, req, ctx):
        with self.lock:
            if req.name not in self.apps:
                return pb.Result(return_code=-1, message="application %s not found" % req.name)
            self.apps[req.name].spec.CopyFrom(req.application)
            return pb.Result(return_code=0)

    def GetApplication(self, req, ctx):
        with self.lock:
            if req.name not in self.apps:
                ctx.abort(grpc.StatusCode.NOT_FOUND, "application %s not found" % req.name)
            return self.apps[req.name]

    def ListApplication(self, req, ctx):
        with self.lock:
            return pb.ApplicationList(applications=list(self.apps.values()))

    # ---- sessions ----
    def new_session(self, sid, spec, ctx):
        if spec.application not in self.apps:
            ctx.abort(grpc.StatusCode.NOT_FOUND, "application %s not found" % spec.application)
        ssn = pb.Session()
        ssn.metadata.id = sid
        ssn.metadata.name = sid
        ssn.spec.CopyFrom(spec)
        ssn.status.state = pb.Open
        ssn.status.creation_time = now_ms()
        self.sessions[sid] = ssn
        self.tasks[sid] = {}
        return ssn

    def CreateSession(self, req, ctx):
        with self.lock:
            if req.session_id in self.sessions:
                ctx.abort(grpc.StatusCode.ALREADY_EXISTS, "session %s already exists" % req.session_id)
            return self.new_session(req.session_id, req.session, ctx)

    def OpenSession(self, req, ctx):
        # No spec check here: the client's own validation is under test.
        with self.lock:
            if req.session_id in self.sessions:
                return self.sessions[req.session_id]
            if not req.HasField("session"):
                ctx.abort(grpc.StatusCode.NOT_FOUND, "session %s not found" % req.session_id)
            return self.new_session(req.session_id, req.session, ctx)

    def get_ssn(self, sid, ctx):
        if sid not in self.sessions:
            ctx.abort(grpc.StatusCode.NOT_FOUND, "session %s not found" % sid)
        return self.sessions[sid]

    def CloseSession(self, req, ctx):
        with self.lock:
            ssn = self.get_ssn(req.session_id, ctx)
            ssn.status.state = pb.Closed
            ssn.status.completion_time = now_ms()
            return ssn

    def GetSession(self, req, ctx):
        with self.lock:
            return self.get_ssn(req.session_id, ctx)

    def ListSession(self, req, ctx):
        with self.lock:
            return pb.SessionList(sessions=list(self.sessions.values()))

    # ---- tasks ----
    def CreateTask(self, req, ctx):
        with self.lock:
            sid = req.task.session_id
            ssn = self.get_ssn(sid, ctx)
            if ssn.status.state != pb.Open:
                ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, "session %s is closed" % sid)
            task = pb.Task()
            task.metadata.id = str(len(self.tasks[sid]) + 1)
            task.spec.session_id = sid
            if req.task.HasField("input"):
                task.spec.input = req.task.input
            task.status.state = pb.Pending
            task.status.creation_time = now_ms()
            self.tasks[sid][task.metadata.id] = task
            ssn.status.pending += 1
            answer = pb.Task()
            answer.CopyFrom(task)
        self.work.put(task)
        return answer

    def get_task(self, sid, tid, ctx):
        self.get_ssn(sid, ctx)
        if tid not in self.tasks[sid]:
            ctx.abort(grpc.StatusCode.NOT_FOUND, "task %s/%s not found" % (sid, tid))
        return self.tasks[sid][tid]

    def GetTask(self, req, ctx):
        with self.lock:
            return self.get_task(req.session_id, req.task_id, ctx)

    def WatchTask(self, req, ctx):
        with self.lock:
            task = self.get_task(req.session_id, req.task_id, ctx)
        last = None
        while True:
            with self.lock:
                while task.status.state == last and ctx.is_active():
                    self.lock.wait(1.0)
                if not ctx.is_active():
                    return
                snapshot = pb.Task()
                snapshot.CopyFrom(task)
            last = snapshot.status.state
            yield snapshot
            if last in (pb.Succeed, pb.Failed, pb.Cancelled):
                return

    def ListTask(self, req, ctx):
        with self.lock:
            self.get_ssn(req.session_id, ctx)
            tasks = []
            for t in self.tasks[req.session_id].values():
                c = pb.Task()
                c.CopyFrom(t)
                tasks.append(c)
        for t in tasks:
            yield t


def main():
    args = sys.argv[2:]
    fe = Frontend()
    branch = "--branch" in args
    # Main's edition has the wrapped instance replies; v0.6.0's does not.
    assert branch == hasattr(pb, "OnTaskInvokeResponse"), "flame_pb2 of the wrong edition"
    renamed = {"ListApplication": "ListApplications", "ListSession": "ListSessions",
               "ListTask": "ListTasks"}
    unary = {
        "RegisterApplication": (pb.RegisterApplicationRequest, pb.Result),
        "UnregisterApplication": (pb.UnregisterApplicationRequest, pb.Result),
        "UpdateApplication": (pb.UpdateApplicationRequest, pb.Result),
        "GetApplication": (pb.GetApplicationRequest, pb.Application),
        "ListApplication": (pb.ListApplicationRequest, pb.ApplicationList),
        "CreateSession": (pb.CreateSessionRequest, pb.Session),
        "OpenSession": (pb.OpenSessionRequest, pb.Session),
        "CloseSession": (pb.CloseSessionRequest, pb.Session),
        "GetSession": (pb.GetSessionRequest, pb.Session),
        "ListSession": (pb.ListSessionRequest, pb.SessionList),
        "CreateTask": (pb.CreateTaskRequest, pb.Task),
        "GetTask": (pb.GetTaskRequest, pb.Task),
    }
    stream = {
        "WatchTask": (pb.WatchTaskRequest, pb.Task),
        "ListTask": (pb.ListTaskRequest, pb.Task),
    }
    handlers = {}
    for table, make in ((unary, grpc.unary_unary_rpc_method_handler),
                        (stream, grpc.unary_stream_rpc_method_handler)):
        for name, (req, resp) in table.items():
            served = renamed.get(name, name) if branch else name
            handlers[served] = make(getattr(fe, name), request_deserializer=req.FromString,
                                    response_serializer=resp.SerializeToString)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("flame.v1.Frontend",
                                                                          handlers),))
    if len(args) >= 3 and args[0] == "--tls":
        with open(args[1], "rb") as f:
            cert = f.read()
        with open(args[2], "rb") as f:
            key = f.read()
        port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print("PORT %d" % port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()

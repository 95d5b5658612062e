"""Flame's run_task through a flame.v1.Frontend, the way flamepy does it:
grpc.aio (Debian python3-grpcio) on asyncio, CreateTask then WatchTask until
the task is final, a fixed number of tasks in flight on one channel. The C++
twin is run_task_load.cpp; perf/flame_local/bench.py runs both.

usage: run_task_load.py --pb2 DIR --endpoint HOST:PORT --service PATH
           [--tasks N] [--in-flight K] [--payload BYTES] [--instances I] [--warmup N]

Prints one JSON line like the C++ client's.
"""
import argparse
import asyncio
import json
import os
import resource
import sys
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pb2", required=True, help="directory of flame_pb2 (v0.6.0)")
    p.add_argument("--endpoint", required=True, help="host:port of the Frontend")
    p.add_argument("--service", required=True, help="the echo service binary")
    p.add_argument("--tasks", type=int, default=10000)
    p.add_argument("--in-flight", type=int, default=1)
    p.add_argument("--payload", type=int, default=64)
    p.add_argument("--instances", type=int, default=1)
    p.add_argument("--warmup", type=int, default=200)
    return p.parse_args()


def cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def main(a):
    sys.path.insert(0, a.pb2)
    import grpc
    import flame_pb2 as pb

    final = (pb.Succeed, pb.Failed, pb.Cancelled)
    async with grpc.aio.insecure_channel(a.endpoint) as ch:
        def unary(name, resp):
            return ch.unary_unary("/flame.v1.Frontend/" + name,
                                  request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=resp.FromString)
        register = unary("RegisterApplication", pb.Result)
        update = unary("UpdateApplication", pb.Result)
        create_session = unary("CreateSession", pb.Session)
        close_session = unary("CloseSession", pb.Session)
        create_task = unary("CreateTask", pb.Task)
        watch_task = ch.unary_stream("/flame.v1.Frontend/WatchTask",
                                     request_serializer=lambda m: m.SerializeToString(),
                                     response_deserializer=pb.Task.FromString)

        spec = pb.ApplicationSpec(command=a.service, max_instances=a.instances)
        try:
            await register(pb.RegisterApplicationRequest(name="bench-echo", application=spec))
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
            await update(pb.UpdateApplicationRequest(name="bench-echo", application=spec))
        sid = "py-%d" % os.getpid()
        await create_session(pb.CreateSessionRequest(session_id=sid, session=pb.SessionSpec(
            application="bench-echo", min_instances=a.instances, max_instances=a.instances)))
        data = b"x" * a.payload

        async def run_task():
            t = await create_task(pb.CreateTaskRequest(task=pb.TaskSpec(session_id=sid, input=data)))
            last = t
            async for t in watch_task(pb.WatchTaskRequest(task_id=t.metadata.id, session_id=sid)):
                last = t
                if t.status.state in final:
                    break
            if last.status.state != pb.Succeed or last.spec.output != data:
                raise RuntimeError("task %s did not echo its input" % last.metadata.id)

        async def batch(n):
            latencies = []
            left = [n]

            async def worker():
                while left[0] > 0:
                    left[0] -= 1
                    t0 = time.perf_counter()
                    await run_task()
                    latencies.append((time.perf_counter() - t0) * 1e6)

            await asyncio.gather(*(worker() for _ in range(min(n, a.in_flight))))
            return latencies

        if a.warmup:
            await batch(a.warmup)
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        lat = await batch(a.tasks)
        seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        await close_session(pb.CloseSessionRequest(session_id=sid))

    lat.sort()
    pct = lambda p: lat[int(p * (len(lat) - 1))]  # noqa: E731
    print(json.dumps({"client": "grpcio-aio", "tasks": a.tasks, "in_flight": a.in_flight,
                      "seconds": round(seconds, 4), "rate": round(a.tasks / seconds, 1),
                      "p50_us": round(pct(0.5), 1), "p99_us": round(pct(0.99), 1),
                      "client_cpu_us": round(cpu * 1e6 / a.tasks, 2)}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(parse()))

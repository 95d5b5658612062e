"""slingshot_microservice (Python on Ember's queue runtime) against the real services.

Needs scripts/services.sh's env (RabbitMQ, PostgreSQL, S3, the config service,
pass) and PYTHONPATH holding the built package. Each test writes a small
microservice program, runs it as its own process, and checks what reached
RabbitMQ (pika), S3 (boto3) and PostgreSQL (psycopg2): peers written elsewhere.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

pika = pytest.importorskip("pika")
boto3 = pytest.importorskip("boto3")
psycopg2 = pytest.importorskip("psycopg2")
from botocore.config import Config  # noqa: E402  (after the skip checks)

REQUIRED = ["CONFIG_HOST", "CONFIG_DIR", "RABBITMQ_PORT", "PGHOST", "S3_ENDPOINT", "PASSWORD_STORE_DIR"]
missing = [v for v in REQUIRED if not os.environ.get(v)]
if missing:
    if os.environ.get("EMBER_REQUIRE_SERVICES"):
        raise RuntimeError(f"EMBER_REQUIRE_SERVICES is set but {missing} are not: source `scripts/services.sh env`")
    pytest.skip("no services: run scripts/services.sh start and source its env", allow_module_level=True)

PYTHON = "/usr/bin/python3"
GUARD = 90  # seconds any wait may take before the test fails


# ---- peers ----------------------------------------------------------------


def rabbit():
    params = pika.ConnectionParameters(
        host="127.0.0.1",
        port=int(os.environ["RABBITMQ_PORT"]),
        credentials=pika.PlainCredentials(os.environ["RABBITMQ_USER"], os.environ["RABBITMQ_PASSWORD"]),
        connection_attempts=30,
        retry_delay=1,
    )
    return pika.BlockingConnection(params)


def s3():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT"],
        region_name=os.environ.get("S3_REGION", "garage"),
        aws_access_key_id=os.environ["S3_ACCESS_KEY"],
        aws_secret_access_key=os.environ["S3_SECRET_KEY"],
        config=Config(s3={"addressing_style": "path"}),
    )


def postgres():
    return psycopg2.connect(
        host=os.environ["PGHOST"],
        port=os.environ["PGPORT"],
        user=os.environ["PGUSER"],
        password=os.environ["PGPASSWORD"],
        dbname=os.environ["PGDATABASE"],
    )


@contextlib.contextmanager
def scratch_table(prefix, columns):
    """A PostgreSQL table for one test, dropped afterwards."""
    table = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with postgres() as db, db.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} ({columns})")
    try:
        yield table
    finally:
        with postgres() as db, db.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {table}")


def header_text(props, name):
    value = props.headers[name]
    return value.decode() if isinstance(value, bytes) else value


def rabbitmqctl(*args):
    env = dict(os.environ, HOME=os.environ["RABBITMQ_HOME_DIR"], ERL_EPMD_PORT=os.environ["RABBITMQ_EPMD_PORT"])
    subprocess.run(
        ["/usr/lib/rabbitmq/bin/rabbitmqctl", "-q", "-n", os.environ["RABBITMQ_NODENAME"], *args],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=120,
    )


class Service:
    """A config document, the queues it names, and the microservice program run for it."""

    def __init__(self, tmp_path, routes):
        self.name = f"py-{uuid.uuid4().hex[:10]}"
        self.tmp = tmp_path
        self.queues = {case_json: f"{self.name}-{i}" for i, case_json in enumerate(routes)}
        out = [{"case": json.loads(c), "queues": [q]} for c, q in self.queues.items()]
        cfg = os.environ["CONFIG_DIR"]
        with open(os.path.join(cfg, f"{self.name}.json"), "w") as f:
            json.dump({"in": f"{self.name}-in", "out": out}, f)
        os.makedirs(os.path.join(cfg, self.name))
        for key, bucket in (("in", "ember-in"), ("out", "ember-out")):
            with open(os.path.join(cfg, self.name, key), "w") as f:
                f.write(bucket + "\n")
        self.proc = None
        self.log_path = tmp_path / "service.log"
        self.conn = rabbit()
        self.ch = self.conn.channel()
        for q in [f"{self.name}-in", f"{self.name}.dead-letter", *self.queues.values()]:
            self.ch.queue_declare(q)  # the service's own arguments: not durable

    def start(self, program, **options):
        path = self.tmp / "service.py"
        body = textwrap.dedent(program)
        path.write_text(
            body
            + textwrap.dedent(
                f"""
                import json as _json
                _svc = Microservice({self.name!r}, {os.environ["CONFIG_HOST"]!r}, process, **{options!r})
                _svc.start()
                print("STATS " + _json.dumps(_svc.stats()), flush=True)
                """
            )
        )
        self.run_file(path)

    def run_file(self, path):
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([PYTHON, str(path)], stdout=subprocess.PIPE, stderr=self.log, text=True)
        deadline = time.time() + GUARD
        while self.ch.queue_declare(f"{self.name}-in", passive=True).method.consumer_count < 1:
            assert self.proc.poll() is None, f"the service exited early:\n{self.log_text()}"
            assert time.time() < deadline, "the service did not start consuming"
            time.sleep(0.05)

    def publish(self, *bodies):
        for b in bodies:
            self.ch.basic_publish("", f"{self.name}-in", str(b).encode())

    def take(self, queue, n, guard=GUARD):
        """The bodies of n messages from queue (waits for them)."""
        got, deadline = [], time.time() + guard
        while len(got) < n:
            method, props, body = self.ch.basic_get(queue, auto_ack=True)
            if method is None:
                assert time.time() < deadline, f"{queue}: {len(got)} of {n} messages; log:\n{self.log_text()}"
                time.sleep(0.02)
                continue
            got.append((body.decode(), props))
        return got

    def bodies(self, queue, n):
        return sorted(int(b) for b, _ in self.take(queue, n))

    def count(self, queue):
        return self.ch.queue_declare(queue, passive=True).method.message_count

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Signals the service; its exit status and the stats it printed."""
        self.proc.send_signal(sig)
        out, _ = self.proc.communicate(timeout=timeout)
        stats = None
        for line in out.splitlines():
            if line.startswith("STATS "):
                stats = json.loads(line[6:])
        return self.proc.returncode, stats

    def log_text(self):
        self.log.flush()
        return self.log_path.read_text()

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            for q in [f"{self.name}-in", f"{self.name}.dead-letter", *self.queues.values()]:
                self.ch.queue_delete(q)
            self.conn.close()
        except Exception:
            pass  # a test that restarted the broker may have left this connection dead


@pytest.fixture
def service(tmp_path):
    made = []

    def make(routes=("true",)):
        s = Service(tmp_path, routes)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


# ---- tests ----------------------------------------------------------------


def test_reference_program_runs_unchanged(service):
    s = service()
    # The reference's README example, word for word but the name and host.
    program = f'''
from typing import Generator
from sqlalchemy.engine.base import Connection
from slingshot_microservice.typing import ReadFileFn, WriteFileFn
from slingshot_microservice import Microservice
def process(
request: int,
read_file: ReadFileFn,
write_file: WriteFileFn,
connection: Connection,
) -> Generator[tuple[int, bool | int | str], None, None]:
    reader = read_file("in", request)
    input_data = reader.read().decode()
    writer = write_file("out", request)
    writer.write(f"Hello {{input_data}}".encode())
    yield (request, True)
microservice = Microservice("{s.name}", "{os.environ["CONFIG_HOST"]}", process)
microservice.start()
'''
    request = int(time.time() * 1000) % 10**9 + 10**10
    s3().put_object(Bucket="ember-in", Key=str(request), Body=b"world")
    path = s.tmp / "reference.py"
    path.write_text(program)
    s.run_file(path)
    s.publish(request)
    assert s.bodies(s.queues["true"], 1) == [request]
    assert s3().get_object(Bucket="ember-out", Key=str(request))["Body"].read() == b"Hello world"
    code, _ = s.stop()
    assert code == 0, s.log_text()


@pytest.mark.parametrize("confirms", [True, False], ids=["confirms", "reference_settle"])
def test_routes_by_bool_int_and_string_cases(service, confirms):
    s = service(routes=("true", "false", "1", '"1"', '"true"'))
    s.start(
        """
        from slingshot_microservice import Microservice
        def process(request, read_file, write_file, connection):
            if request % 2:  # a list works as well as a generator
                return [(request, True), (request + 1000, 1)]
            return iter([(request, False), (request + 2000, "1"), (request + 3000, "true"),
                         (request + 4000, "nowhere"), (2**64 - 1, "1")])
        """,
        workers=2,
        publisher_confirms=confirms,
    )
    s.publish(*range(1, 11))
    q = s.queues
    assert s.bodies(q["true"], 5) == [1, 3, 5, 7, 9]
    assert s.bodies(q["1"], 5) == [1001, 1003, 1005, 1007, 1009]
    assert s.bodies(q["false"], 5) == [2, 4, 6, 8, 10]
    assert s.bodies(q['"1"'], 10) == sorted([2002, 2004, 2006, 2008, 2010] + [2**64 - 1] * 5)
    assert s.bodies(q['"true"'], 5) == [3002, 3004, 3006, 3008, 3010]
    code, stats = s.stop()
    assert code == 0, s.log_text()
    assert stats["processed"] == 10 and stats["unrouted"] == 5 and stats["failed"] == 0
    assert all(s.count(queue) == 0 for queue in q.values())


@pytest.mark.parametrize("on_loop", [False, True], ids=["workers", "process_on_loop"])
def test_files_round_trip_through_s3(service, on_loop):
    s = service()
    request = int(time.time() * 1000) % 10**9 + 2 * 10**10
    data = os.urandom(3 * 1024 * 1024 + 17)  # several reads, not a multiple of any buffer
    s3().put_object(Bucket="ember-in", Key=str(request), Body=data)
    s.start(
        """
        import hashlib, io
        from slingshot_microservice import Microservice
        def process(request, read_file, write_file, connection):
            digest = hashlib.sha256()
            buf = bytearray(100_000)
            with read_file("in", request) as reader:
                assert reader.readable() and not reader.writable()
                while n := reader.readinto(buf):
                    digest.update(memoryview(buf)[:n])
            again = read_file("in", request).read()  # all of it at once
            assert hashlib.sha256(again).digest() == digest.digest()
            with write_file("out", request) as w:
                w.write(again[::-1])
            write_file("out", request).write(b"")  # the same staged file, closed already
            w2 = write_file("out", request + 1)
            w2.write(digest.hexdigest().encode())  # left open: the runtime closes it
            yield (request, True)
        """,
        process_on_loop=on_loop,
    )
    s.publish(request)
    assert s.bodies(s.queues["true"], 1) == [request]
    client = s3()
    assert client.get_object(Bucket="ember-out", Key=str(request))["Body"].read() == data[::-1]
    import hashlib

    digest = client.get_object(Bucket="ember-out", Key=str(request + 1))["Body"].read()
    assert digest == hashlib.sha256(data).hexdigest().encode()
    code, _ = s.stop()
    assert code == 0, s.log_text()


def test_missing_object_fails_the_request_with_the_reason(service):
    s = service()
    s.start(
        """
        from slingshot_microservice import Microservice
        def process(request, read_file, write_file, connection):
            try:
                read_file("in", request)
            except OSError as e:
                raise LookupError(f"no input: {e}") from e
            yield (request, True)
        """,
        max_attempts=1,
    )
    s.publish(987654321987)
    [(body, props)] = s.take(f"{s.name}.dead-letter", 1)
    assert body == "987654321987"
    error = header_text(props, "x-ember-error")
    assert "LookupError: no input" in error and "987654321987" in error
    s.stop()


@pytest.mark.parametrize("on_loop", [False, True], ids=["workers", "process_on_loop"])
def test_row_through_postgresql(service, on_loop):
    s = service()
    with scratch_table("py_rows", "request bigint PRIMARY KEY, via text") as table:
        s.start(
            f"""
            from sqlalchemy import text
            from sqlalchemy.engine.base import Connection
            from slingshot_microservice import Microservice
            def process(request, read_file, write_file, connection):
                assert isinstance(connection, Connection), type(connection)
                connection.execute(text("INSERT INTO {table} VALUES (:r, :v)"),
                                   {{"r": request, "v": type(connection).__name__}})
                if request != 7:  # 7 leaves its transaction open: rolled back for it
                    connection.commit()
                count = connection.execute(text("SELECT count(*) FROM {table}")).scalar()
                yield (request, True)
            """,
            workers=2,
            process_on_loop=on_loop,
        )
        s.publish(*range(1, 11))
        assert s.bodies(s.queues["true"], 10) == list(range(1, 11))
        code, _ = s.stop()
        assert code == 0, s.log_text()
        with postgres() as db, db.cursor() as cur:
            cur.execute(f"SELECT request, via FROM {table} ORDER BY request")
            rows = cur.fetchall()
        assert [r for r, _ in rows] == [1, 2, 3, 4, 5, 6, 8, 9, 10]
        assert {v for _, v in rows} == {"Connection"}


def test_without_sqlalchemy_the_connection_is_dbapi_and_without_psycopg2_none(service):
    s = service(routes=('"psycopg2"', '"None"'))
    with scratch_table("py_dbapi", "request bigint PRIMARY KEY") as table:
        s.start(
            f"""
            import sys
            sys.modules["sqlalchemy"] = None  # as if python3-sqlalchemy were not installed
            from slingshot_microservice import Microservice
            def process(request, read_file, write_file, connection):
                with connection.cursor() as cur:  # DB-API 2.0 (psycopg2)
                    cur.execute("INSERT INTO {table} VALUES (%s)", (request,))
                connection.commit()
                yield (request, type(connection).__module__.split(".")[0])
            """
        )
        s.publish(1, 2)
        assert s.bodies(s.queues['"psycopg2"'], 2) == [1, 2]
        s.stop()
        with postgres() as db, db.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {table}")
            assert cur.fetchone()[0] == 2

    s.start(
        """
        import sys
        sys.modules["psycopg2"] = None  # neither driver
        from slingshot_microservice import Microservice
        def process(request, read_file, write_file, connection):
            yield (request, repr(connection))
        """
    )
    s.publish(3)
    assert s.bodies(s.queues['"None"'], 1) == [3]
    s.stop()
    assert "install python3-psycopg2" in s.log_text()


@pytest.mark.parametrize("on_loop", [False, True], ids=["workers", "process_on_loop"])
def test_raising_process_fails_only_that_message(service, on_loop):
    s = service()
    s.start(
        """
        from slingshot_microservice import Microservice
        def process(request, read_file, write_file, connection):
            if request == 13:
                raise ValueError(f"unlucky {request}")
            yield (request, True)
        """,
        max_attempts=2,
        process_on_loop=on_loop,
    )
    s.publish(*range(10, 17))
    assert s.bodies(s.queues["true"], 6) == [10, 11, 12, 14, 15, 16]
    [(body, props)] = s.take(f"{s.name}.dead-letter", 1)
    assert body == "13"
    error = header_text(props, "x-ember-error")
    assert "Traceback" in error and "ValueError: unlucky 13" in error
    code, stats = s.stop()
    assert code == 0
    assert stats["failed"] == 2 and stats["retried"] == 1 and stats["dead_lettered"] == 1
    log = s.log_text()
    assert "ValueError: unlucky 13" in log and "queued again" in log


def test_results_that_are_not_id_case_pairs_fail_clearly(service):
    s = service()
    s.start(
        """
        from slingshot_microservice import Microservice
        def process(request, read_file, write_file, connection):
            bad = {1: [("7", True)], 2: [(7, 2.5)], 3: [(7,)], 4: [(-1, True)], 5: None}
            return bad.get(request, [(request, True)])
        """,
        max_attempts=1,
    )
    s.publish(1, 2, 3, 4, 5, 6)
    assert s.bodies(s.queues["true"], 1) == [6]
    errors = {}
    for body, props in s.take(f"{s.name}.dead-letter", 5):
        errors[int(body)] = header_text(props, "x-ember-error")
    assert "the id is a str, not an int" in errors[1]
    assert "a case is a bool, an int or a str" in errors[2]
    assert "not an (id, case) tuple" in errors[3]
    assert "not in 0..2**64-1" in errors[4]
    assert "TypeError" in errors[5]  # list(None)
    s.stop()


def test_files_do_not_outlive_their_call(service):
    s = service(routes=('"ValueError"',))
    s.start(
        """
        from slingshot_microservice import Microservice
        kept = []
        def process(request, read_file, write_file, connection):
            if not kept:
                kept.append(write_file("out", request))
                return []
            try:
                kept[0].write(b"late")
                kept[0].flush()
            except Exception as e:
                return [(request, type(e).__name__)]
            return [(request, "no error")]
        """,
        workers=1,
    )
    s.publish(1)
    time.sleep(0.5)
    s.publish(2)
    assert s.bodies(s.queues['"ValueError"'], 1) == [2]
    s.stop()


def test_python_waits_do_not_hold_the_gil(service):
    # Two requests on two workers, each sleeping 1 s in Python: they overlap
    # only if the runtime gives the GIL back while C++ works and waits.
    s = service()
    s.start(
        """
        import sys, time
        from slingshot_microservice import Microservice
        def process(request, read_file, write_file, connection):
            start = time.monotonic()
            time.sleep(1.0)
            yield (request, True)
            sys.stdout.write(f"SPAN {request} {start} {time.monotonic()}\\n")  # one write: atomic
            sys.stdout.flush()
        """,
        workers=2,
    )
    s.publish(1, 2)
    s.take(s.queues["true"], 2)
    s.proc.send_signal(signal.SIGTERM)
    out, _ = s.proc.communicate(timeout=60)
    spans = [tuple(map(float, line.split()[2:])) for line in out.splitlines() if line.startswith("SPAN")]
    assert len(spans) == 2
    (a0, a1), (b0, b1) = spans
    assert max(a0, b0) < min(a1, b1), f"the two calls did not overlap: {spans}"


def test_broker_restart(service):
    s = service()
    s.start(
        """
        from slingshot_microservice import Microservice
        def process(request, read_file, write_file, connection):
            yield (request, True)
        """
    )
    s.publish(*range(1, 6))
    assert s.bodies(s.queues["true"], 5) == [1, 2, 3, 4, 5]
    s.conn.close()
    rabbitmqctl("stop_app")
    rabbitmqctl("start_app")
    # Non-durable queues are gone with the restart: the service declares them again.
    s.conn = rabbit()
    s.ch = s.conn.channel()
    deadline = time.time() + GUARD
    while True:
        try:
            if s.ch.queue_declare(f"{s.name}-in", passive=True).method.consumer_count >= 1:
                break
        except pika.exceptions.ChannelClosedByBroker:
            s.ch = s.conn.channel()  # not declared again yet
        assert time.time() < deadline, f"no consumer after the restart:\n{s.log_text()}"
        time.sleep(0.1)
    s.publish(*range(6, 11))
    assert s.bodies(s.queues["true"], 5) == [6, 7, 8, 9, 10]
    code, _ = s.stop()
    assert code == 0, s.log_text()
    assert "reconnect" in s.log_text()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_run_loses_nothing(service, sig):
    s = service()
    s.start(
        """
        import time
        from slingshot_microservice import Microservice
        def process(request, read_file, write_file, connection):
            time.sleep(0.3)
            yield (request, True)
        """,
        workers=1,
        prefetch=4,
    )
    s.publish(*range(1, 21))
    first = s.take(s.queues["true"], 1)
    code, stats = s.stop(sig)
    log = s.log_text()
    assert code == 0, log
    assert "KeyboardInterrupt" not in log and "Traceback" not in log
    assert stats is not None and stats["failed"] == 0
    done = [int(b) for b, _ in first] + [int(b) for b, _ in s.take(s.queues["true"], s.count(s.queues["true"]))]
    left = [int(b) for b, _ in s.take(f"{s.name}-in", s.count(f"{s.name}-in"))]
    # Every request is either done (once) or back in its queue; the work in
    # flight at the signal was finished, not dropped.
    assert sorted(done + left) == list(range(1, 21)), (done, left)
    assert len(done) == stats["processed"] >= 2
    assert len(left) >= 1


def test_api_types_and_options():
    import slingshot_microservice as sm
    from slingshot_microservice.typing import CaseVariable, ProcessFn, ReadFileFn, WriteFileFn

    assert sm.ReadFileFn is ReadFileFn and sm.WriteFileFn is WriteFileFn
    assert sm.ProcessFn is ProcessFn and sm.CaseVariable is CaseVariable
    assert set(CaseVariable.__args__) == {bool, int, str}
    package = os.path.dirname(sm.__file__)
    assert os.path.exists(os.path.join(package, "py.typed"))
    assert os.path.exists(os.path.join(package, "_native.pyi"))
    with pytest.raises(TypeError, match="process must be callable"):
        sm.Microservice("x", "h", None)
    with pytest.raises(ValueError, match="prefetch"):
        sm.Microservice("x", "h", lambda *a: [], prefetch=70000)
    svc = sm.Microservice("x", "h", lambda *a: [])
    assert svc.stats()["processed"] == 0 and svc.metrics_port == 0


def test_start_failure_raises_with_the_reason(tmp_path):
    program = tmp_path / "bad.py"
    program.write_text(
        textwrap.dedent(
            f"""
            from slingshot_microservice import Microservice, MicroserviceError
            svc = Microservice("no-such-service", {os.environ["CONFIG_HOST"]!r}, lambda *a: [])
            try:
                svc.start()
            except MicroserviceError as e:
                print("RAISED", e)
            """
        )
    )
    r = subprocess.run([PYTHON, str(program)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "RAISED" in r.stdout, r.stderr
    assert "no-such-service" in r.stderr and "404" in r.stderr

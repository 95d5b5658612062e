#!/usr/bin/python3
"""Helpers for scripts/services.sh (run with Debian's /usr/bin/python3, which
sees python3-pika and python3-boto3).

  probe.py free-ports N          N distinct free TCP ports on 127.0.0.1
  probe.py wait-amqp SECONDS     AMQP header + login with RABBITMQ_* from the environment
  probe.py check                 exercise every running service (env from services.sh env)
"""
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time


def free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        print(" ".join(str(s.getsockname()[1]) for s in socks))
    finally:
        for s in socks:
            s.close()


def amqp_params(password=None):
    import pika

    return pika.ConnectionParameters(
        host=os.environ["RABBITMQ_HOST"],
        port=int(os.environ["RABBITMQ_PORT"]),
        virtual_host="/",
        credentials=pika.PlainCredentials(
            os.environ["RABBITMQ_USER"],
            os.environ["RABBITMQ_PASSWORD"] if password is None else password,
        ),
        socket_timeout=3,
        blocked_connection_timeout=3,
        connection_attempts=1,
    )


def wait_amqp(seconds):
    import logging

    import pika

    logging.getLogger("pika").setLevel(logging.CRITICAL)
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            pika.BlockingConnection(amqp_params()).close()
            return 0
        except Exception as e:  # not up yet: refused, reset, or broker still booting
            last = e
            time.sleep(0.25)
    print(f"rabbitmq: no AMQP login within {seconds}s: {last!r}", file=sys.stderr)
    return 1


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, fn):
        t = time.monotonic()
        try:
            detail = fn()
            self.passed += 1
            print(f"ok    {name} ({(time.monotonic() - t) * 1000:.0f} ms){': ' + detail if detail else ''}")
        except Exception as e:
            self.failed += 1
            print(f"FAIL  {name}: {e!r}")


def expect_error(fn, what):
    try:
        fn()
    except Exception as e:
        return f"refused as expected ({type(e).__name__}: {str(e)[:100]})"
    raise AssertionError(f"{what} was accepted")


def check_rabbitmq():
    import pika

    conn = pika.BlockingConnection(amqp_params())
    try:
        ch = conn.channel()
        q = ch.queue_declare(queue="", exclusive=True).method.queue
        ch.basic_publish(exchange="", routing_key=q, body=b" 42 ")
        for _ in range(50):
            m, _, body = ch.basic_get(q, auto_ack=True)
            if m:
                assert body == b" 42 ", body
                break
            time.sleep(0.02)
        else:
            raise AssertionError("published message never arrived")
    finally:
        conn.close()
    return f"login, publish, get on {os.environ['RABBITMQ_HOST']}:{os.environ['RABBITMQ_PORT']}"


def check_rabbitmq_wrong_password():
    import logging

    import pika

    logging.getLogger("pika").setLevel(logging.CRITICAL)
    return expect_error(lambda: pika.BlockingConnection(amqp_params("wrong")).close(), "a wrong password")


def psql(sql, password=None):
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    return subprocess.run(
        ["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql],
        env=env, capture_output=True, text=True, timeout=20)


def check_postgres():
    r = psql("select 1")
    if r.returncode != 0 or r.stdout.strip() != "1":
        raise AssertionError(f"psql: rc={r.returncode} out={r.stdout!r} err={r.stderr!r}")
    return f"select 1 as {os.environ['PGUSER']} over TCP {os.environ['PGHOST']}:{os.environ['PGPORT']}"


def check_postgres_wrong_password():
    r = psql("select 1", password="wrong")
    if r.returncode == 0:
        raise AssertionError("a wrong password was accepted")
    if "password authentication failed" not in r.stderr:
        raise AssertionError(f"unexpected error: {r.stderr!r}")
    return "refused: password authentication failed"


def s3_client(secret=None, region=None):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=os.environ["S3_ENDPOINT"],
        aws_access_key_id=os.environ["S3_ACCESS_KEY"],
        aws_secret_access_key=os.environ["S3_SECRET_KEY"] if secret is None else secret,
        region_name=region or os.environ["S3_REGION"],
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      retries={"max_attempts": 1}),
    )


def s3_buckets():
    return os.environ["S3_BUCKETS"].split()


def check_s3_put_get():
    c = s3_client()
    for b in s3_buckets():
        body = os.urandom(1000) + b"ember"
        c.put_object(Bucket=b, Key="12345", Body=body)
        got = c.get_object(Bucket=b, Key="12345")["Body"].read()
        assert got == body, "object read back differs"
        c.delete_object(Bucket=b, Key="12345")
    return f"put/get/delete in {', '.join(s3_buckets())}"


def check_s3_wrong_secret():
    return expect_error(lambda: s3_client(secret="wrong").get_object(Bucket=s3_buckets()[0], Key="x"),
                        "a wrong secret")


def check_s3_wrong_region():
    return expect_error(lambda: s3_client(region="us-east-1").list_objects_v2(Bucket=s3_buckets()[0]),
                        "a wrong region")


def http_request(url, method="GET", path="/", body=None, headers=None):
    from urllib.parse import urlsplit

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def check_s3_unsigned():
    b = s3_buckets()[0]
    status, body = http_request(os.environ["S3_ENDPOINT"], "PUT", f"/{b}/unsigned", b"data")
    if status != 403 or b"AccessDenied" not in body:
        raise AssertionError(f"unsigned PUT answered {status} {body[:200]!r}")
    status, _ = http_request(os.environ["S3_ENDPOINT"], "GET", f"/{b}/unsigned")
    if status != 403:
        raise AssertionError(f"unsigned GET answered {status}")
    return "unsigned PUT and GET: 403 AccessDenied"


def check_s3_payload_hash():
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    b = s3_buckets()[0]
    url = f"{os.environ['S3_ENDPOINT']}/{b}/hash-mismatch"
    signed_body = b"what was signed"
    req = AWSRequest(method="PUT", url=url, data=signed_body,
                     headers={"x-amz-content-sha256": hashlib.sha256(signed_body).hexdigest()})
    S3SigV4Auth(Credentials(os.environ["S3_ACCESS_KEY"], os.environ["S3_SECRET_KEY"]), "s3",
                os.environ["S3_REGION"]).add_auth(req)
    headers = dict(req.headers.items())
    status, body = http_request(os.environ["S3_ENDPOINT"], "PUT", f"/{b}/hash-mismatch",
                                b"what was sent!!", headers)
    if status != 400 or b"XAmzContentSHA256Mismatch" not in body:
        raise AssertionError(f"body not matching x-amz-content-sha256 answered {status} {body[:200]!r}")
    status, _ = http_request(os.environ["S3_ENDPOINT"], "PUT", f"/{b}/hash-mismatch", signed_body, headers)
    if status != 200:
        raise AssertionError(f"the same request with the signed body answered {status}")
    s3_client().delete_object(Bucket=b, Key="hash-mismatch")
    return "mismatching body: 400 XAmzContentSHA256Mismatch; matching body: 200"


def get_json(path):
    status, body = http_request(os.environ["CONFIG_HOST"], "GET", path)
    if status != 200:
        raise AssertionError(f"GET {path}: {status}")
    return json.loads(body)


def one_value_lists(doc, fields):
    for f in fields:
        v = doc.get(f)
        if not isinstance(v, list) or len(v) != 1:
            raise AssertionError(f"field {f!r} is not a one-value list: {v!r}")
    return {f: doc[f][0] for f in fields}


def check_config():
    done = []
    if os.environ.get("RABBITMQ_PORT"):
        r = one_value_lists(get_json("/rabbitmq"), ["host", "port", "username", "pass"])
        assert r["port"] == int(os.environ["RABBITMQ_PORT"]) and r["pass"] == os.environ["PASS_RABBITMQ"]
        done.append("/rabbitmq")
    if os.environ.get("PGPORT"):
        d = one_value_lists(get_json("/db"), ["host", "port", "username", "database", "pass"])
        assert d["port"] == int(os.environ["PGPORT"]) and d["database"] == os.environ["PGDATABASE"]
        done.append("/db")
    if os.environ.get("S3_ENDPOINT"):
        o = one_value_lists(get_json("/object-storage"), ["host", "pass:access-key", "pass:secret-key"])
        assert o["host"] == os.environ["S3_ENDPOINT"]
        done.append("/object-storage")
    svc = get_json("/" + os.environ["EXAMPLE_SERVICE"])
    assert isinstance(svc["in"], str) and isinstance(svc["out"], list)
    status, bucket = http_request(os.environ["CONFIG_HOST"], "GET", f"/{os.environ['EXAMPLE_SERVICE']}/in")
    assert status == 200 and bucket.strip(), (status, bucket)
    status, _ = http_request(os.environ["CONFIG_HOST"], "GET", "/no-such-service")
    assert status == 404, status
    done += [f"/{os.environ['EXAMPLE_SERVICE']}", f"/{os.environ['EXAMPLE_SERVICE']}/in", "404"]
    return ", ".join(done)


def check_pass():
    names = []
    for var, secret_var in (("PASS_RABBITMQ", "RABBITMQ_PASSWORD"), ("PASS_DB", "PGPASSWORD"),
                            ("PASS_S3_ACCESS_KEY", "S3_ACCESS_KEY"), ("PASS_S3_SECRET_KEY", "S3_SECRET_KEY")):
        if not os.environ.get(secret_var):
            continue
        r = subprocess.run(["pass", "show", os.environ[var]], capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            raise AssertionError(f"pass show {os.environ[var]}: {r.stderr.strip()}")
        if r.stdout.splitlines()[0].strip() != os.environ[secret_var]:
            raise AssertionError(f"pass show {os.environ[var]} differs from ${secret_var}")
        names.append(os.environ[var])
    return "pass show " + ", ".join(names)


def check():
    c = Checker()
    env = os.environ
    if env.get("RABBITMQ_PORT"):
        c.run("rabbitmq: pika login/publish/get", check_rabbitmq)
        c.run("rabbitmq: wrong password refused", check_rabbitmq_wrong_password)
    if env.get("PGPORT"):
        c.run("postgres: psql select 1", check_postgres)
        c.run("postgres: wrong password refused", check_postgres_wrong_password)
    if env.get("S3_ENDPOINT"):
        c.run("s3: boto3 put/get (path, s3v4)", check_s3_put_get)
        c.run("s3: wrong secret refused", check_s3_wrong_secret)
        c.run("s3: wrong region refused", check_s3_wrong_region)
        c.run("s3: unsigned refused", check_s3_unsigned)
        c.run("s3: x-amz-content-sha256 checked", check_s3_payload_hash)
    if env.get("CONFIG_HOST"):
        c.run("config: documents", check_config)
    if env.get("PASSWORD_STORE_DIR"):
        c.run("pass: show secrets", check_pass)
    print(f"services check: {c.passed} passed, {c.failed} failed")
    return 0 if c.failed == 0 and c.passed > 0 else 1


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = sys.argv[1]
    if cmd == "free-ports":
        free_ports(int(sys.argv[2]))
        return 0
    if cmd == "wait-amqp":
        return wait_amqp(float(sys.argv[2]))
    if cmd == "check":
        return check()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

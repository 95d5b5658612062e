"""Spark, the on-disk per-site KV store of Wasm flares, through real HTTP
requests to tests/edge/wasm/spark.wat: get/set/delete/list with the
flaron/v1 payloads and statuses, TTL expiry, the writes_spark_kv capability,
site isolation, limits (key, value, quota), and persistence across a
restart of `ember serve`.
"""

import json
import os
import struct
import subprocess
import time

import pytest

import edge
from edge import http_request

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wasm")


@pytest.fixture(scope="module")
def module_path(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("spark") / "spark.wasm")
    subprocess.run(["wat2wasm", os.path.join(HERE, "spark.wat"), "-o", out], check=True,
                   capture_output=True)
    return out


@pytest.fixture(scope="module")
def spark_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("spark-store"))


def start(start_server, module_path, spark_dir):
    routes = [("/rw", module_path, "capabilities: [writes_spark_kv]"),
              ("/ro", module_path),
              ("/rw", module_path, 'host: other.test, capabilities: [writes_spark_kv]')]
    extra = ("spark:\n  dir: %s\n  max_value: 1k\n  max_keys_per_site: 5\n" % spark_dir)
    return start_server(tls=False, wasm_routes=routes, extra_config=extra)


@pytest.fixture(scope="module")
def server(start_server, module_path, spark_dir):
    return start(start_server, module_path, spark_dir)


def op(server, what, body=b"", path="/rw", host="t", **headers):
    headers = {"X-Op": what, **{k.replace("_", "-"): v for k, v in headers.items()}}
    return http_request(server, path, body=body, headers=headers, host=host)


def set_(server, key, value, ttl=None, **kw):
    h = {"x_key": key}
    if ttl is not None:
        h["x_ttl"] = str(ttl)
    return op(server, "set", value, **h, **kw)[0] - 200  # the Spark status


def get(server, key, **kw):
    status, _, payload = op(server, "get", key.encode(), **kw)
    if status == 404:
        return None
    assert status == 200 and len(payload) >= 4
    return struct.unpack("<I", payload[:4])[0], payload[4:]


def clear(server, **kw):
    for key in json.loads(op(server, "list", **kw)[2] or b"[]"):
        op(server, "delete", key.encode(), **kw)


def test_set_get_delete_and_list(server):
    clear(server)
    assert set_(server, "colour", b"blue") == 0
    assert get(server, "colour") == (0, b"blue")  # TTL 0: no expiry
    assert set_(server, "colour", b"green") == 0  # overwrite
    assert set_(server, "binary", bytes(range(256)) * 3) == 0
    assert get(server, "colour") == (0, b"green")
    assert get(server, "binary")[1] == bytes(range(256)) * 3
    assert json.loads(op(server, "list")[2]) == ["binary", "colour"]
    op(server, "delete", b"colour")
    assert get(server, "colour") is None
    assert json.loads(op(server, "list")[2]) == ["binary"]
    assert get(server, "never-set") is None


def test_values_expire_after_their_ttl(server):
    clear(server)
    assert set_(server, "short", b"soon gone", ttl=2) == 0
    ttl, value = get(server, "short")
    assert value == b"soon gone" and 1 <= ttl <= 2
    time.sleep(2.2)
    assert get(server, "short") is None
    assert "short" not in json.loads(op(server, "list")[2])


def test_writes_need_the_capability(server):
    clear(server)
    assert set_(server, "k", b"v") == 0
    assert set_(server, "k", b"other", path="/ro") == 9  # no write capability
    op(server, "delete", b"k", path="/ro")
    assert get(server, "k", path="/ro") == (0, b"v")  # reads are allowed


def test_sites_do_not_see_each_other(server):
    clear(server)
    clear(server, host="other.test")
    assert set_(server, "shared-name", b"site one") == 0
    assert get(server, "shared-name", host="other.test") is None
    assert set_(server, "shared-name", b"site two", host="other.test") == 0
    assert get(server, "shared-name") == (0, b"site one")
    assert get(server, "shared-name", host="other.test") == (0, b"site two")


def test_limits_answer_their_statuses(server):
    clear(server)
    assert set_(server, "", b"v") == 8  # bad key
    assert set_(server, "k" * 513, b"v") == 8
    assert set_(server, "big", b"x" * 1025) == 2  # too large (max_value 1k)
    assert set_(server, "k", b"v", ttl=4294967295) == 1  # a negative TTL is invalid
    for i in range(4):
        assert set_(server, "q%d" % i, b"v", ttl=(1 if i == 0 else None)) == 0
    assert set_(server, "q4", b"v") == 0  # the fifth key
    assert set_(server, "q5", b"v") == 4  # quota: five keys per site
    assert set_(server, "q4", b"overwrite") == 0  # an existing key still takes writes
    time.sleep(1.2)  # q0 expires: its room comes back
    assert set_(server, "q5", b"v") == 0
    assert op(server, "pull")[0] == 205  # one node: nothing to pull from (-5)


def test_keys_longer_than_lmdb_takes_are_bad_keys(server):
    # LMDB keys hold at most 511 bytes and the record key is site NUL key:
    # on site "t" a key may have 509 bytes.
    clear(server)
    assert set_(server, "k" * 509, b"v") == 0
    assert get(server, "k" * 509) == (0, b"v")
    op(server, "delete", b"k" * 509)
    assert get(server, "k" * 509) is None
    for n in (510, 511, 512):
        assert set_(server, "k" * n, b"v") == 8, n  # bad key, not internal error (6)
        assert get(server, "k" * n) is None
    assert op(server, "list")[2] in (b"", b"[]")


def raw_set(server, key, value, path="/rw"):
    """spark_set with a key of raw bytes (a header value may carry obs-text)."""
    raw = (b"POST %s HTTP/1.1\r\nHost: t\r\nX-Op: set\r\nX-Key: %s\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (path.encode(), key, len(value), value))
    resp, reader = edge.http1_request(server.port, raw)
    reader.sock.close()
    return resp.status - 200


def test_a_key_that_is_not_utf8_is_listed_with_replacement_characters(server):
    clear(server)
    assert raw_set(server, b"bad\xff", b"v") == 0
    assert set_(server, "good", b"v") == 0
    status, _, payload = op(server, "list")
    assert status == 200, payload
    assert json.loads(payload) == ["bad\ufffd", "good"]
    op(server, "delete", b"bad\xff")
    assert json.loads(op(server, "list")[2]) == ["good"]


# spark_pull with one of its (ptr, len) pairs past the end of memory: the
# request body picks which ("origin" or "keys").
PULL_OOB_WAT = """
(module
  (import "flaron/v1" "req_body" (func $body (result i64)))
  (import "flaron/v1" "spark_pull" (func $pull (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 1024))
  (data (i32.const 16) "[]")
  (func (export "alloc") (param $n i32) (result i32)
    (global.get $bump)
    (global.set $bump (i32.add (global.get $bump) (local.get $n))))
  (func (export "handle_request") (result i64)
    (if (i32.eq (i32.wrap_i64 (call $body)) (i32.const 6))  ;; "origin"
      (then (drop (call $pull (i32.const 0x7fff0000) (i32.const 8) (i32.const 16) (i32.const 2))))
      (else (drop (call $pull (i32.const 16) (i32.const 2) (i32.const 65530) (i32.const 16)))))
    (i64.const 0x100000000)))
"""


@pytest.mark.parametrize("which", ["origin", "keys"])
def test_spark_pull_traps_on_a_pointer_past_memory(start_server, tmp_path_factory, which):
    d = tmp_path_factory.mktemp("pull-oob")
    (d / "pull.wat").write_text(PULL_OOB_WAT)
    subprocess.run(["wat2wasm", str(d / "pull.wat"), "-o", str(d / "pull.wasm")], check=True,
                   capture_output=True)
    server = start_server(tls=False, wasm_routes=[("/pull", str(d / "pull.wasm"))],
                          extra_config="spark:\n  dir: %s\n" % (d / "store"))
    assert http_request(server, "/pull", body=which.encode())[0] == 500
    assert "past the end of memory" in server.stderr()


def test_values_survive_a_restart(start_server, module_path, tmp_path_factory):
    store = str(tmp_path_factory.mktemp("spark-restart"))
    first = start(start_server, module_path, store)
    assert set_(first, "kept", b"across restarts") == 0
    assert set_(first, "brief", b"x", ttl=1) == 0
    assert edge.stop_and_check(first) is None
    first.stopped_by_test = True
    time.sleep(1.1)
    second = start(start_server, module_path, store)
    assert get(second, "kept") == (0, b"across restarts")
    assert get(second, "brief") is None
    assert json.loads(op(second, "list")[2]) == ["kept"]

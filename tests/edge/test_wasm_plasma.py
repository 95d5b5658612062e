"""Plasma, the CRDT store of Wasm flares, through real HTTP requests to
tests/edge/wasm/plasma.wat: registers (set, get, delete), counters
(increment, decrement, the 8-byte answer), a key changing kind, list, the
writes_plasma_kv capability, limits, and persistence across a restart. The
CRDT merge rules themselves have unit tests (tests/unit/wasm).
"""

import json
import os
import struct
import subprocess

import pytest

import edge
from edge import http_request

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wasm")


@pytest.fixture(scope="module")
def module_path(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("plasma") / "plasma.wasm")
    subprocess.run(["wat2wasm", os.path.join(HERE, "plasma.wat"), "-o", out], check=True,
                   capture_output=True)
    return out


def start(start_server, module_path, store):
    routes = [("/rw", module_path, "capabilities: [writes_plasma_kv]"), ("/ro", module_path)]
    extra = "spark: {dir: %s}\nplasma: {max_value: 1k, writes_per_invocation: 5}\n" % store
    return start_server(tls=False, wasm_routes=routes, extra_config=extra)


@pytest.fixture(scope="module")
def server(start_server, module_path, tmp_path_factory):
    return start(start_server, module_path, str(tmp_path_factory.mktemp("store")))


def op(server, what, body=b"", path="/rw", key=None):
    headers = {"X-Op": what}
    if key is not None:
        headers["X-Key"] = key
    return http_request(server, path, body=body, headers=headers)


def set_(server, key, value, path="/rw"):
    return op(server, "set", value, path, key)[0] - 200


def get(server, key, path="/rw"):
    status, _, payload = op(server, "get", key.encode(), path)
    return None if status == 404 else payload


def delete(server, key, path="/rw"):
    return op(server, "delete", key.encode(), path)[0] - 200


def add(server, key, amount, path="/rw"):
    status, _, payload = op(server, "inc" if amount >= 0 else "dec", b"%d" % abs(amount), path,
                            key)
    if status == 404:
        return None
    assert len(payload) == 8
    return struct.unpack("<q", payload)[0]


def test_registers(server):
    assert set_(server, "greeting", b"hello") == 0
    assert get(server, "greeting") == b"hello"
    assert set_(server, "greeting", b"hi") == 0
    assert get(server, "greeting") == b"hi"
    assert delete(server, "greeting") == 0
    assert get(server, "greeting") is None
    assert get(server, "never-set") is None


def test_counters(server):
    assert add(server, "visits", 1) == 1
    assert add(server, "visits", 41) == 42
    assert add(server, "visits", -50) == -8
    assert get(server, "visits") == b"-8"  # plasma_get on a counter: its decimal value
    assert add(server, "visits", 9223372036854775807) == 9223372036854775799
    assert add(server, "visits", 10) is None  # would pass int64: refused
    assert get(server, "visits") == b"9223372036854775799"


def test_a_key_changes_kind_with_the_later_write(server):
    assert add(server, "flip", 5) == 5
    assert set_(server, "flip", b"now a register") == 0
    assert get(server, "flip") == b"now a register"
    assert add(server, "flip", 2) == 2  # a fresh counter over the register
    assert delete(server, "flip") == 0
    assert get(server, "flip") is None
    assert add(server, "flip", 3) == 3  # and over the tombstone


def test_list_skips_deleted_keys(server):
    for k in ("l-a", "l-b", "l-c"):
        assert set_(server, k, b"v") == 0
    assert delete(server, "l-b") == 0
    keys = json.loads(op(server, "list")[2])
    assert "l-a" in keys and "l-c" in keys and "l-b" not in keys


def test_capability_and_limits(server):
    assert set_(server, "cap", b"v") == 0
    assert set_(server, "cap", b"other", path="/ro") == 5  # no write capability
    assert delete(server, "cap", path="/ro") == 5
    assert add(server, "cap-counter", 1, path="/ro") is None
    assert get(server, "cap", path="/ro") == b"v"  # reads are open
    assert set_(server, "", b"v") == 4  # bad key
    assert set_(server, "k" * 513, b"v") == 4
    assert set_(server, "big", b"x" * 1025) == 3  # too large (max_value 1k)


def test_keys_longer_than_lmdb_takes_are_bad_keys(server):
    # LMDB keys hold at most 511 bytes and the record key is site NUL key:
    # on site "t" a key may have 509 bytes.
    assert set_(server, "k" * 509, b"v") == 0
    assert get(server, "k" * 509) == b"v"
    assert delete(server, "k" * 509) == 0
    assert add(server, "c" * 509, 1) == 1
    for n in (510, 511, 512):
        assert set_(server, "k" * n, b"v") == 4, n  # bad key, not internal error (6)
        assert delete(server, "k" * n) == 4, n
        assert add(server, "c" * n, 1) is None
        assert get(server, "k" * n) is None


def raw_set(server, key, value, path="/rw"):
    """plasma_set with a key of raw bytes (a header value may carry obs-text)."""
    raw = (b"POST %s HTTP/1.1\r\nHost: t\r\nX-Op: set\r\nX-Key: %s\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (path.encode(), key, len(value), value))
    resp, reader = edge.http1_request(server.port, raw)
    reader.sock.close()
    return resp.status - 200


def test_a_key_that_is_not_utf8_is_listed_with_replacement_characters(server):
    assert raw_set(server, b"raw\xfe", b"v") == 0
    status, _, payload = op(server, "list")
    assert status == 200, payload
    assert "raw\ufffd" in json.loads(payload)
    assert op(server, "delete", b"raw\xfe")[0] == 200
    assert "raw\ufffd" not in json.loads(op(server, "list")[2])


def test_state_survives_a_restart(start_server, module_path, tmp_path_factory):
    store = str(tmp_path_factory.mktemp("plasma-restart"))
    first = start(start_server, module_path, store)
    assert set_(first, "kept", b"register") == 0
    assert add(first, "count", 7) == 7
    edge.stop_and_check(first)
    first.stopped_by_test = True
    second = start(start_server, module_path, store)
    assert get(second, "kept") == b"register"
    assert add(second, "count", 1) == 8

"""WebAssembly flares (flaron/v1) under `ember serve`: hand-written .wat
modules (compiled with Debian's wat2wasm) reached with real HTTP requests.
Covers the request/response imports and the alloc round trip, the edge ops
that are implemented (encoding, hashing, IDs, time, random bytes, logging),
hostile modules (each answered 500 while the server keeps serving, on both
loops at once), deploy-time validation with messages naming the offending
import or export, the compiled-module cache, and 100,000 trapping
invocations (100,000 instance lifetimes) with flat memory.
"""

import base64
import concurrent.futures
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse

import pytest

import edge
from edge import http_request

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wasm")
MAX_MEMORY_PAGES = 16  # the config's wasm.max_memory below (1 MiB)

NORMAL_ALLOC = ("(global.get $bump) "
                "(global.set $bump (i32.add (global.get $bump) (local.get $n)))")
HOSTILE = {
    "unreachable": ("unreachable", NORMAL_ALLOC),
    "oob-store": ("(i32.store (i32.const 0x7ffffff0) (i32.const 1))", NORMAL_ALLOC),
    "oob-pointer": ("(call $body_set (i32.const 0x7fff0000) (i32.const 4096))", NORMAL_ALLOC),
    "bad-alloc": ("(drop (call $method))", "(i32.const 0x7ffffff0)"),
    "alloc-traps": ("(drop (call $method))", "unreachable"),
    "recursion": ("(drop (call $recurse (i32.const 0)))", NORMAL_ALLOC),
    "spin": ("(loop $forever (br $forever))", NORMAL_ALLOC),
    "bad-action": ("(return (i64.const 0x700000000))", NORMAL_ALLOC),
    "bad-status": ("(call $status (i32.const 42))", NORMAL_ALLOC),
}
# memory.grow past the cap fails (-1) and up to it succeeds; no trap.
GROW = ("(if (i32.ne (memory.grow (i32.const %d)) (i32.const -1)) (then unreachable)) "
        "(if (i32.eq (memory.grow (i32.const %d)) (i32.const -1)) (then unreachable)) "
        "(call $status (i32.const 200)) (call $body_set (i32.const 16) (i32.const 19))"
        % (MAX_MEMORY_PAGES - 2 + 1, MAX_MEMORY_PAGES - 2))

# One module per (i32 i32) -> i64 edge op: the request body is the argument,
# the result is the response body (404 when the host returns nothing).
OP_TEMPLATE = """
(module
  (import "flaron/v1" "req_body" (func $body (result i64)))
  (import "flaron/v1" "resp_set_status" (func $status (param i32)))
  (import "flaron/v1" "resp_body_set" (func $body_set (param i32 i32)))
  (import "flaron/v1" "%s" (func $op (param i32 i32) (result i64)))
  (memory (export "memory") 6)
  (global $bump (mut i32) (i32.const 65536))
  (func (export "alloc") (param $n i32) (result i32)
    (global.get $bump)
    (global.set $bump (i32.add (global.get $bump) (local.get $n))))
  (func (export "handle_request") (result i64)
    (local $in i64) (local $out i64)
    (global.set $bump (i32.const 65536))
    (local.set $in (call $body))
    (local.set $out (call $op (i32.wrap_i64 (i64.shr_u (local.get $in) (i64.const 32)))
                              (i32.wrap_i64 (local.get $in))))
    (if (i64.eqz (local.get $out)) (then (call $status (i32.const 404))))
    (call $body_set (i32.wrap_i64 (i64.shr_u (local.get $out) (i64.const 32)))
                    (i32.wrap_i64 (local.get $out)))
    (i64.const 0x100000000)))
"""
OPS = ["encoding_base64_encode", "encoding_base64_decode", "encoding_hex_encode",
       "encoding_hex_decode", "encoding_url_encode", "encoding_url_decode", "crypto_hash",
       "id_uuid", "timestamp"]
# Ops keyed by a secret: their routes allow three of the four secrets below.
KEYED_OPS = ["secret_get", "crypto_hmac", "crypto_sign_jwt", "crypto_encrypt_aes",
             "crypto_decrypt_aes"]
SECRETS = {"jwt-key": "s3cret-jwt", "from-env": "value from the environment",
           "from-file": "value from a file", "hidden": "never allowed"}


# Sets the fields the server owns (framing, date, connection) to wrong values
# (its strings start at 256: a guest pointer 0 reads as null);
# @BODY@ is the body it answers with ("hello", or none at all).
FRAMING_WAT = r"""
(module
  (import "flaron/v1" "resp_header_set" (func $set (param i32 i32 i32 i32)))
  (import "flaron/v1" "resp_body_set" (func $body_set (param i32 i32)))
  (memory (export "memory") 2)
  (global $bump (mut i32) (i32.const 65536))
  (data (i32.const 256) "content-length")
  (data (i32.const 272) "@LENGTH@")
  (data (i32.const 288) "date")
  (data (i32.const 304) "Mon, 01 Jan 1990 00:00:00 GMT")
  (data (i32.const 352) "connection")
  (data (i32.const 368) "close")
  (data (i32.const 384) "transfer-encoding")
  (data (i32.const 416) "chunked")
  (data (i32.const 432) "x-kept")
  (data (i32.const 448) "yes")
  (data (i32.const 464) "hello")
  (func (export "alloc") (param $n i32) (result i32)
    (global.get $bump)
    (global.set $bump (i32.add (global.get $bump) (local.get $n))))
  (func (export "handle_request") (result i64)
    (call $set (i32.const 256) (i32.const 14) (i32.const 272) (i32.const @LENGTH_SIZE@))
    (call $set (i32.const 288) (i32.const 4) (i32.const 304) (i32.const 29))
    (call $set (i32.const 352) (i32.const 10) (i32.const 368) (i32.const 5))
    (call $set (i32.const 384) (i32.const 17) (i32.const 416) (i32.const 7))
    (call $set (i32.const 432) (i32.const 6) (i32.const 448) (i32.const 3))
    @BODY@
    (i64.const 0x100000000)))
"""


# Answers with an interim status (the flare's mistake) and a body.
INTERIM_WAT = r"""
(module
  (import "flaron/v1" "resp_set_status" (func $status (param i32)))
  (import "flaron/v1" "resp_body_set" (func $body_set (param i32 i32)))
  (memory (export "memory") 2)
  (global $bump (mut i32) (i32.const 65536))
  (data (i32.const 256) "switching?")
  (func (export "alloc") (param $n i32) (result i32)
    (global.get $bump)
    (global.set $bump (i32.add (global.get $bump) (local.get $n))))
  (func (export "handle_request") (result i64)
    (call $status (i32.const 101))
    (call $body_set (i32.const 256) (i32.const 10))
    (i64.const 0x100000000)))
"""


# Response fields HTTP/1.1 cannot carry: a name that is not a token, or a
# value with a control byte. Each is dropped; x-kept still goes out.
BAD_FIELDS = [(b"x(y", b"v"), (b"a\x01b", b"v"), (b"a\x7fb", b"v"), (b"a\xffb", b"v"),
              (b"x-ctl", b"a\x01b"), (b"x-del", b"a\x7fb"), (b"x-kept", b"yes")]


def bad_fields_wat():
    data, calls = [], []
    for i, (name, value) in enumerate(BAD_FIELDS):
        at = 256 + 32 * i
        for off, text in ((0, name), (16, value)):
            data.append('(data (i32.const %d) "%s")'
                        % (at + off, "".join("\\%02x" % c for c in text)))
        calls.append("(call $set (i32.const %d) (i32.const %d) (i32.const %d) (i32.const %d))"
                     % (at, len(name), at + 16, len(value)))
    return """
(module
  (import "flaron/v1" "resp_header_set" (func $set (param i32 i32 i32 i32)))
  (import "flaron/v1" "resp_body_set" (func $body_set (param i32 i32)))
  (memory (export "memory") 2)
  (global $bump (mut i32) (i32.const 65536))
  %s
  (data (i32.const 1024) "hello")
  (func (export "alloc") (param $n i32) (result i32)
    (global.get $bump)
    (global.set $bump (i32.add (global.get $bump) (local.get $n))))
  (func (export "handle_request") (result i64)
    %s
    (call $body_set (i32.const 1024) (i32.const 5))
    (i64.const 0x100000000)))
""" % ("\n  ".join(data), "\n    ".join(calls))


# Answers with the value of the request field named by the request's x-n.
REFLECT_WAT = r"""
(module
  (import "flaron/v1" "req_header_get" (func $header_get (param i32 i32) (result i64)))
  (import "flaron/v1" "resp_body_set" (func $body_set (param i32 i32)))
  (memory (export "memory") 2)
  (global $bump (mut i32) (i32.const 65536))
  (data (i32.const 256) "x-n")
  (func (export "alloc") (param $n i32) (result i32)
    (global.get $bump)
    (global.set $bump (i32.add (global.get $bump) (local.get $n))))
  (func $ptr (param i64) (result i32) (i32.wrap_i64 (i64.shr_u (local.get 0) (i64.const 32))))
  (func $len (param i64) (result i32) (i32.wrap_i64 (local.get 0)))
  (func (export "handle_request") (result i64)
    (local $n i64) (local $v i64)
    (local.set $n (call $header_get (i32.const 256) (i32.const 3)))
    (local.set $v (call $header_get (call $ptr (local.get $n)) (call $len (local.get $n))))
    (call $body_set (call $ptr (local.get $v)) (call $len (local.get $v)))
    (i64.const 0x100000000)))
"""


def framing_wat(length, body):
    call = "(call $body_set (i32.const 464) (i32.const 5))" if body else ""
    return (FRAMING_WAT.replace("@LENGTH@", length).replace("@LENGTH_SIZE@", str(len(length)))
            .replace("@BODY@", call))


def wat2wasm(wat_text, out_path):
    src = out_path[:-5] + ".wat"
    with open(src, "w") as f:
        f.write(wat_text)
    subprocess.run(["wat2wasm", src, "-o", out_path], check=True, capture_output=True)
    return out_path


def hostile_wat(body, alloc):
    with open(os.path.join(HERE, "hostile.wat.in")) as f:
        return f.read().replace("@BODY@", body).replace("@ALLOC@", alloc).replace(
            "@WHAT@", "something hostile")


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("wasm"))
    out = {"request": wat2wasm(open(os.path.join(HERE, "request.wat")).read(),
                               os.path.join(d, "request.wasm"))}
    for name, (body, alloc) in HOSTILE.items():
        out[name] = wat2wasm(hostile_wat(body, alloc), os.path.join(d, name + ".wasm"))
    out["grow"] = wat2wasm(hostile_wat(GROW, NORMAL_ALLOC), os.path.join(d, "grow.wasm"))
    out["framing"] = wat2wasm(framing_wat("3", True), os.path.join(d, "framing.wasm"))
    out["interim"] = wat2wasm(INTERIM_WAT, os.path.join(d, "interim.wasm"))
    out["reflect"] = wat2wasm(REFLECT_WAT, os.path.join(d, "reflect.wasm"))
    out["bad-fields"] = wat2wasm(bad_fields_wat(), os.path.join(d, "bad-fields.wasm"))
    # No body, a Content-Length for HEAD to announce.
    out["announce"] = wat2wasm(framing_wat("42", False), os.path.join(d, "announce.wasm"))
    for op in OPS + KEYED_OPS:
        out[op] = wat2wasm(OP_TEMPLATE % op, os.path.join(d, op + ".wasm"))
    return out


@pytest.fixture(scope="module")
def server(start_server, modules, tmp_path_factory):
    allowed = "allowed_secrets: [jwt-key, from-env, from-file]"
    routes = [("/w/" + name, path, allowed) if name in KEYED_OPS else ("/w/" + name, path)
              for name, path in modules.items()]
    # The same module without any secret allowed.
    routes.append(("/w/secret_get-denied", modules["secret_get"]))
    secret_file = tmp_path_factory.mktemp("secrets") / "from-file"
    secret_file.write_text(SECRETS["from-file"] + "\n")
    os.environ["EMBER_TEST_SECRET"] = SECRETS["from-env"]
    secrets = ('secrets:\n  "*":\n    jwt-key: "%s"\n    from-env: {env: EMBER_TEST_SECRET}\n'
               '    from-file: {file: "%s"}\n    hidden: "%s"\n'
               % (SECRETS["jwt-key"], secret_file, SECRETS["hidden"]))
    secrets += "spark:\n  dir: %s\n" % tmp_path_factory.mktemp("spark")
    return start_server(tls=False, wasm_routes=routes, extra_config=secrets, wasm={
        "max_memory": "%d" % (MAX_MEMORY_PAGES * 65536), "fuel": 2000000,
        "cache_dir": str(tmp_path_factory.mktemp("wasm-cache"))})


def test_a_flare_reads_the_request_and_builds_the_response(server):
    body = bytes(range(256)) * 40
    status, h, payload = http_request(server, "/w/request/x?q=1", body=body,
                                 headers={"X-Test": "forty two"})
    assert status == 201
    assert h["x-method"] == "POST"
    assert h["x-url"] == "/w/request/x?q=1"
    assert h["x-header"] == "forty two"
    assert payload == body
    status, h, payload = http_request(server, "/w/request")
    assert (status, h["x-method"], h["x-header"], payload) == (201, "GET", "", b"")


def test_the_server_frames_the_answer_whatever_fields_the_flare_sets(server):
    # HTTP/1.1: one Content-Length (the body's), one fresh Date, no
    # Transfer-Encoding; the flare's "connection: close" does not end the
    # connection, so a second request on it is answered.
    raw = edge.get("/w/framing")
    resp, reader = edge.http1_request(server.port, raw + raw)
    second = edge.read_response(reader)
    reader.sock.close()
    for r in (resp, second):
        assert (r.status, r.body) == (200, b"hello")
        assert r.header_all("content-length") == ["5"]
        assert len(r.header_all("date")) == 1 and "1990" not in r.header("date")
        assert r.header_all("transfer-encoding") == []
        assert r.header_all("connection") == []
        assert r.header("x-kept") == "yes"
    # HTTP/2: the same, and a date as RFC 9110 6.6.1 asks of every answer.
    c = edge.H2(server.port)
    try:
        c.headers(1, edge.request_headers("/w/framing"))
        hdrs, body, rst = c.response(1)
    finally:
        c.close()
    names = [k for k, _ in hdrs]
    assert (edge.h2_status(hdrs), body, rst) == (200, b"hello", None)
    assert dict(hdrs)["content-length"] == "5" and names.count("content-length") == 1
    assert names.count("date") == 1 and "1990" not in dict(hdrs)["date"]
    assert "connection" not in names and "transfer-encoding" not in names
    assert dict(hdrs)["x-kept"] == "yes"


def test_fields_http1_cannot_carry_are_dropped_naming_them(server):
    resp, reader = edge.http1_request(server.port, edge.get("/w/bad-fields"))
    reader.sock.close()
    assert (resp.status, resp.body) == (200, b"hello")
    assert resp.header("x-kept") == "yes"
    sent = {n for n, _ in resp.headers}
    assert not sent & {"x(y", "a\x01b", "a\x7fb", "a\xffb", "x-ctl", "x-del"}, resp.headers
    c = edge.H2(server.port)
    try:
        c.headers(1, edge.request_headers("/w/bad-fields"))
        hdrs, body, rst = c.response(1)
    finally:
        c.close()
    assert (edge.h2_status(hdrs), body, rst) == (200, b"hello", None)
    assert dict(hdrs)["x-kept"] == "yes" and "x-ctl" not in dict(hdrs)
    log = server.stderr()
    for name in ("x(y", "x-ctl", "x-del"):
        assert re.search(r"malformed response header.*" + re.escape(name), log), name


def big_frame_wat(depth, beam):
    """Recurses `depth` deep through a function that keeps 1500 i64 locals
    live across its call: about 12 KiB of native stack a frame, so 1500
    frames (within the call-depth limit of 2000) need ~18 MiB."""
    n = 1500
    locs = " ".join("(local $l%d i64)" % i for i in range(n))
    sets = "\n".join("(local.set $l%d (i64.load (i32.const %d)))" % (i, 1024 + 8 * i)
                      for i in range(n))
    sums = "\n".join("(local.set $acc (i64.add (local.get $acc) (local.get $l%d)))" % i
                      for i in range(n))
    # Importing beam_fetch on a route granting beam runs the flare on a fiber.
    beam_import = ('(import "flaron/v1" "beam_fetch" (func $fetch (param i32 i32 i32 i32) '
                   '(result i64)))' if beam else "")
    return """(module
  %s
  (import "flaron/v1" "resp_body_set" (func $body_set (param i32 i32)))
  (memory (export "memory") 2)
  (global $bump (mut i32) (i32.const 65536))
  (data (i32.const 256) "done")
  (func (export "alloc") (param $n i32) (result i32)
    (global.get $bump)
    (global.set $bump (i32.add (global.get $bump) (local.get $n))))
  (func $big (param $d i32) (result i64) (local $acc i64) %s
    %s
    (if (local.get $d) (then (local.set $acc (call $big (i32.sub (local.get $d) (i32.const 1))))))
    %s
    (i64.store (i32.const 1024) (local.get $acc))
    (local.get $acc))
  (func (export "handle_request") (result i64)
    (drop (call $big (i32.const %d)))
    (call $body_set (i32.const 256) (i32.const 4))
    (i64.const 0x100000000)))
""" % (beam_import, locs, sets, sums, depth)


def test_guest_frames_too_large_for_the_stack_trap_and_the_server_goes_on(start_server,
                                                                           tmp_path_factory):
    # The call-depth limit alone let such a guest overflow the native stack
    # (the whole server died of SIGSEGV); now it traps like deep recursion,
    # on a loop thread and on a fiber (a route with beam).
    d = str(tmp_path_factory.mktemp("bigframe"))
    routes = []
    for name, depth, beam in [("shallow", 10, False), ("deep", 1500, False),
                              ("fiber-shallow", 10, True), ("fiber-deep", 1500, True)]:
        path = wat2wasm(big_frame_wat(depth, beam), os.path.join(d, name + ".wasm"))
        routes.append(("/big/" + name, path, "capabilities: [beam]") if beam
                      else ("/big/" + name, path))
    srv = start_server(tls=False, loops=1, wasm_routes=routes,
                       extra_config="beam: {allow: ['127.0.0.1:1']}\n",
                       wasm={"cache_dir": str(tmp_path_factory.mktemp("bigframe-cache"))})
    for name, want in [("shallow", 200), ("deep", 500), ("fiber-shallow", 200),
                       ("fiber-deep", 500), ("shallow", 200)]:
        status, _, body = http_request(srv, "/big/" + name)
        assert status == want, (name, status, body)
        if want == 500:
            assert b"trapped" in body or b"failed" in body, body
        edge.assert_serves(srv)
    assert "call stack exhausted" in srv.stderr()


@pytest.mark.parametrize("cookies, seen", [
    (["a=1", "b=2", "c=3"], "a=1; b=2; c=3"),  # RFC 9113 8.2.3: joined with "; "
    (["", "b=2"], "; b=2"),
    (["only=1"], "only=1"),
])
def test_cookies_split_over_http2_fields_reach_the_flare_as_one(server, cookies, seen):
    c = edge.H2(server.port)
    try:
        c.headers(1, edge.request_headers("/w/reflect", extra=[("x-n", "cookie")] +
                                          [("cookie", v) for v in cookies]))
        hdrs, body, rst = c.response(1)
    finally:
        c.close()
    assert (edge.h2_status(hdrs), body.decode(), rst) == (200, seen, None)


def test_an_interim_status_from_a_flare_is_answered_500(server):
    # HTTP/1.1: a 101 would switch the client's protocol and leave the request
    # unanswered; the next request on the connection still gets its own answer.
    resp, reader = edge.http1_request(server.port, edge.get("/w/interim") + edge.get("/"))
    after = edge.read_response(reader)
    reader.sock.close()
    assert resp.status == 500 and b"interim status 101" in resp.body
    assert (after.status, after.body) == (200, b"hello")
    c = edge.H2(server.port)
    try:
        c.headers(1, edge.request_headers("/w/interim"))
        hdrs, body, rst = c.response(1)
    finally:
        c.close()
    assert (edge.h2_status(hdrs), rst) == (500, None) and b"interim status 101" in body


@pytest.mark.parametrize("path, get_length, head_length", [
    ("/w/framing", "5", "5"),   # a body: its length, whatever the flare's field says
    ("/w/announce", "0", "42"),  # no body: HEAD announces the flare's length
])
def test_head_announces_the_length_a_get_would_get(server, path, get_length, head_length):
    head = ("HEAD %s HTTP/1.1\r\nHost: t\r\n\r\n" % path).encode()
    resp, reader = edge.http1_request(server.port, head + edge.get(path), head=True)
    get = edge.read_response(reader)
    reader.sock.close()
    assert (resp.status, resp.header_all("content-length"), resp.body) == (200, [head_length], b"")
    assert (get.status, get.header_all("content-length")) == (200, [get_length])
    c = edge.H2(server.port)
    try:
        c.headers(1, edge.request_headers(path, method="HEAD"))
        hdrs, body, rst = c.response(1)
    finally:
        c.close()
    assert (edge.h2_status(hdrs), body, rst) == (200, b"", None)
    assert [v for k, v in hdrs if k == "content-length"] == [head_length]


@pytest.mark.parametrize("op, arg, check", [
    ("encoding_base64_encode", b"hello wasm", lambda r: r == base64.b64encode(b"hello wasm")),
    ("encoding_base64_decode", b"aGVsbG8=", lambda r: r == b"hello"),
    ("encoding_hex_encode", b"\x00\xffA", lambda r: r == b"00ff41"),
    ("encoding_hex_decode", b"00ff41", lambda r: r == b"\x00\xffA"),
    ("encoding_url_encode", b"a b&c/d", lambda r: urllib.parse.unquote(r.decode()) == "a b&c/d"
     and b" " not in r and b"&" not in r),
    ("encoding_url_decode", b"a%20b%26c", lambda r: r == b"a b&c"),
    ("crypto_hash", b'{"algorithm":"sha256","input":"abc"}',
     lambda r: r == hashlib.sha256(b"abc").hexdigest().encode()),
    ("crypto_hash", b'{"algorithm":"sha512","input":""}',
     lambda r: r == hashlib.sha512(b"").hexdigest().encode()),
    ("id_uuid", b'{"version":"v4"}',
     lambda r: re.fullmatch(rb"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", r)),
    ("id_uuid", b'{"version":"v7"}',
     lambda r: re.fullmatch(rb"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", r)),
    ("timestamp", b'{"format":"unix"}', lambda r: abs(int(r) - time.time()) < 60),
    ("timestamp", b'{"format":"rfc3339"}',
     lambda r: re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r)),
])
def test_edge_ops(server, op, arg, check):
    status, _, payload = http_request(server, "/w/" + op, body=arg)
    assert status == 200, payload
    assert check(payload), payload


@pytest.mark.parametrize("op, arg", [
    ("encoding_base64_decode", b"not base64!"),
    ("encoding_hex_decode", b"abc"),
    ("crypto_hash", b'{"algorithm":"whirlpool","input":"x"}'),
    ("crypto_hash", b"not json"),
    ("id_uuid", b'{"version":"v9"}'),
])
def test_edge_ops_refuse_bad_arguments_with_no_result(server, op, arg):
    status, _, payload = http_request(server, "/w/" + op, body=arg)
    assert (status, payload) == (404, b"")


@pytest.mark.parametrize("name", ["jwt-key", "from-env", "from-file"])
def test_a_flare_reads_the_secrets_its_route_allows(server, name):
    status, _, payload = http_request(server, "/w/secret_get", body=name.encode())
    assert (status, payload) == (200, SECRETS[name].encode())


@pytest.mark.parametrize("path, name", [
    ("/w/secret_get", "hidden"), ("/w/secret_get", "undefined"),
    ("/w/secret_get-denied", "jwt-key")])
def test_secrets_not_allowed_look_missing(server, path, name):
    assert http_request(server, path, body=name.encode())[:1] == (404,)
    assert SECRETS["jwt-key"] not in server.stderr()


def keyed(server, op, **args):
    status, _, payload = http_request(server, "/w/" + op, body=json.dumps(args).encode())
    return payload if status == 200 else None


def unb64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def test_hmac_is_sha256_keyed_by_the_named_secret(server):
    want = hmac.new(SECRETS["jwt-key"].encode(), b"abc", hashlib.sha256).hexdigest()
    assert keyed(server, "crypto_hmac", secret_key="jwt-key", input="abc") == want.encode()
    assert keyed(server, "crypto_hmac", secret_key="hidden", input="abc") is None


@pytest.mark.parametrize("alg, digest", [("HS256", hashlib.sha256), ("HS384", hashlib.sha384),
                                         ("HS512", hashlib.sha512)])
def test_jwts_verify_with_the_secret(server, alg, digest):
    claims = {"sub": "user-1", "role": "admin"}
    token = keyed(server, "crypto_sign_jwt", algorithm=alg, secret_key="jwt-key",
                  claims=claims).decode()
    head, body, sig = token.split(".")
    assert json.loads(unb64url(head)) == {"alg": alg, "typ": "JWT"}
    assert json.loads(unb64url(body)) == claims
    want = hmac.new(SECRETS["jwt-key"].encode(), (head + "." + body).encode(), digest).digest()
    assert unb64url(sig) == want
    assert "=" not in token
    assert keyed(server, "crypto_sign_jwt", algorithm="RS256", secret_key="jwt-key",
                 claims=claims) is None


def test_jwt_claims_must_be_flat(server):
    # Claim values are scalars; a nested body (100,000 levels made the
    # serializer recurse off the stack) gets no result.
    deep = b'{"algorithm":"HS256","secret_key":"jwt-key","claims":{"a":' + \
        b"[" * 100_000 + b"]" * 100_000 + b"}}"
    status, _, payload = http_request(server, "/w/crypto_sign_jwt", body=deep)
    assert (status, payload) == (404, b"")
    assert keyed(server, "crypto_sign_jwt", algorithm="HS256", secret_key="jwt-key",
                 claims={"aud": ["x"]}) is None
    flat = {"sub": "u", "exp": 1700000000, "admin": True, "nick": None}
    token = keyed(server, "crypto_sign_jwt", algorithm="HS256", secret_key="jwt-key",
                  claims=flat).decode()
    assert json.loads(unb64url(token.split(".")[1])) == flat
    assert http_request(server, "/w/request")[0] == 201


def test_aes_gcm_round_trips_and_rejects_tampering(server):
    sealed = keyed(server, "crypto_encrypt_aes", secret_key="from-env", input="attack at dawn")
    raw = base64.b64decode(sealed)
    assert len(raw) == 12 + len("attack at dawn") + 16  # nonce | ciphertext | tag
    # The documented layout, checked with an independent implementation.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    key = hashlib.sha256(SECRETS["from-env"].encode()).digest()
    assert AESGCM(key).decrypt(raw[:12], raw[12:], None) == b"attack at dawn"
    assert keyed(server, "crypto_decrypt_aes", secret_key="from-env",
                 input=sealed.decode()) == b"attack at dawn"
    again = keyed(server, "crypto_encrypt_aes", secret_key="from-env", input="attack at dawn")
    assert again != sealed  # a fresh nonce each time
    tampered = bytearray(raw)
    tampered[14] ^= 1
    assert keyed(server, "crypto_decrypt_aes", secret_key="from-env",
                 input=base64.b64encode(bytes(tampered)).decode()) is None
    assert keyed(server, "crypto_decrypt_aes", secret_key="jwt-key",
                 input=sealed.decode()) is None  # another key


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_flare_gets_a_500_and_the_server_keeps_serving(server, name):
    status, _, _ = http_request(server, "/w/" + name)
    assert status == 500
    assert http_request(server, "/w/request")[0] == 201


def test_memory_grows_up_to_the_cap_and_no_further(server):
    status, _, payload = http_request(server, "/w/grow")
    assert (status, payload) == (200, b"memory.grow refused")


def test_traps_on_both_loops_at_once(server):
    names = ["spin", "unreachable", "recursion", "request", "oob-store"] * 20

    def one(name):
        return name, http_request(server, "/w/" + name)[0]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, names))
    for name, status in results:
        assert status == (201 if name == "request" else 500), (name, status)
    log = server.stderr()
    for trap in ("unreachable", "fuel", "exhaust"):
        assert re.search("wasm flare trapped.*" + trap, log, re.I), trap


def vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(field + " not in /proc/%d/status" % pid)


@pytest.mark.skipif(not shutil.which("h2load"), reason="h2load (nghttp2-client) is missing")
def test_a_hundred_thousand_instance_lifetimes_keep_memory_flat(server):
    url = server.url("/w/unreachable")

    def run(n):
        out = subprocess.run(["h2load", "--h1", "-n", str(n), "-c", "4", url],
                             capture_output=True, text=True, timeout=600 * edge.SLOW)
        assert re.search(r"status codes: 0 2xx, 0 3xx, 0 4xx, %d 5xx" % n, out.stdout), out.stdout

    run(5_000)  # warm up: pools, allocator arenas, the log file's pages
    rss, vm = vm_kib(server.proc.pid, "VmRSS"), vm_kib(server.proc.pid, "VmSize")
    # A fifth under the sanitizers, whose builds find leaks by themselves
    # (LeakSanitizer at exit) and run each lifetime ~5x slower.
    run(100_000 if edge.SLOW == 1 else 20_000)
    rss2, vm2 = vm_kib(server.proc.pid, "VmRSS"), vm_kib(server.proc.pid, "VmSize")
    assert rss2 - rss < 16 * 1024, (rss, rss2)
    assert vm2 - vm < 64 * 1024, (vm, vm2)
    assert http_request(server, "/w/request")[0] == 201


# ---------------------------------------------------------------- deploy time

def check_config(tmp_path, module_path, extra=""):
    return edge.serve_check("log: info\nlisteners:\n  - listen: 127.0.0.1:0\n%s"
                            "spark: {dir: %s}\nroutes:\n  - {path: /x, wasm: \"%s\"}\n"
                            % (extra, tmp_path / "spark", module_path), tmp_path)


@pytest.mark.parametrize("wat, message", [
    ('(import "flaron/v1" "nope" (func))',
     r"imports 'flaron/v1'\.'nope', which flaron/v1 does not have"),
    ('(import "flaron/v1" "req_method" (func (param i32) (result i64)))',
     r"imports 'flaron/v1'\.'req_method' with signature .* but flaron/v1 defines it as"),
    ('(import "env" "abort" (func))', r"'env'\.'abort': a flare may import only from"),
    ('(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))',
     r"may import only from module 'flaron/v1'"),
])
def test_bad_imports_are_refused_at_deploy_time_naming_the_import(tmp_path, wat, message):
    module = wat2wasm('(module %s (memory (export "memory") 1)'
                      ' (func (export "alloc") (param i32) (result i32) (i32.const 0))'
                      ' (func (export "handle_request") (result i64) (i64.const 0)))' % wat,
                      str(tmp_path / "bad.wasm"))
    out = check_config(tmp_path, module)
    assert out.returncode == 2, out
    assert re.search(message, out.stderr), out.stderr
    assert "bad.wasm" in out.stderr


@pytest.mark.parametrize("wat, message", [
    ('(memory (export "memory") 1) (func (export "handle_request") (result i64) (i64.const 0))',
     r"does not export 'alloc'"),
    ('(memory 1) (func (export "alloc") (param i32) (result i32) (i32.const 0))'
     ' (func (export "handle_request") (result i64) (i64.const 0))',
     r"does not export its memory as 'memory'"),
    ('(memory (export "memory") 1) (func (export "alloc") (param i32) (result i32) (i32.const 0))',
     r"exports neither 'handle_request'"),
    ('(memory (export "memory") 1) (func (export "alloc") (param i32) (result i32) (i32.const 0))'
     ' (func (export "handle_request") (result i32) (i32.const 0))',
     r"exports 'handle_request' with signature"),
    ('(memory (export "memory") 300) (func (export "alloc") (param i32) (result i32) (i32.const 0))'
     ' (func (export "handle_request") (result i64) (i64.const 0))',
     r"memory starts at 300 pages, above the cap"),
    # One frame must fit below the guest's stack floor.
    pytest.param(
        '(memory (export "memory") 1) (func (export "alloc") (param i32) (result i32)'
        ' (i32.const 0)) (func (export "handle_request") (result i64) (local' + ' i64' * 50001 +
        ') (i64.const 0))', r"has 50001 parameters and locals; at most 50000",
        id="too-many-locals"),
])
def test_bad_exports_and_memory_are_refused_at_deploy_time(tmp_path, wat, message):
    module = wat2wasm("(module %s)" % wat, str(tmp_path / "bad.wasm"))
    out = check_config(tmp_path, module)
    assert out.returncode == 2, out
    assert re.search(message, out.stderr), out.stderr


REGRESSION = os.path.join(os.path.dirname(HERE), "..", "fuzz", "corpus", "fuzz_wasm_module",
                          "regression-unbalanced-end")


@pytest.mark.parametrize("data", [
    b"\x00asm\x01\x00\x00\x00\xff\xff\xff",
    open(REGRESSION, "rb").read(),  # made libwabt's IR reader abort (fuzz_wasm_module)
], ids=["garbage", "unbalanced-end"])
def test_malformed_modules_are_refused_not_fatal(tmp_path, data):
    path = tmp_path / "garbage.wasm"
    path.write_bytes(data)
    out = check_config(tmp_path, str(path))
    assert out.returncode == 2 and "not a valid WebAssembly module" in out.stderr, out.stderr


def test_the_same_module_is_compiled_once_and_then_served_from_the_cache(tmp_path, modules):
    cache = tmp_path / "cache"
    extra = "wasm:\n  cache_dir: %s\n" % cache
    first = check_config(tmp_path, modules["request"], extra)
    assert first.returncode == 0, first.stderr
    assert "cached=false" in first.stderr
    # A copy under another name: the cache is keyed by content.
    copy = tmp_path / "same.wasm"
    shutil.copy(modules["request"], copy)
    second = check_config(tmp_path, str(copy), extra)
    assert second.returncode == 0, second.stderr
    assert "cached=true" in second.stderr
    keys = [re.search(r"cache_key=([0-9a-f]{64})", out.stderr).group(1)
            for out in (first, second)]
    assert keys[0] == keys[1]
    assert os.listdir(cache) == [keys[0] + ".so"]


def test_a_route_allowing_an_undefined_secret_is_refused(tmp_path, modules):
    out = check_config_text(tmp_path, 'secrets:\n  "*": {a: b}\nroutes:\n'
                            '  - {path: /x, wasm: "%s", allowed_secrets: [nope]}\n'
                            % modules["secret_get"])
    assert out.returncode == 2
    assert "allows secret 'nope', which 'secrets' defines neither for * nor for *" in out.stderr


def test_a_secret_from_an_unset_variable_is_refused_without_showing_values(tmp_path, modules):
    out = check_config_text(tmp_path, 'secrets:\n  "*":\n    shown: "TOPSECRETVALUE"\n'
                            '    env-one: {env: EMBER_TEST_UNSET_VARIABLE}\nroutes:\n'
                            '  - {path: /x, wasm: "%s", allowed_secrets: [shown]}\n'
                            % modules["secret_get"])
    assert out.returncode == 2
    assert "secret '*.env-one' comes from $EMBER_TEST_UNSET_VARIABLE, which is not set" \
        in out.stderr
    ok = check_config_text(tmp_path, 'log: debug\nsecrets:\n  "*":\n    shown: "TOPSECRETVALUE"\n'
                           'routes:\n  - {path: /x, wasm: "%s", allowed_secrets: [shown]}\n'
                           % modules["secret_get"])
    assert ok.returncode == 0, ok.stderr
    assert "TOPSECRETVALUE" not in ok.stderr + ok.stdout


def check_config_text(tmp_path, text):
    return edge.serve_check("listeners:\n  - listen: 127.0.0.1:0\nspark: {dir: %s}\n"
                            % (tmp_path / "spark") + text, tmp_path)

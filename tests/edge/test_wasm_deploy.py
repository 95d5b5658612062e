"""Run-time deployment of Wasm flares: the admin API of `ember serve`
(`admin:` in the config) driven by curl and by `ember flare`, with HTTP and
WebSocket traffic from Python's clients. Deploy, replace (open WebSocket
connections stay on their version), remove, refusals with their reasons, and
deployments restored after a restart.
"""

import asyncio
import json
import os
import subprocess
import time

import pytest
import websockets

import edge
from edge import http_request

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wasm")
TOKEN = "test-admin-token-0123456789"


def wat(directory, name, source):
    path = os.path.join(str(directory), name + ".wat")
    with open(path, "w") as f:
        f.write(source)
    out = os.path.join(str(directory), name + ".wasm")
    subprocess.run(["wat2wasm", path, "-o", out], check=True, capture_output=True)
    return out


def variant(directory, name, base, old, new):
    """A module built from tests/edge/wasm/BASE.wat with OLD replaced by NEW."""
    with open(os.path.join(HERE, base + ".wat")) as f:
        source = f.read()
    assert old in source
    return wat(directory, name, source.replace(old, new))


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    d = tmp_path_factory.mktemp("modules")
    return {
        "req1": variant(d, "req1", "request", '"x-method"', '"x-method"'),
        "req2": variant(d, "req2", "request", '"x-method"', '"x-metho2"'),
        "ws1": variant(d, "ws1", "ws", '"\\ff\\00"', '"\\ff\\00"'),
        "ws2": variant(d, "ws2", "ws", '"\\ff\\00"', '"\\ff\\02"'),
        "unknown_import": wat(d, "unknown_import", """(module
  (import "flaron/v1" "launch_rockets" (func (param i32)))
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "handle_request") (result i64) (i64.const 4294967296)))"""),
        "no_memory": wat(d, "no_memory", "(module)"),
    }


def admin_config(directory):
    return ("admin: {token: %s, state_dir: %s}\nspark: {dir: %s}\n"
            "secrets: {'*': {greeting: hi}}\n"
            % (TOKEN, directory / "state", directory / "spark"))


@pytest.fixture(scope="module")
def server(start_server, tmp_path_factory):
    d = tmp_path_factory.mktemp("deploy")
    return start_server(tls=False, extra_config=admin_config(d),
                        wasm={"cache_dir": str(d / "cache")})


def admin_url(server, path=""):
    return "http://127.0.0.1:%d/_ember%s" % (server.port, path)


def curl(server, method, path, data=None, token=TOKEN):
    """The admin API through curl: (status, parsed JSON, response headers)."""
    cmd = ["curl", "-sS", "-i", "-X", method, admin_url(server, path)]
    if token is not None:
        cmd += ["-H", "Authorization: Bearer " + token]
    if data is not None:
        cmd += ["--data-binary", "@" + data, "-H", "Content-Type: application/wasm"]
    out = subprocess.run(cmd, check=True, capture_output=True, timeout=60 * edge.SLOW).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    fields = {k.strip().lower(): v.strip()
              for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), json.loads(body), fields


def cli(server, *args, token=TOKEN):
    env = dict(os.environ, EMBER_ADMIN_URL=admin_url(server), EMBER_ADMIN_TOKEN=token)
    return subprocess.run([edge.ember_binary(), "flare", *args], env=env, capture_output=True,
                          text=True, timeout=180 * edge.SLOW)


def wait_active(server, name, version):
    deadline = time.monotonic() + 120 * edge.SLOW
    while time.monotonic() < deadline:
        status, record, _ = curl(server, "GET", "/flares/" + name)
        assert status == 200, record
        if record["version"] == version and record["status"] != "compiling":
            assert record["status"] == "active", record
            return record
        time.sleep(0.05)
    raise AssertionError("deployment %s v%d did not become active" % (name, version))


def eventually(check, what):
    """Each loop takes a new route table at its next turn: poll briefly."""
    deadline = time.monotonic() + 10 * edge.SLOW
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(what)


def test_the_api_refuses_a_missing_or_wrong_token(server):
    for token in (None, "x" * len(TOKEN), TOKEN + "x", TOKEN[:-1]):
        status, body, fields = curl(server, "GET", "/flares", token=token)
        assert status == 401, body
        assert fields["www-authenticate"].startswith("Bearer")
        assert "admin.token" in body["error"]
    assert "bad or missing token" in server.stderr()
    assert TOKEN not in server.stderr()
    status, body, _ = curl(server, "GET", "/flares")
    assert status == 200 and isinstance(body["flares"], list)


def test_cli_deploys_replaces_and_removes_a_flare(server, modules):
    done = cli(server, "deploy", "app", modules["req1"], "--path", "/app")
    assert done.returncode == 0, done.stderr
    assert "active" in done.stdout
    status, fields, _ = http_request(server, "/app/x")
    assert status == 201 and fields["x-method"] == "GET" and fields["x-url"] == "/app/x"

    done = cli(server, "deploy", "app", modules["req2"], "--path", "/app")
    assert done.returncode == 0, done.stderr
    eventually(lambda: "x-metho2" in http_request(server, "/app/x")[1], "v2 never served")
    status, record, _ = curl(server, "GET", "/flares/app")
    assert record["status"] == "active" and record["serving"]["version"] == record["version"]

    listed = cli(server, "list")
    assert listed.returncode == 0 and "app" in listed.stdout, listed

    # The same module again: served from the compile cache (same hash).
    done = cli(server, "deploy", "app", modules["req2"], "--path", "/app2")
    assert done.returncode == 0, done.stderr
    eventually(lambda: http_request(server, "/app2/y")[0] == 201, "the moved route never served")
    eventually(lambda: http_request(server, "/app/x")[0] == 200, "the old route stayed")

    done = cli(server, "remove", "app")
    assert done.returncode == 0 and "removed app" in done.stdout, done
    eventually(lambda: http_request(server, "/app2/y")[2] == b"hello", "the route survived")
    status, body, _ = curl(server, "GET", "/flares/app")
    assert status == 404 and "no deployment named 'app'" in body["error"]
    again = cli(server, "remove", "app")
    assert again.returncode == 1 and "no deployment named" in again.stderr


def test_open_websocket_connections_keep_their_version(server, modules):
    status, record, fields = curl(server, "PUT", "/flares/live?path=/live", data=modules["ws1"])
    assert status == 202 and record["status"] == "compiling", record
    assert fields["location"] == "/_ember/flares/live"
    wait_active(server, "live", record["version"])
    url = "ws://127.0.0.1:%d/live" % server.port

    async def go():
        async with websockets.connect(url) as old:
            assert (await old.recv()).startswith("open ")
            await old.send("send-bytes")
            assert await old.recv() == b"\xff\x00"

            status, record, _ = curl(server, "PUT", "/flares/live?path=/live", data=modules["ws2"])
            assert status == 202, record
            wait_active(server, "live", record["version"])
            deadline = time.monotonic() + 10 * edge.SLOW
            while True:  # new connections get the new version
                async with websockets.connect(url) as new:
                    await new.recv()
                    await new.send("send-bytes")
                    got = await new.recv()
                if got == b"\xff\x02" or time.monotonic() > deadline:
                    break
            assert got == b"\xff\x02"
            # ... while the one opened before the replacement keeps the old one.
            await old.send("send-bytes")
            assert await old.recv() == b"\xff\x00"
            await old.send("still there")
            assert await old.recv() == "still there"

    asyncio.run(asyncio.wait_for(go(), 120 * edge.SLOW))
    assert curl(server, "DELETE", "/flares/live")[0] == 200


def test_bad_requests_are_refused_with_the_reason(server, modules):
    cases = [
        ("PUT", "/flares/bad1?path=/bad1", modules["unknown_import"], 400, "launch_rockets"),
        ("PUT", "/flares/bad2?path=/bad2", modules["no_memory"], 400, "memor"),
        ("PUT", "/flares/bad3?path=/bad3", None, 400, "request body must be the module"),
        ("PUT", "/flares/bad%20name", modules["req1"], 400, "deployment name"),
        ("PUT", "/flares/bad4?color=red", modules["req1"], 400, "unknown query parameter 'color'"),
        ("PUT", "/flares/bad5?path=/", modules["req1"], 409, "config's (flare hello)"),
        ("PUT", "/flares/bad6?path=/_ember/x", modules["req1"], 400, "admin API"),
        ("PUT", "/flares/bad7?path=nopath", modules["req1"], 400, "must start with /"),
        ("PUT", "/flares/bad8?host=a%20b&path=/b8", modules["req1"], 400, "host 'a b'"),
        ("PUT", "/flares/bad9?path=/b9&secret=missing", modules["req1"], 400, "secret 'missing'"),
        ("PUT", "/flares/bad10?path=/b10&capability=root", modules["req1"], 400, "capability 'root'"),
        ("POST", "/flares/bad11", None, 405, "GET, PUT or DELETE"),
        ("GET", "/nothing", None, 404, "no admin endpoint"),
    ]
    for method, path, data, want, words in cases:
        status, body, _ = curl(server, method, path, data=data)
        assert status == want and words in body["error"], (path, status, body)

    status, record, _ = curl(server, "PUT", "/flares/first?path=/taken&secret=greeting",
                             data=modules["req1"])
    assert status == 202, record
    assert record["secrets"] == ["greeting"]
    status, body, _ = curl(server, "PUT", "/flares/second?path=/taken", data=modules["req1"])
    assert status == 409 and "taken by deployment 'first'" in body["error"], body
    wait_active(server, "first", record["version"])
    assert curl(server, "DELETE", "/flares/first")[0] == 200
    # Nothing refused was kept.
    names = [f["name"] for f in curl(server, "GET", "/flares")[1]["flares"]]
    assert not [n for n in names if n.startswith("bad") or n == "second"], names


def test_deployments_are_restored_after_a_restart(start_server, tmp_path_factory, modules):
    d = tmp_path_factory.mktemp("restart")
    kw = dict(tls=False, extra_config=admin_config(d), wasm={"cache_dir": str(d / "cache")})
    first = start_server(**kw)
    assert cli(first, "deploy", "kept", modules["req1"], "--path", "/kept").returncode == 0
    assert cli(first, "deploy", "kept", modules["req2"], "--path", "/kept").returncode == 0
    assert cli(first, "deploy", "tampered", modules["req1"], "--path", "/t").returncode == 0
    assert cli(first, "deploy", "gone", modules["req1"], "--path", "/g").returncode == 0
    assert cli(first, "remove", "gone").returncode == 0
    sha = {name: curl(first, "GET", "/flares/" + name)[1]["sha256"] for name in ("kept", "tampered")}
    # Files are written and removed on the deployer's thread, in order.
    want = sorted(["kept.json", "kept.%s.wasm" % sha["kept"], "tampered.json",
                   "tampered.%s.wasm" % sha["tampered"]])
    eventually(lambda: sorted(os.listdir(d / "state")) == want,
               "state_dir holds %s, not %s" % (sorted(os.listdir(d / "state")), want))
    edge.stop_and_check(first)
    first.stopped_by_test = True
    with open(d / "state" / ("tampered.%s.wasm" % sha["tampered"]), "ab") as f:
        f.write(b"\0")

    second = start_server(**kw)  # serves the saved deployment from its first request
    status, fields, _ = http_request(second, "/kept/z")
    assert status == 201 and "x-metho2" in fields
    assert http_request(second, "/t")[2] == b"hello"
    assert "saved deployment not restored" in second.stderr()
    assert "SHA-256" in second.stderr()
    names = [f["name"] for f in curl(second, "GET", "/flares")[1]["flares"]]
    assert names == ["kept"]


def test_config_checks_the_admin_section(tmp_path):
    for admin, words in [("{token: short}", "at least 16 characters"),
                         ("{path: /x}", "needs a 'token'"),
                         ("{token: %s, path: /x/}" % TOKEN, "must start with / and not end"),
                         ("{token: %s, color: red}" % TOKEN, "unknown key 'color'"),
                         ("{token: {env: EMBER_TEST_NO_SUCH_VAR}}", "EMBER_TEST_NO_SUCH_VAR")]:
        run = edge.serve_check("routes: [{flare: hello}]\nadmin: %s\n" % admin, tmp_path)
        assert run.returncode == 2 and words in run.stderr, (admin, run.stderr)

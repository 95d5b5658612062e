#!/usr/bin/env python3
"""Loopback stand-in for the queue face's configuration service ("sys-map").

Serves files from a directory, read at each request so tests can rewrite them:
  GET /{name}        -> DIR/{name}.json      (application/json)
  GET /{name}/{key}  -> DIR/{name}/{key}     (text/plain: a bucket name)
Anything else, or a missing file, is 404. Only GET/HEAD. Standard library only.

usage: config_server.py --dir DIR [--port N] [--ready-file F]
"""
import argparse
import http.server
import os
import re
import signal
import sys

SEGMENT = re.compile(r"^[A-Za-z0-9._~-]+$")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ember-config/1"
    root = "."

    def log_message(self, fmt, *args):
        sys.stderr.write("config: " + (fmt % args) + "\n")

    def _resolve(self):
        path = self.path.split("?", 1)[0]
        parts = path.strip("/").split("/") if path.strip("/") else []
        # No "..", no empty or odd segments: nothing outside the directory.
        if not parts or len(parts) > 2 or not all(SEGMENT.match(p) and p not in (".", "..") for p in parts):
            return None, None
        if len(parts) == 1:
            return os.path.join(self.root, parts[0] + ".json"), "application/json"
        return os.path.join(self.root, parts[0], parts[1]), "text/plain; charset=utf-8"

    def _answer(self, with_body):
        file, ctype = self._resolve()
        body = None
        if file is not None:
            try:
                with open(file, "rb") as f:
                    body = f.read()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                body = None
        status = 200
        if body is None:
            status, ctype, body = 404, "text/plain; charset=utf-8", b"not found\n"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self):
        self._answer(True)

    def do_HEAD(self):
        self._answer(False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ready-file")
    args = ap.parse_args()
    Handler.root = os.path.abspath(args.dir)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    port = server.server_address[1]
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write(f"{port}\n")
    print(f"config service on 127.0.0.1:{port} serving {Handler.root}", flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass


if __name__ == "__main__":
    main()

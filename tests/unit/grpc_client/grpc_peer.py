"""A gRPC server from grpcio (an independent peer) for Ember's client tests.

Methods take and return raw bytes (no protobuf), so no generated code is
needed. It prints "PORT <n>" on stdout once serving.

  /test.Peer/Echo           unary: the request back
  /test.Peer/Fail           unary: NOT_FOUND, message "no such thing: <request>"
  /test.Peer/Sleep          unary: waits <request> seconds, then answers "late"
  /test.Peer/Count          stream: <request> messages "message <i>"
  /test.Peer/CountThenFail  stream: <request> messages, then RESOURCE_EXHAUSTED
  /test.Peer/Hang           stream: one message, then waits (until cancelled)
  /test.Peer/Metadata       unary: "timeout" when the call has a deadline, else "none"

usage: grpc_peer.py [--tls CERT KEY | --unix PATH]
"""
import sys
import threading
import time
from concurrent import futures

import grpc


def ident(b):
    return b


def echo(request, context):
    return request


def fail(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing: " + request.decode())


def sleep(request, context):
    time.sleep(float(request.decode()))
    return b"late"


def count(request, context):
    for i in range(int(request.decode())):
        yield b"message %d" % i


def count_then_fail(request, context):
    for i in range(int(request.decode())):
        yield b"message %d" % i
    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota used up after %s" % request.decode())


def hang(request, context):
    yield b"first"
    done = threading.Event()
    context.add_callback(done.set)
    done.wait(60)


def metadata(request, context):
    # grpcio reports a huge time remaining when the client sent no grpc-timeout.
    remaining = context.time_remaining()
    return b"timeout" if remaining is not None and remaining < 3600 else b"none"


def main():
    unary = {"Echo": echo, "Fail": fail, "Sleep": sleep, "Metadata": metadata}
    stream = {"Count": count, "CountThenFail": count_then_fail, "Hang": hang}
    handlers = {}
    for name, fn in unary.items():
        handlers[name] = grpc.unary_unary_rpc_method_handler(
            fn, request_deserializer=ident, response_serializer=ident)
    for name, fn in stream.items():
        handlers[name] = grpc.unary_stream_rpc_method_handler(
            fn, request_deserializer=ident, response_serializer=ident)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Peer", handlers),))
    if len(sys.argv) == 4 and sys.argv[1] == "--tls":
        with open(sys.argv[2], "rb") as f:
            cert = f.read()
        with open(sys.argv[3], "rb") as f:
            key = f.read()
        port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
    elif len(sys.argv) == 3 and sys.argv[1] == "--unix":
        server.add_insecure_port("unix:" + sys.argv[2])
        port = 1
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print("PORT %d" % port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()

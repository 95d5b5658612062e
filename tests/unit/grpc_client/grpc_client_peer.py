"""grpcio's client (an independent peer) against an Ember gRPC server.

usage: grpc_client_peer.py PORT
Calls the test server of server_connection_test.cpp and checks every answer;
prints what differed and exits 1, or exits 0.
"""
import sys

import grpc


def ident(b):
    return b


def main():
    failures = []

    def check(what, got, want):
        if got != want:
            failures.append("%s: got %r, want %r" % (what, got, want))

    with grpc.insecure_channel("127.0.0.1:" + sys.argv[1]) as ch:
        echo = ch.unary_unary("/test.Ember/Echo", request_serializer=ident,
                              response_deserializer=ident)
        count = ch.unary_stream("/test.Ember/Count", request_serializer=ident,
                                response_deserializer=ident)
        count_fail = ch.unary_stream("/test.Ember/CountThenFail", request_serializer=ident,
                                     response_deserializer=ident)
        check("echo", echo(b"hello", timeout=10), b"hello")
        big = bytes(range(256)) * 8192  # 2 MiB
        check("echo 2 MiB", echo(big, timeout=10) == big, True)
        got = list(count(b"1000", timeout=10))
        check("count 1000", got, [b"message %d" % i for i in range(1000)])
        check("count 0", list(count(b"0", timeout=10)), [])
        got = []
        try:
            for m in count_fail(b"3", timeout=10):
                got.append(m)
            failures.append("CountThenFail ended without an error")
        except grpc.RpcError as e:
            check("CountThenFail code", e.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            check("CountThenFail details", e.details(), "quota used up after 3")
        check("CountThenFail messages", got, [b"message %d" % i for i in range(3)])
        try:
            ch.unary_unary("/test.Ember/Nope")(b"", timeout=10)
            failures.append("unknown method answered")
        except grpc.RpcError as e:
            check("unknown method", e.code(), grpc.StatusCode.UNIMPLEMENTED)
    for f in failures:
        print(f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

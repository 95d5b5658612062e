#!/usr/bin/env python3
"""Writes the committed seed corpora under tests/fuzz/corpus/<target>/.

Deterministic: rerun after changing an input format and commit the result.
Each seed is small, valid or nearly valid input that reaches deep code.
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- protobuf -----------------------------------------------------------------


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def pb_bytes(field, data):
    return varint(field << 3 | 2) + varint(len(data)) + data


def pb_varint(field, v):
    return varint(field << 3 | 0) + varint(v)


# ---- gRPC framing -------------------------------------------------------------


def grpc_message(body, flags=0):
    return struct.pack(">BI", flags, len(body)) + body


# ---- HTTP/2 -------------------------------------------------------------------


def frame(ftype, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(
        ">I", stream) + payload


def settings(pairs=()):
    return frame(0x4, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


SETTINGS_ACK = frame(0x4, 0x1, 0, b"")


def hpack_int(value, prefix_bits, first):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_literal(name, value, indexing=False):
    # Literal with a literal name; "incremental indexing" grows the dynamic table.
    out = bytes([0x40 if indexing else 0x00])
    for s in (name, value):
        out += hpack_int(len(s), 7, 0) + s
    return out


def hpack_block(fields, indexing=False):
    block = b""
    for name, value in fields:
        if (name, value) == (b":method", b"POST"):
            block += b"\x83"  # static table 3
        elif (name, value) == (b":scheme", b"http"):
            block += b"\x86"  # static table 6
        else:
            block += hpack_literal(name, value, indexing)
    return block


def grpc_request_fields(path=b"/a/Echo", method=b"POST", extra=()):
    return [(b":method", method), (b":scheme", b"http"), (b":path", path),
            (b":authority", b"fuzz"), (b"content-type", b"application/grpc"),
            (b"te", b"trailers")] + list(extra)


END_STREAM, END_HEADERS, PADDED = 0x1, 0x4, 0x8


def headers(stream, fields, end_stream=False, indexing=False):
    flags = END_HEADERS | (END_STREAM if end_stream else 0)
    return frame(0x1, flags, stream, hpack_block(fields, indexing))


def data(stream, payload, end_stream=True):
    return frame(0x0, END_STREAM if end_stream else 0, stream, payload)


def unary(stream, message, path=b"/a/Echo", indexing=False):
    return headers(stream, grpc_request_fields(path), indexing=indexing) + data(
        stream, grpc_message(message))


CLIENT_SETTINGS = settings([(0x2, 0), (0x4, 16 << 20), (0x5, 1 << 20)])
WINDOW_UPDATE = frame(0x8, 0, 0, struct.pack(">I", 64 << 20))


def grpc_server_seeds():
    start = CLIENT_SETTINGS + WINDOW_UPDATE
    seeds = {
        "echo": start + unary(1, b"hello"),
        "echo_indexed_then_reused": start + unary(1, b"a", indexing=True) +
        unary(3, b"b", indexing=True),
        "fail": start + unary(1, b"x", path=b"/a/Fail"),
        "defer_then_more": start + unary(1, b"wait", path=b"/a/Defer") + SETTINGS_ACK +
        unary(3, b"next") + frame(0x6, 0, 0, b"pingpong"),
        "unknown_method": start + unary(1, b"x", path=b"/nope"),
        "get": start + headers(1, grpc_request_fields(method=b"GET"), end_stream=True),
        "no_te": start + headers(1, grpc_request_fields()[:-1]) + data(1, grpc_message(b"x")),
        "bad_timeout": start + headers(
            1, grpc_request_fields(extra=[(b"grpc-timeout", b"123456789S")])) + data(
                1, grpc_message(b"x")),
        "timeout": start + headers(
            1, grpc_request_fields(extra=[(b"grpc-timeout", b"5S")])) + data(
                1, grpc_message(b"x")),
        "compressed": start + headers(1, grpc_request_fields()) + data(
            1, grpc_message(b"zz", flags=1)),
        "oversize": start + headers(1, grpc_request_fields()) + data(
            1, grpc_message(b"o" * 1100)),
        "two_messages": start + headers(1, grpc_request_fields()) + data(
            1, grpc_message(b"1") + grpc_message(b"2")),
        "message_split_over_frames": start + headers(1, grpc_request_fields()) +
        data(1, grpc_message(b"0123456789")[:7], end_stream=False) +
        data(1, grpc_message(b"0123456789")[7:]),
        "ends_mid_message": start + headers(1, grpc_request_fields()) + data(
            1, grpc_message(b"0123456789")[:8]),
        "continuation": start + frame(0x1, 0, 1, hpack_block(grpc_request_fields()[:3])) +
        frame(0x9, END_HEADERS, 1, hpack_block(grpc_request_fields()[3:])) +
        data(1, grpc_message(b"cont")),
        "padded_data": start + headers(1, grpc_request_fields()) + frame(
            0x0, END_STREAM | PADDED, 1, b"\x03" + grpc_message(b"pad") + b"\0\0\0"),
        "request_trailers": start + headers(1, grpc_request_fields()) + data(
            1, grpc_message(b"t"), end_stream=False) + headers(
                1, [(b"x-trailer", b"1")], end_stream=True),
        "client_reset": start + unary(1, b"wait", path=b"/a/Defer") + frame(
            0x3, 0, 1, struct.pack(">I", 8)),
        "goaway": start + unary(1, b"x") + frame(0x7, 0, 0, struct.pack(">II", 1, 0)),
        "priority_and_window": start + frame(0x2, 0, 3, struct.pack(">IB", 0, 16)) +
        unary(1, b"p") + frame(0x8, 0, 1, struct.pack(">I", 1000)),
        "many_streams": start + b"".join(unary(2 * i + 1, bytes([i]) * i) for i in range(8)),
        "big_header": start + headers(
            1, grpc_request_fields(extra=[(b"x-big", b"v" * 1200)])) + data(
                1, grpc_message(b"x")),
    }
    for name, stream in seeds.items():
        # Byte 0 is the read size selector: whole reads and 1-byte reads.
        write("fuzz_grpc_server", name, b"\x0e" + stream)
    write("fuzz_grpc_server", "echo_byte_by_byte", b"\x00" + seeds["echo"])
    write("fuzz_grpc_server", "two_streams_7_byte_reads", b"\x03" + seeds["many_streams"])


def message_reader_seeds():
    streams = {
        "one": grpc_message(b"hello"),
        "empty": grpc_message(b""),
        "several": grpc_message(b"a") + grpc_message(b"") + grpc_message(b"x" * 300),
        "compressed": grpc_message(b"zip", flags=1),
        "bad_flags": grpc_message(b"bad", flags=0x80),
        "at_limit": grpc_message(b"L" * 100),
        "past_limit": grpc_message(b"L" * 101),
        "partial": grpc_message(b"0123456789")[:9],
        "huge_prefix": b"\x00\xff\xff\xff\xff",
    }
    for name, stream in streams.items():
        # Byte 0: limit 100 (index 4) with the pool (bit 3); byte 1: chunking.
        write("fuzz_message_reader", name, bytes([4 | 8, 3]) + stream)
    write("fuzz_message_reader", "one_byte_chunks_no_pool", bytes([6, 0]) + streams["several"])
    write("fuzz_message_reader", "large_limit", bytes([7 | 8, 9]) + grpc_message(b"q" * 3000))


def task_context_seeds():
    seeds = {
        "full": pb_bytes(1, b"task-1") + pb_bytes(2, b"session-1") + pb_bytes(4, b"input"),
        "absent_input": pb_bytes(1, b"t") + pb_bytes(2, b"s"),
        "empty_input": pb_bytes(1, b"t") + pb_bytes(4, b""),
        "utf8_ids": pb_bytes(1, "t\u00e9\u20ac\U0001f525".encode()) + pb_bytes(2, b"s"),
        "shuffled_repeated": pb_bytes(4, b"old") + pb_bytes(2, b"s") + pb_bytes(1, b"a") +
        pb_bytes(1, b"b") + pb_bytes(4, b"new"),
        "unknown_fields": pb_varint(3, 1 << 62) + pb_bytes(1, b"t") + varint(5 << 3 | 1) +
        b"12345678" + varint(6 << 3 | 5) + b"1234" + varint(7 << 3 | 3) + pb_varint(1, 5) +
        varint(7 << 3 | 4) + pb_bytes(100, b"zzz"),
        "wrong_wire_type": pb_varint(1, 7),
        "bad_utf8": pb_bytes(1, b"\xed\xa0\x80"),
        "truncated": pb_bytes(4, b"0123456789")[:6],
        "session_context": pb_bytes(1, b"s") + pb_bytes(
            2, pb_bytes(1, b"app") + pb_varint(2, 1) + pb_bytes(4, b"/bin/app")) + pb_bytes(
                3, b"common"),
    }
    for name, msg in seeds.items():
        write("fuzz_task_context", name, msg)


def grpc_text_seeds():
    seeds = {
        "timeout_seconds": b"1S",
        "timeout_max": b"99999999H",
        "timeout_nine_digits": b"123456789n",
        "timeout_bad_unit": b"10x",
        "percent_plain": b"no escapes",
        "percent_escapes": b"100%25 caf%C3%A9 %e2%82%ac",
        "percent_malformed": b"%G1%4%",
        "bytes_size": b"64KiB",
        "bytes_overflow": b"17179869184g",
        "duration": b"250ms",
        "binary": bytes(range(256)),
    }
    for name, text in seeds.items():
        write("fuzz_grpc_text", name, text)


def h2_client_seeds():
    # Byte 0 (see fuzz_h2_client.cpp): requests - 1, pause, cancel, write size.
    ok = [(b":status", b"200"), (b"content-length", b"5")]
    answer = settings([(0x3, 100)]) + SETTINGS_ACK
    for stream in (1, 3, 5):
        answer += headers(stream, ok) + data(stream, b"hello")
    write("fuzz_h2_client", "three_answers", bytes([0x02]) + answer)
    write("fuzz_h2_client", "paused_in_pieces", bytes([0x06 | 0x00]) + answer)
    write("fuzz_h2_client", "cancel_at_head", bytes([0x0a | 0x30]) + answer)
    interim = settings() + headers(1, [(b":status", b"103"), (b"link", b"</a>")]) + headers(
        1, [(b":status", b"204")], end_stream=True)
    write("fuzz_h2_client", "interim_then_204", bytes([0x00]) + interim)
    trailers = settings() + headers(1, [(b":status", b"200")]) + data(
        1, b"x" * 100, end_stream=False) + headers(1, [(b"x-t", b"1")], end_stream=True)
    write("fuzz_h2_client", "trailers", bytes([0x04]) + trailers)
    goaway = settings() + headers(1, ok) + data(1, b"hello") + frame(
        0x7, 0, 0, struct.pack(">II", 1, 0))
    write("fuzz_h2_client", "goaway_refuses", bytes([0x02]) + goaway)
    refused = settings() + frame(0x3, 0, 1, struct.pack(">I", 7)) + headers(3, ok) + data(
        3, b"hello")
    write("fuzz_h2_client", "rst_refused", bytes([0x01]) + refused)
    big = settings() + headers(1, [(b":status", b"200"), (b"content-length", b"9999")])
    write("fuzz_h2_client", "over_the_body_limit", bytes([0x00]) + big)


if __name__ == "__main__":
    shutil.rmtree(CORPUS, ignore_errors=True)
    grpc_server_seeds()
    message_reader_seeds()
    task_context_seeds()
    grpc_text_seeds()
    h2_client_seeds()
    for target in sorted(os.listdir(CORPUS)):
        print(target, len(os.listdir(os.path.join(CORPUS, target))), "seeds")

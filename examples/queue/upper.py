"""The `upper` queue microservice in Python (slingshot_microservice on Ember):
for request N it reads object N of bucket "in", writes its upper-cased text as
object N of bucket "out", records a row in PostgreSQL, and routes N by a bool
case: true when the text is longer than 16 bytes. The C++ twin is upper/main.cpp.

    PYTHONPATH=build/python python3 examples/queue/upper.py [CONFIG_HOST]
"""
import os
import sys
from typing import Iterator, Tuple

from sqlalchemy import text
from sqlalchemy.engine.base import Connection

from slingshot_microservice import Microservice
from slingshot_microservice.typing import CaseVariable, ReadFileFn, WriteFileFn


def process(
    request: int, read_file: ReadFileFn, write_file: WriteFileFn, connection: Connection
) -> Iterator[Tuple[int, CaseVariable]]:
    data = read_file("in", request).read().upper()
    with write_file("out", request) as out:
        out.write(data)
    connection.execute(
        text(
            "CREATE TABLE IF NOT EXISTS upper_log "
            "(request bigint PRIMARY KEY, bytes bigint, at timestamptz DEFAULT now())"
        )
    )
    connection.execute(
        text(
            "INSERT INTO upper_log (request, bytes) VALUES (:r, :n) "
            "ON CONFLICT (request) DO UPDATE SET bytes = EXCLUDED.bytes, at = now()"
        ),
        {"r": request, "n": len(data)},
    )
    connection.commit()
    yield (request, len(data) > 16)


if __name__ == "__main__":
    host = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CONFIG_HOST", "http://127.0.0.1:8000")
    Microservice("upper", host, process).start()

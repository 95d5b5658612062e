"""The Python side of one request: file objects, the database connection, process.

Runs on the C++ runtime's worker threads with the GIL held (bindings/python/native.cpp).
"""

import io
import logging
import threading
import traceback
from typing import Any, Dict, List, Optional, Tuple

log = logging.getLogger("slingshot_microservice")

# Buffer sizes: one S3 read or one staged-file write per 256 KiB.
_BUFFER = 256 * 1024


class _RawReader(io.RawIOBase):
    """An S3 object streamed by the C++ runtime (memory stays bounded)."""

    def __init__(self, native: Any, name: str) -> None:
        self._native = native
        self.name = name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._native.readinto(buffer)

    def readall(self) -> bytes:
        return self._native.read_all()


class _RawWriter(io.RawIOBase):
    """A local file staged for upload after process returns."""

    def __init__(self, native: Any) -> None:
        self._native = native
        self.name = native.path

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return self._native.write(data)


class _Files:
    """read_file/write_file for one call; closes what they opened when it ends."""

    __slots__ = ("_call", "_readers", "_writers")

    def __init__(self, call: Any) -> None:
        self._call = call
        self._readers: List[io.BufferedReader] = []
        self._writers: Dict[Tuple[str, int], io.BufferedWriter] = {}

    def read_file(self, key: str, id: int) -> io.BufferedReader:
        reader = io.BufferedReader(_RawReader(self._call.read(key, id), f"{key}/{id}"), _BUFFER)
        self._readers.append(reader)
        return reader

    def write_file(self, key: str, id: int) -> io.BufferedWriter:
        # The same (key, id) twice is the same file, as in C++.
        writer = self._writers.get((key, id))
        if writer is None or writer.closed:
            writer = io.BufferedWriter(_RawWriter(self._call.write(key, id)), _BUFFER)
            self._writers[(key, id)] = writer
        return writer

    def close(self) -> None:
        """Flushes every writer (its failure fails the request) and closes readers."""
        for reader in self._readers:
            reader.close()
        for writer in self._writers.values():
            writer.close()

    def abandon(self) -> None:
        for f in [*self._readers, *self._writers.values()]:
            try:
                f.close()
            except Exception:  # the request has failed already; its error is the one to report
                pass


class _Connections:
    """One database connection per worker thread, reused across requests.

    SQLAlchemy (2.0-style ``Connection``: ``execute``, ``commit``) over psycopg2
    when both are installed, else a psycopg2 connection, else None. A
    transaction a request leaves open is rolled back after it.
    """

    def __init__(self, settings: Dict[str, Any]) -> None:
        self._settings = settings
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: List[Any] = []
        self._engine = None
        self._psycopg2 = None
        try:
            import psycopg2

            self._psycopg2 = psycopg2
        except ImportError:
            log.warning(
                "psycopg2 is not installed: process gets connection=None "
                "(install python3-psycopg2, and python3-sqlalchemy for an SQLAlchemy connection)"
            )
            return
        try:
            import sqlalchemy
        except ImportError:
            return
        self._engine = sqlalchemy.create_engine(
            "postgresql+psycopg2://",
            creator=self._connect,
            future=True,
            poolclass=sqlalchemy.pool.NullPool,
        )

    def _connect(self) -> Any:
        s = self._settings
        return self._psycopg2.connect(
            host=s["host"],
            port=s["port"],
            user=s["user"],
            dbname=s["database"],
            password=s["password"],
            connect_timeout=s["connect_timeout"],
            application_name=s["application_name"],
        )

    def acquire(self) -> Optional[Any]:
        if self._psycopg2 is None:
            return None
        conn = getattr(self._local, "conn", None)
        if conn is not None and not self._usable(conn):
            self._drop(conn)
            conn = None
        if conn is None:
            conn = self._engine.connect() if self._engine is not None else self._connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _usable(self, conn: Any) -> bool:
        if self._engine is not None:
            return not conn.closed and not conn.invalidated
        return conn.closed == 0

    def _drop(self, conn: Any) -> None:
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        try:
            conn.close()
        except Exception:
            pass
        self._local.conn = None

    def release(self, conn: Optional[Any]) -> None:
        """Rolls back what the request left open; a broken connection is replaced next time."""
        if conn is None:
            return
        try:
            if self._engine is not None:
                if conn.in_transaction():
                    conn.rollback()
            else:
                conn.rollback()  # psycopg2: no round trip when no transaction is open
        except Exception as e:
            log.warning("database connection reset after a request failed: %s", e)
            self._drop(conn)

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except Exception:
                pass
        if self._engine is not None:
            self._engine.dispose()


class Runtime:
    """What the C++ runtime calls for each request (made once, on the first request)."""

    def __init__(self, process: Any, settings: Dict[str, Any]) -> None:
        self._process = process
        self._connections = _Connections(settings)

    def call(self, request: int, native_call: Any) -> Any:
        """The results as a list, or the traceback text when process (or a file) failed."""
        files = _Files(native_call)
        conn = None
        try:
            conn = self._connections.acquire()
            results = self._process(request, files.read_file, files.write_file, conn)
            out = results if isinstance(results, list) else list(results)
            files.close()
            return out
        except BaseException:
            files.abandon()
            return traceback.format_exc().rstrip()
        finally:
            self._connections.release(conn)

    def close(self) -> None:
        self._connections.close()

"""Queue microservices on Ember's C++ runtime, with slingshot-microservice's Python API.

    from slingshot_microservice import Microservice

    def process(request, read_file, write_file, connection):
        data = read_file("in", request).read()
        write_file("out", request).write(data.upper())
        yield (request, True)

    Microservice("upper", "sys-map.example", process).start()

``start()`` blocks until SIGTERM or SIGINT (Ctrl-C), then finishes the work in
flight and returns. The broker connection, S3 transfers and publishes run in
C++ without the GIL; Python holds it only while ``process`` runs. A ``process``
that raises fails that one request: it is queued again (``max_attempts`` in
all, then dead-lettered) and the traceback goes to the log.
"""

import signal
import threading
from typing import Any, Dict, Optional

from . import _native
from ._runtime import Runtime
from .typing import CaseVariable, ProcessFn, ReadFileFn, WriteFileFn

__all__ = [
    "CaseVariable",
    "Microservice",
    "MicroserviceError",
    "ProcessFn",
    "ReadFileFn",
    "WriteFileFn",
]


class MicroserviceError(RuntimeError):
    """start() could not start, or stopped with work unfinished (the log says what)."""


class Microservice:
    """A queue microservice: consumes u64 requests, runs ``process``, routes results.

    ``name`` and ``host`` select the configuration (``{host}/{name}``; a host
    without a scheme means https). The keyword options go beyond the
    reference API; their defaults match it where it has one.

    - ``workers``: threads running ``process`` (0: the CPUs this process may use).
    - ``process_on_loop``: run ``process`` on the broker connection's thread instead: less
      CPU and latency per message, one request at a time; keep each call short (the broker
      connection waits while it runs).
    - ``prefetch``: deliveries in flight (0: twice the workers).
    - ``durable_queues``: declare queues durable and publish persistent results.
    - ``max_attempts``: attempts of one request before it is dead-lettered.
    - ``dead_letter_queue``: where invalid and exhausted requests go ("{name}.dead-letter").
    - ``temp_dir``: where staged output files live ($TMPDIR or /tmp).
    - ``shutdown_timeout``: seconds the work in flight gets after SIGTERM/SIGINT.
    - ``pass_program``: the ``pass`` program that resolves secrets.
    - ``metrics_listen``: "host:port" for a Prometheus /metrics endpoint.
    - ``publisher_confirms``: wait for the broker's confirm of every result before acking its
      request (default). False is the reference's behaviour: a broker round trip less per
      message, but results in flight are lost if the broker dies.
    """

    def __init__(
        self,
        name: str,
        host: str,
        process: ProcessFn,
        *,
        workers: int = 0,
        process_on_loop: bool = False,
        prefetch: int = 0,
        durable_queues: bool = False,
        max_attempts: int = 5,
        dead_letter_queue: Optional[str] = None,
        temp_dir: Optional[str] = None,
        shutdown_timeout: float = 30.0,
        pass_program: str = "pass",
        metrics_listen: Optional[str] = None,
        publisher_confirms: bool = True,
    ) -> None:
        if not callable(process):
            raise TypeError(f"process must be callable, got {type(process).__name__}")
        if not 0 <= prefetch <= 65535:
            raise ValueError(f"prefetch must be in 0..65535, got {prefetch}")
        if workers < 0 or max_attempts < 1 or shutdown_timeout < 0:
            raise ValueError("workers must be >= 0, max_attempts >= 1, shutdown_timeout >= 0")
        self.name = name
        self.host = host
        self._process = process
        self._native = _native.Microservice(
            name,
            host,
            lambda settings: Runtime(process, settings),
            workers,
            process_on_loop,
            prefetch,
            durable_queues,
            max_attempts,
            dead_letter_queue or "",
            temp_dir or "",
            float(shutdown_timeout),
            pass_program,
            metrics_listen or "",
            bool(publisher_confirms),
        )

    def start(self) -> None:
        """Serves until SIGTERM/SIGINT or stop(); raises MicroserviceError if it could
        not start or stopped with deliveries unfinished (they went back to the queue)."""
        # The runtime handles SIGINT/SIGTERM itself while it runs; Python's
        # handlers are put back afterwards.
        main = threading.current_thread() is threading.main_thread()
        saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
        try:
            code = self._native.start()
        finally:
            for s, handler in saved.items():
                if handler is not None:
                    signal.signal(s, handler)
            runtime = self._native.runtime
            if runtime is not None:
                runtime.close()
        if code != 0:
            raise MicroserviceError(
                f"microservice {self.name!r} failed to start or stopped with work unfinished; "
                "the log above says what and what to do"
            )

    def stop(self) -> None:
        """Thread-safe: finish the work in flight and return from start()."""
        self._native.stop()

    def stats(self) -> Dict[str, int]:
        """Counters: received, processed, failed, retried, dead_lettered, unrouted, published."""
        return self._native.stats()

    @property
    def metrics_port(self) -> int:
        """The metrics endpoint's port once start() has bound it (0 before or without one)."""
        return self._native.metrics_port

    def __repr__(self) -> str:
        return f"Microservice(name={self.name!r}, host={self.host!r})"

    # Kept for type checkers: the process function this service runs.
    @property
    def process(self) -> Any:
        return self._process

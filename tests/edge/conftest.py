"""Fixtures shared by the edge test modules (see edge.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import edge  # noqa: E402


@pytest.fixture(scope="module")
def start_server(tmp_path_factory):
    """Starts `ember serve` processes for a module; at the end each must
    still be running and drain to status 0 on SIGTERM."""
    started = []

    def start(**kw):
        s = edge.Ember(str(tmp_path_factory.mktemp("ember")), **kw).start()
        started.append(s)
        return s

    yield start
    failures = []
    for s in started:
        if s.proc.returncode is not None and getattr(s, "stopped_by_test", False):
            continue
        try:
            edge.stop_and_check(s)
        except AssertionError as e:
            failures.append(str(e))
    assert not failures, "\n".join(failures)

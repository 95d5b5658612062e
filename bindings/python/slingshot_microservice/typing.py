"""Types for editors and type checkers: ``from slingshot_microservice.typing import ...``."""

from typing import Any, BinaryIO, Callable, Iterable, Protocol, Tuple, Union

#: A result's routing value. ``True``, ``1``, ``"1"`` and ``"true"`` are four
#: different cases, as the JSON values in the service's ``out`` list are.
CaseVariable = Union[bool, int, str]


class ReadFileFn(Protocol):
    """``read_file(key, id)``: a binary reader of object ``id`` in the bucket ``key`` names."""

    def __call__(self, key: str, id: int) -> BinaryIO: ...


class WriteFileFn(Protocol):
    """``write_file(key, id)``: a binary writer staged for upload to ``s3://{bucket}/{id}``."""

    def __call__(self, key: str, id: int) -> BinaryIO: ...


#: ``process(request, read_file, write_file, connection)``: yields (or returns
#: an iterable of) ``(result_id, case)``. ``connection`` is an SQLAlchemy
#: ``Connection`` (psycopg2 underneath), or a psycopg2 connection when
#: SQLAlchemy is not installed.
ProcessFn = Callable[[int, ReadFileFn, WriteFileFn, Any], Iterable[Tuple[int, CaseVariable]]]

__all__ = ["CaseVariable", "ProcessFn", "ReadFileFn", "WriteFileFn"]

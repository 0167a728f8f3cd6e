"""Run one database job synchronously (the CLI, start-up code), with the runner's contract.

Apart from runner.py so that a CLI command does not import Twisted.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from sqlalchemy.engine import Connection, Engine, Result

from mailgosend.db.engine import connect_for_write

__all__ = ["call_job", "run_sync"]

_T = TypeVar("_T")


def call_job(
    conn: Connection, fn: Callable[..., _T], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> _T:
    """Call ``fn(conn, *args, **kwargs)``; a live Result is refused (its connection closes)."""
    result = fn(conn, *args, **kwargs)
    if isinstance(result, Result):
        # Refused rather than returned: it would be read after its connection was closed.
        raise TypeError(
            f"{getattr(fn, '__qualname__', fn)!r} returned a live Result; "
            "return plain data instead (.all(), .one(), .scalar(), ...)"
        )
    return result


def run_sync(
    engine: Engine, fn: Callable[..., _T], *args: Any, write: bool, **kwargs: Any
) -> _T:
    """Run one job synchronously, for the CLI and startup code that has no running reactor.

    Same contract as the runner: a write runs in its own (BEGIN IMMEDIATE on SQLite) transaction
    that is committed before this returns; a read is rolled back.
    """
    if write:
        with connect_for_write(engine) as conn, conn.begin():
            return call_job(conn, fn, args, kwargs)
    with engine.connect() as conn:
        return call_job(conn, fn, args, kwargs)

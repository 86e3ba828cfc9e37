"""Helpers of the property tests: a hang bound per case and hostile-input strategies."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from dormant.errors import DormantError

T = TypeVar("T")

#: Small budgets: these run in the test suite on every change (the fuzz harness under
#: fuzz/ runs the same properties with large budgets). No ``deadline``: a slow case on a
#: loaded machine is not a failure; a hang is (see :func:`bounded`).
#: ``DORMANT_PROPERTY_EXAMPLES=N`` raises the budget (and draws new cases each run).
_BUDGET = int(os.environ.get("DORMANT_PROPERTY_EXAMPLES", "0"))
SUITE = settings(
    max_examples=_BUDGET or 40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=not _BUDGET,
    database=None,
)
#: Seconds one case may run before it counts as a hang.
HANG_SECONDS = 30.0


class Hang(BaseException):
    """A case that ran past :data:`HANG_SECONDS` (BaseException: no ``except Exception``
    in the code under test can swallow it)."""


@contextmanager
def bounded(seconds: float = HANG_SECONDS) -> Iterator[None]:
    """Raise :class:`Hang` in the main thread when the block runs longer than ``seconds``."""

    def on_alarm(signum: int, frame: Any) -> None:
        raise Hang(f"a case ran for more than {seconds:g} s (a hang, not a slow machine)")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def result_or_dormant_error(fn: Callable[[], T]) -> T | DormantError:
    """``fn()``'s result, or the :class:`DormantError` it raised; anything else propagates."""
    with bounded():
        try:
            return fn()
        except DormantError as exc:
            assert str(exc).strip(), "a DormantError without a message"
            return exc


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=12,
)


def _deep(n: int) -> str:
    return "[" * n + "]" * n


#: Text that the standard library's json cannot read although it is "JSON-like".
json_breakers = st.one_of(
    st.integers(1_000, 300_000).map(_deep),
    st.integers(4_301, 6_000).map(lambda n: '{"id": ' + "7" * n + "}"),
    st.sampled_from(["NaN", "-Infinity", '{"a": 1}{"b": 2}', '{"\\ud800": 1}', "\ufeff{}", "{"]),
)


def record_lines(fields: tuple[str, ...]) -> st.SearchStrategy[bytes]:
    """One JSONL line: mostly records with the given fields (values of any JSON type), else
    JSON of any shape, text json cannot read, or raw bytes."""
    record = st.fixed_dictionaries(
        {f: json_values for f in fields}, optional={"extra": json_values}
    )
    return st.one_of(
        record.map(lambda r: json.dumps(r).encode()),
        record.map(lambda r: json.dumps(r, ensure_ascii=False).encode("utf-8")),
        json_values.map(lambda v: json.dumps(v).encode()),
        json_breakers.map(lambda s: s.encode("utf-8", "surrogatepass")),
        st.binary(max_size=40),
    )

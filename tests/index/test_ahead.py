"""The build's engine thread: it starts at once, keeps order, hands errors on, and stops."""

from __future__ import annotations

import threading

import pytest

from imgret.index.build import _Ahead
from imgret.index.engines import Analysed


def _batches(started: threading.Event, closed: threading.Event, n: int, fail_at: int = -1):
    started.set()
    try:
        for i in range(n):
            if i == fail_at:
                raise RuntimeError(f"batch {i} failed")
            yield Analysed(failed=[(f"{i}.jpg", "")])
    finally:
        closed.set()


def test_the_engine_starts_before_the_first_batch_is_asked_for_and_keeps_order():
    started, closed = threading.Event(), threading.Event()
    with _Ahead(_batches(started, closed, 5)) as ahead:
        assert started.wait(5)  # the models load while the caller loads its own
        paths = [batch.failed[0][0] for batch in ahead]
    assert paths == [f"{i}.jpg" for i in range(5)] and closed.wait(5)


def test_an_engine_error_is_raised_where_its_batch_would_come():
    started, closed = threading.Event(), threading.Event()
    got = []
    with (
        pytest.raises(RuntimeError, match="batch 2 failed"),
        _Ahead(_batches(started, closed, 5, fail_at=2)) as ahead,
    ):
        for batch in ahead:
            got.append(batch.failed[0][0])
    assert got == ["0.jpg", "1.jpg"] and closed.wait(5)


def test_leaving_early_stops_the_engine_and_closes_it():
    started, closed = threading.Event(), threading.Event()
    with _Ahead(_batches(started, closed, 10_000)) as ahead:
        next(iter(ahead))
    assert closed.wait(5)  # not all 10,000 made: the thread stopped at its next batch


def test_a_build_that_fails_before_using_the_engine_still_stops_it():
    started, closed = threading.Event(), threading.Event()
    with pytest.raises(ValueError), _Ahead(_batches(started, closed, 10_000)):
        raise ValueError("the text models could not load")
    assert closed.wait(5)

"""Prefetching keeps order, bounds memory, surfaces errors, and stops its workers."""

from __future__ import annotations

import threading
import time

import pytest

from harness import run_tap
from tap_callcenter.concurrency import PriorityPool, map_in_order, prefetch_in_order
from tests.conftest import SPRING, thulium_config


def test_windows_come_out_in_order_with_all_their_records() -> None:
    def fetch(n: int):
        time.sleep(0.01 * (5 - n))  # later windows finish first
        return [(n, i) for i in range(n * 700)]

    out = [(item, list(records)) for item, records in prefetch_in_order(list(range(6)), fetch, 3)]
    assert [item for item, _ in out] == list(range(6))
    assert all(records == [(n, i) for i in range(n * 700)] for n, records in out)


#: The README's promise, written here rather than imported from the code under test:
#: records are handed over in chunks of 200; the window being emitted holds at most 4,
#: the windows after it share 32.
CHUNK = 200
QUEUE_CHUNKS = 4
READ_AHEAD_CHUNKS = 32


def test_workers_do_not_run_ahead_unbounded() -> None:
    produced = {"n": 0}

    def fetch(_: int):
        for i in range(100_000):
            produced["n"] += 1
            yield i

    pairs = prefetch_in_order([0, 1, 2], fetch, 2)
    try:
        _, first = next(pairs)
        next(first)
        # wait until the workers stop producing (blocked on full buffers), not a fixed
        # time: on a loaded machine they may not have filled them yet
        deadline, last = time.monotonic() + 10, -1
        while produced["n"] != last and time.monotonic() < deadline:
            last = produced["n"]
            time.sleep(0.25)
        # the current window: QUEUE_CHUNKS (+1 being filled, +1 taken); the next one:
        # the shared READ_AHEAD_CHUNKS (+1 being filled)
        assert produced["n"] <= (QUEUE_CHUNKS + 2 + READ_AHEAD_CHUNKS + 1) * CHUNK, produced
        assert produced["n"] > CHUNK, "the workers did not run ahead at all"
    finally:
        pairs.close()  # stops the workers, also when an assertion failed


def test_windows_read_ahead_share_one_room() -> None:
    """A window that pages sequentially may read far ahead when the windows beside it
    have nothing to read: the room is shared, not a fixed few chunks per worker."""
    produced = {n: 0 for n in range(4)}

    def fetch(n: int):
        if n != 1:  # windows 0, 2, 3: one record each
            produced[n] += 1
            yield n
            return
        while True:
            produced[n] += 1
            yield n

    pairs = prefetch_in_order(list(range(4)), fetch, 4)
    try:
        _, first = next(pairs)  # window 0 is current; window 1 reads ahead alone
        deadline, last = time.monotonic() + 10, -1
        while produced[1] != last and time.monotonic() < deadline:
            last = produced[1]
            time.sleep(0.25)
        assert READ_AHEAD_CHUNKS * CHUNK <= produced[1] <= (READ_AHEAD_CHUNKS + 1) * CHUNK
        assert list(first) == [0]
    finally:
        pairs.close()


def test_an_error_surfaces_at_its_window_after_earlier_windows() -> None:
    def fetch(n: int):
        if n == 2:
            raise RuntimeError("window 2 failed")
        return [n]

    seen = []
    with pytest.raises(RuntimeError, match="window 2 failed"):
        for item, records in prefetch_in_order([0, 1, 2, 3], fetch, 3):
            seen.append((item, list(records)))
    assert seen == [(0, [0]), (1, [1])]


def test_closing_early_stops_the_workers() -> None:
    before = threading.active_count()

    def fetch(_: int):
        yield from range(10**9)

    pairs = prefetch_in_order([0, 1, 2, 3], fetch, 3)
    _, records = next(pairs)
    next(records)
    pairs.close()
    time.sleep(0.3)
    assert threading.active_count() <= before


def test_map_in_order_keeps_order() -> None:
    pool = PriorityPool(4, "test")
    try:
        assert list(
            map_in_order(
                lambda x: (time.sleep(0.01 * (5 - x)), x)[1],
                list(range(6)),
                4,
                lambda fn, arg: pool.submit(0, fn, arg),
            )
        ) == list(range(6))
    finally:
        pool.shutdown()


def test_the_shared_pool_runs_the_earliest_window_first() -> None:
    """The window being emitted must not wait behind pages read ahead for later windows:
    with its one thread busy, calls queued for windows 3, 2 and 1 run 1, 2, 3 (each
    window's own calls in the order they came)."""
    pool = PriorityPool(1, "test")
    started = threading.Event()
    release = threading.Event()
    ran: list[tuple[int, int]] = []

    def block(_: None) -> None:
        started.set()
        release.wait(10)

    first = pool.submit(0, block, None)
    assert started.wait(10)
    futures = [
        pool.submit(window, ran.append, (window, page)) for window in (3, 2, 1) for page in range(3)
    ]
    release.set()
    for future in (first, *futures):
        future.result(timeout=10)
    assert ran == [(window, page) for window in (1, 2, 3) for page in range(3)]
    pool.shutdown()


def test_the_shared_pool_hands_errors_back_and_cancels_what_never_started() -> None:
    pool = PriorityPool(1, "test")
    release = threading.Event()

    def fail(_: None) -> None:
        release.wait(10)
        raise ValueError("boom")

    failing = pool.submit(0, fail, None)
    queued = pool.submit(1, time.sleep, 0)
    pool_shut = threading.Thread(target=pool.shutdown)
    pool_shut.start()
    deadline = time.monotonic() + 10
    while not queued.cancelled() and time.monotonic() < deadline:
        time.sleep(0.01)  # shutdown cancels what waits, while the first call still runs
    release.set()
    pool_shut.join(10)
    assert not pool_shut.is_alive()
    with pytest.raises(ValueError, match="boom"):
        failing.result(timeout=10)
    assert queued.cancelled()
    with pytest.raises(RuntimeError):
        pool.submit(0, time.sleep, 0)


def test_concurrent_and_sequential_runs_emit_the_same_messages(thulium_emulator) -> None:
    start, end = SPRING
    runs = [
        run_tap(thulium_config(thulium_emulator, start, end, max_concurrency=n)) for n in (1, 4)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    sequential, concurrent = (
        [
            {k: v for k, v in m.items() if k != "time_extracted"}
            for m in run.messages
            if m["type"] in ("RECORD", "STATE")
        ]
        for run in runs
    )
    assert len(concurrent) > 1000
    assert concurrent == sequential

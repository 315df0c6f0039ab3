"""Overlapping network waits without giving up order: the one place threads are used.

A sync is dominated by round trips. :func:`prefetch_in_order` fetches the next windows
while the current one is being emitted, but hands their records over strictly in window
order, through a bounded hand-over, so:

- the output (records, de-duplication, STATE after each window) is exactly what a
  sequential run produces: a window's bookmark is finalized only after all its records
  were emitted, and never for a later window first;
- memory is bounded by ``(QUEUE_CHUNKS + READ_AHEAD_CHUNKS) x CHUNK`` records (the
  current window's chunks and the room the later windows share), plus a chunk being
  filled per worker and the one being emitted, whatever the number of records or the
  size of a window;
- a failure in a worker is raised in the consumer, at the point of that window, after
  the earlier windows were emitted and finalized; the remaining workers are stopped.

:func:`map_in_order` runs independent calls (e.g. the pages of one Thulium window once
its total is known) on a small pool and yields their results in submission order; the
windows of one pass share one pool (:class:`PriorityPool`), so a pass runs
``max_concurrency`` page threads, not that many per window (at zero latency the
threads competing for the GIL, not the requests, were what concurrency cost), and the
window being emitted is served first.
"""

from __future__ import annotations

import collections
import itertools
import queue
import threading
import typing as t
from concurrent.futures import Future, ThreadPoolExecutor

if t.TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Iterator, Sequence

T = t.TypeVar("T")
R = t.TypeVar("R")

#: Records per hand-over between a worker and the consumer.
CHUNK = 200
#: Chunks the window being emitted may hold ahead of the consumer.
QUEUE_CHUNKS = 4
#: Chunks the windows after it share (6,400 records: what 8 workers of 4 chunks each
#: could hold before, when each worker had its own fixed share).
READ_AHEAD_CHUNKS = 32

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch_in_order(
    items: Sequence[T],
    fetch: Callable[[T], Iterable[R]],
    workers: int,
) -> Generator[tuple[T, Iterator[R]], None, None]:
    """``(item, records)`` in the order of ``items``, with up to ``workers`` fetching.

    Each ``records`` iterator must be consumed before the next pair is requested (the
    engine does: it emits a window, then finalizes it). With ``workers <= 1`` nothing
    runs in a thread: ``fetch`` is called lazily, exactly as in a plain loop.
    """
    if workers <= 1 or len(items) <= 1:
        for item in items:
            yield item, iter(fetch(item))
        return
    hand_over = _ReadAhead()
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="window")
    try:
        submitted = 0
        for index in range(len(items)):
            while submitted < len(items) and submitted <= index + workers - 1:
                hand_over.open(submitted)
                executor.submit(_pump, fetch, items[submitted], submitted, hand_over)
                submitted += 1
            yield items[index], _drain(hand_over, index)
            hand_over.advance()
    finally:
        hand_over.stop()  # workers waiting for room give up
        executor.shutdown(wait=True, cancel_futures=True)


class _ReadAhead:
    """The hand-over from window workers to the consumer, bounded in total.

    The window being consumed may hold ``QUEUE_CHUNKS`` chunks; the windows after it
    share ``READ_AHEAD_CHUNKS``, whichever reads fastest. A fixed share per worker
    (4 chunks each before) capped every window at a few pages ahead, so a provider
    that pages a window sequentially (Conpeek, ECSS) hardly overlapped its windows;
    the same total shared reads the next windows deeper (Conpeek, 30,000 records at
    20 ms: 2.45 -> 1.7 s). Memory stays bounded whatever the windows hold.
    """

    def __init__(self) -> None:
        lock = threading.Lock()
        self._arrived = threading.Condition(lock)  # the consumer waits on it
        self._room = threading.Condition(lock)  # workers wait on it
        self._items: dict[int, collections.deque[t.Any]] = {}
        self._held: dict[int, int] = {}
        self._current = 0
        self._ahead = 0  # chunks held by the windows after the current one
        self._waiting = 0  # workers waiting for room
        self._stopped = False

    def open(self, index: int) -> None:
        with self._room:
            self._items[index] = collections.deque()
            self._held[index] = 0

    def put(self, index: int, item: t.Any) -> bool:
        """Hand ``item`` over (a chunk waits for room; the end or a failure does not);
        False once the consumer has stopped (or left the window)."""
        chunk = isinstance(item, list)
        with self._room:
            while chunk and not self._stopped and not self._has_room(index):
                self._waiting += 1
                self._room.wait()
                self._waiting -= 1
            if self._stopped or index not in self._items:
                return False
            self._items[index].append(item)
            if chunk:
                self._held[index] += 1
                self._ahead += index != self._current
            if index == self._current:
                self._arrived.notify()
            return True

    def _has_room(self, index: int) -> bool:
        if index == self._current:
            return self._held[index] < QUEUE_CHUNKS
        return self._ahead < READ_AHEAD_CHUNKS

    def get(self, index: int) -> t.Any:
        """The next item of window ``index`` (the current one), waiting for it."""
        with self._arrived:
            items = self._items[index]
            while not items:
                self._arrived.wait()
            item = items.popleft()
            if isinstance(item, list):
                self._held[index] -= 1
                if self._waiting:
                    self._room.notify_all()
            return item

    def advance(self) -> None:
        """The consumer is done with the current window: the next one becomes current,
        and what it holds no longer counts against the windows after it."""
        with self._room:
            self._items.pop(self._current, None)
            self._held.pop(self._current, None)
            self._current += 1
            self._ahead -= self._held.get(self._current, 0)
            if self._waiting:
                self._room.notify_all()

    def stop(self) -> None:
        with self._room:
            self._stopped = True
            self._items.clear()
            self._room.notify_all()


def _pump(fetch: Callable[[T], Iterable[R]], item: T, index: int, hand_over: _ReadAhead) -> None:
    """A worker: ``fetch(item)``'s records handed over in chunks, then the end (or
    the failure, raised in the consumer)."""
    records: Iterator[R] | None = None
    try:
        records = iter(fetch(item))
        # chunks cut in C (islice), not an append and a length test per record
        while chunk := list(itertools.islice(records, CHUNK)):
            if not hand_over.put(index, chunk):
                return
        hand_over.put(index, _DONE)
    except BaseException as error:  # handed to the consumer, raised there
        hand_over.put(index, _Failure(error))
    finally:
        close = getattr(records, "close", None)
        if close is not None:  # finish the fetch now (its logs), not at exit
            close()


def _drain(hand_over: _ReadAhead, index: int) -> Iterator[R]:
    """The consumer's side: one window's records, as the worker handed them over."""
    while True:
        item = hand_over.get(index)
        if item is _DONE:
            return
        if isinstance(item, _Failure):
            raise item.error
        yield from item


def map_in_order(
    fn: Callable[[T], R],
    args: Sequence[T],
    workers: int,
    submit: Callable[[Callable[[T], R], T], Future[R]],
) -> Generator[R, None, None]:
    """``fn(arg)`` for each arg, up to ``workers`` at a time, results in order.

    The calls run through ``submit`` (onto the :class:`PriorityPool` the windows of a
    pass share, which is left running). At most ``workers`` results are computed ahead
    of the consumer, so memory stays bounded however many calls there are; closing the
    generator cancels the calls not yet started.
    """
    if workers <= 1 or len(args) <= 1:
        for arg in args:
            yield fn(arg)
        return
    pending: collections.deque[Future[R]] = collections.deque()
    remaining = iter(args)
    try:
        for arg in itertools.islice(remaining, workers):
            pending.append(submit(fn, arg))
        while pending:
            result = pending.popleft().result()
            for arg in itertools.islice(remaining, 1):
                pending.append(submit(fn, arg))
            yield result
    finally:
        for future in pending:
            future.cancel()


class PriorityPool:
    """Threads shared by the windows of a pass that run the most urgent call first:
    the lowest ``priority`` (the window the output waits on), then in submission order.

    A first-come pool let calls for windows read ahead delay the pages of the window
    being emitted (measured: 30,000 records in 7 windows at 20 ms, 1.63 s; see
    docs/benchmarks.md). Threads start as calls arrive, up to ``workers``.
    """

    _STOP = (1,)  # sorts after every call's (0, priority)

    def __init__(self, workers: int, name: str) -> None:
        self.workers = workers
        self.name = name
        self._calls: queue.PriorityQueue[tuple[t.Any, ...]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, priority: t.Any, fn: Callable[[T], R], arg: T) -> Future[R]:
        """Run ``fn(arg)`` on the pool; calls of a lower ``priority`` go first."""
        future: Future[R] = Future()
        with self._lock:
            if self._closed:
                msg = "the pool is shut down"
                raise RuntimeError(msg)
            self._calls.put(((0, priority), next(self._order), future, fn, arg))
            if len(self._threads) < self.workers:
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}_{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
        return future

    def _work(self) -> None:
        while True:
            rank, _, future, fn, arg = self._calls.get()
            if rank == self._STOP:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(arg)
            except BaseException as error:  # handed to the caller, raised there
                future.set_exception(error)
            else:
                future.set_result(result)

    def shutdown(self) -> None:
        """Cancel the calls not started; wait for running ones (bounded in time by the
        request timeout and retries; a stop signal ends the process without waiting)."""
        with self._lock:
            self._closed = True
            while True:
                try:
                    _, _, future, _, _ = self._calls.get_nowait()
                except queue.Empty:
                    break
                future.cancel()
            for _ in self._threads:
                self._calls.put((self._STOP, next(self._order), None, None, None))
        for thread in self._threads:
            thread.join()

"""Seeded record stores, the part every provider shares: periods and instants, a local
wall clock, uniform draws over the periods, and lists kept sorted by an integer key.

A provider's data is a list of compact records sorted by ``key`` (local or UTC seconds
scaled, plus a sequence number) with the keys alongside, so a date range is two
``bisect`` calls: a page costs the same with 1,000,000 records.
"""

from __future__ import annotations

import gc
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Protocol, TypeVar
from zoneinfo import ZoneInfo

from emulator.base import UtcRange, parse_instant

#: Both DST edges of Europe/Warsaw in 2024 (spring forward 03-31 01:00Z, fall back 10-27 01:00Z).
DEFAULT_PERIODS: tuple[tuple[str, str], ...] = (
    ("2024-03-30T00:00:00+00:00", "2024-04-01T00:00:00+00:00"),
    ("2024-10-26T00:00:00+00:00", "2024-10-28T00:00:00+00:00"),
)

#: Sort keys of the providers' stores are ``local_seconds * KEY_SCALE + sequence``.
KEY_SCALE = 10**9

_EPOCH = datetime(1970, 1, 1)


def utc_seconds(value: datetime | str) -> int:
    """An aware datetime or an ISO string with ``Z`` or an offset -> UTC epoch seconds
    (configured periods, inserted ranges); a naive time raises ``ValueError``."""
    seconds = parse_instant(value)
    if seconds is None:
        raise ValueError("an instant is required here, not None")
    return seconds


def late_arrival_range(
    periods: Sequence[tuple[int, int]], at_utc: UtcRange | None
) -> tuple[int, int]:
    """UTC ``[start, end)`` for records inserted by a test: ``at_utc``, or by default the
    last hour of the last period."""
    if at_utc is None:
        end = max(e for _, e in periods)
        return end - 3600, end
    start, stop = utc_seconds(at_utc[0]), utc_seconds(at_utc[1])
    if stop <= start:
        raise ValueError("at_utc_range must be a non-empty (start, end) range")
    return start, stop


@contextmanager
def gc_paused() -> Iterator[None]:
    """Building millions of small objects: the cyclic GC would rescan them again and
    again meanwhile (40% of the time), and none of them is garbage yet."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class PeriodSampler:
    """Uniform UTC seconds over several ``[start, end)`` periods, one ``rand()`` per draw:
    the same seed draws the same instants in every provider."""

    def __init__(self, periods: Iterable[tuple[int, int]]) -> None:
        self._ends: list[int] = []
        self._cumulative: list[int] = []
        total = 0
        for start, end in periods:
            if end > start:
                total += end - start
                self._ends.append(end)
                self._cumulative.append(total)
        self.total = total

    def draw(self, rand: Callable[[], float]) -> tuple[int, int]:
        """One instant and the end of the period it is in (``total`` must be > 0)."""
        r = int(rand() * self.total)
        i = bisect_left(self._cumulative, r + 1)
        end = self._ends[i]
        return end - (self._cumulative[i] - r), end

    def draws(self, rand: Callable[[], float], n: int) -> list[int]:
        """``n`` instants (none when the periods are empty)."""
        if self.total <= 0:
            return []
        total, cumulative, ends = self.total, self._cumulative, self._ends
        out: list[int] = []
        for _ in range(n):
            r = int(rand() * total)
            i = bisect_left(cumulative, r + 1)
            out.append(ends[i] - (cumulative[i] - r))
        return out


class Keyed(Protocol):
    """A stored record: ``key`` orders the store."""

    key: int


K = TypeVar("K", bound=Keyed)


def merge_sorted(items: list[K], keys: list[int], new: Sequence[K]) -> None:
    """Add ``new`` to ``items`` (sorted by ``key``, with ``keys`` alongside): a re-sort for
    a large batch or an empty store, one ``bisect`` insert each otherwise."""
    if len(new) > 64 or not items:
        items.extend(new)
        items.sort(key=lambda item: item.key)
        keys[:] = [item.key for item in items]
        return
    for item in new:
        i = bisect_left(keys, item.key)
        keys.insert(i, item.key)
        items.insert(i, item)


def newest_insert_range(
    keys: Sequence[int], lo: int | None, hi: int | None, fallback_hi: int
) -> tuple[int, int]:
    """Local-seconds range for records inserted "while a client pages": the last 30
    minutes of the requested range ``[lo, hi]`` (or of the data when unbounded), and no
    older than the newest stored record in it, so the new records sort first in a
    newest-first list and push every later page down."""
    if hi is None:
        hi = keys[-1] // KEY_SCALE if keys else fallback_hi
    low = max(hi - 1799, lo if lo is not None else hi - 1799)
    newest = bisect_left(keys, (hi + 1) * KEY_SCALE) - 1
    if newest >= 0:
        low = min(hi, max(low, keys[newest] // KEY_SCALE))
    return low, hi


class LocalClock:
    """UTC epoch seconds <-> naive local wall seconds for one IANA zone.

    Offsets are cached per 15-minute UTC bucket (exact: a bucket containing a
    transition is computed per instant), which keeps a million conversions cheap.
    """

    _BUCKET = 900

    def __init__(self, tz_name: str) -> None:
        self.tz = ZoneInfo(tz_name)
        self._cache: dict[int, int | None] = {}

    def offset(self, ts: int) -> int:
        """UTC offset in seconds at a UTC instant."""
        bucket = ts // self._BUCKET
        try:
            cached = self._cache[bucket]
        except KeyError:
            first = self._exact(bucket * self._BUCKET)
            last = self._exact(bucket * self._BUCKET + self._BUCKET - 1)
            cached = self._cache[bucket] = first if first == last else None
        return cached if cached is not None else self._exact(ts)

    def _exact(self, ts: int) -> int:
        off = datetime.fromtimestamp(ts, self.tz).utcoffset()
        return int(off.total_seconds()) if off is not None else 0

    def local(self, ts: int) -> int:
        """Naive local wall seconds of a UTC instant."""
        return ts + self.offset(ts)

    def first_occurrence_utc(self, local: int) -> int:
        """The documented client convention: a repeated wall time is its FIRST occurrence;
        a skipped one moves forward by the gap."""
        naive = _EPOCH + timedelta(seconds=local)
        return int(naive.replace(tzinfo=self.tz, fold=0).timestamp())

    def transitions(self, start: int, end: int) -> list[int]:
        """UTC instants in [start, end) at which the offset changes."""
        found: list[int] = []
        step = 3600
        ts = start
        prev = self._exact(ts)
        while ts < end:
            nxt = min(ts + step, end)
            cur = self._exact(nxt)
            if cur != prev:
                lo, hi = ts, nxt  # offset(lo) == prev, offset(hi) != prev
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if self._exact(mid) == prev:
                        lo = mid
                    else:
                        hi = mid
                if hi < end:
                    found.append(hi)
                prev = cur
            ts = nxt
        return found

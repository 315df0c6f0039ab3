"""Local wall-clock time <-> UTC: the one place where time zones are handled.

Thulium and ECSS send and expect local wall-clock times without an offset. Two rules make
the conversion total and deterministic (the contract's documented convention):

- a wall time skipped by a spring-forward change moves forward by the gap
  (02:30 on a day that jumps 02:00 -> 03:00 means 03:30);
- a wall time repeated by a fall-back change takes its first occurrence.

Both rules are exactly what ``datetime.replace(tzinfo=zone, fold=0)`` means (PEP 495), so
the conversion is a single ``astimezone`` call. Results are cached per distinct wall-clock
string because call records repeat their minute (and often second) many times.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = dt.timezone.utc

#: Wall-clock formats the providers use, most precise first.
_LOCAL_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d")

#: Largest shift a daylight-saving change can make (a few zones once had 2 h); the wall
#: range search looks this far around a window bound.
_MAX_SHIFT = dt.timedelta(hours=3)


class UnknownTimezoneError(ValueError):
    """The configured time zone is not an IANA name known to this machine."""


def load_zone(name: str) -> ZoneInfo:
    """Return the IANA zone ``name`` or raise a clear error."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        msg = f"unknown time zone {name!r}: use an IANA name such as 'Europe/Warsaw'"
        raise UnknownTimezoneError(msg) from exc


def format_utc(value: dt.datetime) -> str:
    """ISO 8601 in UTC with an explicit offset: ``2024-03-31T00:30:00+00:00``."""
    return value.astimezone(UTC).isoformat()


def parse_utc(value: str) -> dt.datetime:
    """Parse an ISO 8601 instant; a value without an offset is taken as UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    result = dt.datetime.fromisoformat(text)
    return result.replace(tzinfo=UTC) if result.tzinfo is None else result.astimezone(UTC)


#: The providers' usual shapes (``2024-05-06 10:12[:33]``, ECSS with slashes), read
#: without ``strptime`` (five times slower); anything else takes the formats below.
_WALL_TEXT = re.compile(r"(\d{4})([-/])(\d\d)\2(\d\d) (\d\d):(\d\d)(?::(\d\d))?")


def parse_wall(value: str) -> dt.datetime:
    """Parse a provider's wall-clock string into a naive datetime."""
    match = _WALL_TEXT.fullmatch(value)
    if match:
        year, _, month, day, hour, minute, second = match.groups()
        try:
            return dt.datetime(
                int(year), int(month), int(day), int(hour), int(minute), int(second or 0)
            )
        except ValueError:
            pass  # the formats below say what is wrong in the same words as before
    for fmt in _LOCAL_FORMATS:
        try:
            return dt.datetime.strptime(value, fmt)
        except ValueError:
            continue
    msg = f"unrecognised date-time {value!r}"
    raise ValueError(msg)


#: Wall-clock texts whose conversion is remembered. Pages mostly arrive in time order, so the
#: minutes being converted at any moment are a few hundred at most; a cache as large as a
#: month of minutes (43,200) held ~10 MiB more for a million-call window than for 30k calls.
CONVERSIONS_CACHED = 1024


class LocalClock:
    """Converts between one zone's wall-clock times and UTC instants."""

    def __init__(self, zone_name: str) -> None:
        self.zone = load_zone(zone_name)
        self._cached_iso = lru_cache(maxsize=CONVERSIONS_CACHED)(self._wall_text_to_iso)

    def to_utc(self, wall: dt.datetime) -> dt.datetime:
        """UTC instant of a naive wall-clock time (skipped -> forward, repeated -> first)."""
        return wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)

    def to_wall(self, instant: dt.datetime) -> dt.datetime:
        """Naive wall-clock time shown by this zone at ``instant``."""
        return instant.astimezone(self.zone).replace(tzinfo=None, fold=0)

    def wall_text_to_utc_iso(self, text: str | None) -> str | None:
        """Provider wall-clock string -> UTC ISO string; empty or missing -> None.

        Raises ``ValueError`` for text that is no date-time at all.
        """
        if not text:
            return None
        if len(text) == 19 and text[16] == ":" and "00" <= text[17:] <= "59":
            # ``… HH:MM:SS``: offsets are whole minutes, so the minute's conversion
            # (cached: minutes repeat, seconds rarely do) carries its seconds along
            minute = self._cached_iso(text[:17] + "00")
            if minute[17:19] == "00" and text[17:].isdigit():
                return minute[:17] + text[17:] + minute[19:]
        return self._cached_iso(text)

    def _wall_text_to_iso(self, text: str) -> str:
        try:
            return format_utc(self.to_utc(parse_wall(text)))
        except ValueError:
            # an ISO 8601 value: honour its offset if it has one, else it is wall time
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            return format_utc(value if value.tzinfo else self.to_utc(value))

    def wall_range(
        self,
        start: dt.datetime,
        end: dt.datetime,
        resolution: dt.timedelta = dt.timedelta(seconds=1),
    ) -> tuple[dt.datetime, dt.datetime] | None:
        """Inclusive wall-clock bounds ``[lo, hi]`` of the UTC window ``[start, end)``,
        or None when no wall time converts into the window.

        ``lo`` is the earliest and ``hi`` the latest wall time (at ``resolution``) whose
        conversion falls in the window. Because ``to_utc`` is monotone non-decreasing,
        each bound is found by a short bisection near the naive answer; this covers the
        repeated autumn hour (a window ending inside its second occurrence must still
        ask for the whole hour, since those records convert to the first occurrence)
        and the spring gap. A server filtering on this wall range returns a superset
        of the window's records, never a subset. A window lying inside the second
        occurrence of a repeated hour has no wall time of its own (those times convert
        to the first occurrence): None, so that no inverted range is ever sent.
        """
        lo = self._first_wall_at_or_after(start, resolution)
        hi = self._first_wall_at_or_after(end, resolution) - resolution
        return (lo, hi) if lo <= hi else None

    def repeated_shift(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        """How much earlier than their true instant the records of ``[start, end)`` may
        be stamped: the length of a repeated (autumn) hour whose second occurrence
        overlaps the range, else zero. A wall time there converts to its first
        occurrence (the contract's convention), so a re-read meant to reach back to
        ``start`` must reach this much further."""
        shift = dt.timedelta(0)
        step = dt.timedelta(minutes=15)  # shorter than any repeated interval in tzdata
        instant = start
        while instant < end:
            shift = max(shift, instant - self.to_utc(self.to_wall(instant)))
            instant += step
        last = end - dt.timedelta(microseconds=1)
        if last >= start:
            shift = max(shift, last - self.to_utc(self.to_wall(last)))
        return shift

    def _first_wall_at_or_after(self, instant: dt.datetime, step: dt.timedelta) -> dt.datetime:
        """Smallest wall time (multiple of ``step``) whose planning instant is >= ``instant``."""
        naive = self.to_wall(instant)
        low = _floor(naive - _MAX_SHIFT, step)  # plans to < instant
        high = _ceil(naive + _MAX_SHIFT, step)  # plans to >= instant
        while high - low > step:
            mid = low + _floor_delta((high - low) / 2, step)
            if self.plan_utc(mid) >= instant:
                high = mid
            else:
                low = mid
        return high

    def plan_utc(self, wall: dt.datetime) -> dt.datetime:
        """``to_utc``, except that a wall time skipped by a spring jump maps to the
        instant of the jump: a non-decreasing function of wall time, which the bounds
        search needs. (``to_utc`` moves 02:59 forward to 01:59Z but 03:00 is 01:00Z, so
        it is not monotone inside the gap; real servers never show gap times.)"""
        aware = wall.replace(tzinfo=self.zone, fold=0)
        instant = aware.astimezone(UTC)
        if instant.astimezone(self.zone).replace(tzinfo=None) == wall:
            return instant
        # skipped: the jump lies between the two readings of this wall time; find the
        # first whole second whose wall clock is past ``wall``
        readings = (instant, wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC))
        low, high = (int(r.timestamp()) for r in sorted(readings))
        while high - low > 1:
            mid = (low + high) // 2
            if self.to_wall(dt.datetime.fromtimestamp(mid, UTC)) > wall:
                high = mid
            else:
                low = mid
        return dt.datetime.fromtimestamp(high, UTC)


def _floor_delta(delta: dt.timedelta, step: dt.timedelta) -> dt.timedelta:
    return step * max(1, delta // step)


def _floor(value: dt.datetime, step: dt.timedelta) -> dt.datetime:
    epoch = dt.datetime(1970, 1, 1)
    return epoch + ((value - epoch) // step) * step


def _ceil(value: dt.datetime, step: dt.timedelta) -> dt.datetime:
    floored = _floor(value, step)
    return floored if floored == value else floored + step

"""Local wall time <-> UTC, including both daylight-saving edges."""

from __future__ import annotations

import datetime as dt
import tracemalloc

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tap_callcenter.timeconv import UTC, LocalClock, UnknownTimezoneError, format_utc, parse_utc

WARSAW = LocalClock("Europe/Warsaw")
SECOND = dt.timedelta(seconds=1)


@pytest.mark.parametrize(
    ("wall", "expected"),
    [
        ("2024-03-31 01:59:59", "2024-03-31T00:59:59+00:00"),  # last CET second
        ("2024-03-31 02:30:00", "2024-03-31T01:30:00+00:00"),  # skipped: moves forward by 1 h
        ("2024-03-31 03:00", "2024-03-31T01:00:00+00:00"),  # first CEST minute
        ("2024-10-27 02:30", "2024-10-27T00:30:00+00:00"),  # repeated: first occurrence
        ("2024-10-27 03:00:00", "2024-10-27T02:00:00+00:00"),
        ("2024-07-07 11:08", "2024-07-07T09:08:00+00:00"),  # the docs' example, summer
        ("2024/12/10 14:20:50", "2024-12-10T13:20:50+00:00"),  # ECSS format, winter
    ],
)
def test_wall_to_utc_conventions(wall: str, expected: str) -> None:
    assert WARSAW.wall_text_to_utc_iso(wall) == expected


def test_empty_wall_time_is_null() -> None:
    assert WARSAW.wall_text_to_utc_iso("") is None
    assert WARSAW.wall_text_to_utc_iso(None) is None


def test_unknown_zone_is_a_clear_error() -> None:
    with pytest.raises(UnknownTimezoneError, match="Europe/Warsw"):
        LocalClock("Europe/Warsw")


def test_parse_utc_accepts_z_and_naive() -> None:
    assert parse_utc("2024-01-01T00:00:00Z") == dt.datetime(2024, 1, 1, tzinfo=UTC)
    assert parse_utc("2024-01-01T01:00:00+01:00") == dt.datetime(2024, 1, 1, tzinfo=UTC)
    assert parse_utc("2024-01-01 00:00:00") == dt.datetime(2024, 1, 1, tzinfo=UTC)


instants = st.datetimes(
    min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2025, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=0))


def _dst_edges() -> st.SearchStrategy[dt.datetime]:
    """Instants within 3 h of Warsaw's two 2024 changes (both at 01:00Z): the spring
    gap, and both occurrences of the repeated autumn hour; to the microsecond (window
    bounds can have fractions of a second: a start_date, a fractional window_days)."""
    edges = [dt.datetime(2024, 3, 31, 1, tzinfo=UTC), dt.datetime(2024, 10, 27, 1, tzinfo=UTC)]
    offsets = st.integers(-3 * 3600, 3 * 3600)
    fractions = st.sampled_from([0, 0, 1, 500_000, 999_999])
    return st.tuples(st.sampled_from(edges), offsets, fractions).map(
        lambda t: t[0] + dt.timedelta(seconds=t[1], microseconds=t[2])
    )


#: The autumn hour shown twice: its first occurrence is 00:00-01:00Z, its second 01:00-02:00Z.
REPEATED_FIRST = dt.datetime(2024, 10, 27, 0, tzinfo=UTC)
REPEATED_SECOND = dt.datetime(2024, 10, 27, 1, tzinfo=UTC)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_dst_edges(), instants))
@example(REPEATED_FIRST)  # both occurrences of 02:00:00, and the last second of each
@example(REPEATED_SECOND)
@example(REPEATED_SECOND - SECOND)
@example(REPEATED_SECOND + dt.timedelta(hours=1) - SECOND)
@example(dt.datetime(2024, 3, 31, 1, tzinfo=UTC) - SECOND)  # 01:59:59 CET, then the jump
@example(dt.datetime(2024, 3, 31, 1, tzinfo=UTC))  # 03:00:00 CEST
def test_every_instant_round_trips_except_the_repeated_hour(instant: dt.datetime) -> None:
    """UTC -> wall -> UTC gives the instant back, except in the second occurrence of the
    repeated hour, which (the documented convention) comes back as the first one."""
    wall = WARSAW.to_wall(instant)
    back = WARSAW.to_utc(wall)
    second_occurrence = REPEATED_SECOND <= instant < REPEATED_SECOND + dt.timedelta(hours=1)
    assert second_occurrence == (instant.astimezone(WARSAW.zone).fold == 1)
    expected = instant - dt.timedelta(hours=1) if second_occurrence else instant
    assert back == expected, (instant, wall, back)


@settings(max_examples=300, deadline=None)
@given(_dst_edges(), _dst_edges())
def test_wall_range_is_the_exact_preimage_of_a_window(a: dt.datetime, b: dt.datetime) -> None:
    start, end = min(a, b), max(a, b)
    if start == end:
        return
    bounds = WARSAW.wall_range(start, end)
    if bounds is None:
        # only a window inside the second occurrence of the repeated hour (those wall
        # times convert to the first occurrence), or one shorter than a second between
        # two whole seconds, has no wall second of its own
        second = dt.datetime(2024, 10, 27, 1, tzinfo=UTC)
        no_whole_second = start.replace(microsecond=0) + SECOND >= end and start.microsecond
        inside = second <= start < end <= second + dt.timedelta(hours=1)
        assert inside or no_whole_second, (start, end)
        base = WARSAW.to_wall(start).replace(microsecond=0)
        for seconds in range(-7200, 7200, 1):
            wall = base + dt.timedelta(seconds=seconds)
            assert not start <= WARSAW.to_utc(wall) < end, wall
        return
    lo, hi = bounds
    assert lo <= hi
    # lo is the first wall second planned into the window, hi the last one
    assert WARSAW.plan_utc(lo) >= start
    assert WARSAW.plan_utc(lo - SECOND) < start
    assert WARSAW.plan_utc(hi) < end
    assert WARSAW.plan_utc(hi + SECOND) >= end
    # every existing wall second that converts into the window lies inside [lo, hi]
    for minutes in range(-200, 200, 7):
        wall = WARSAW.to_wall(start).replace(microsecond=0) + dt.timedelta(minutes=minutes)
        exists = WARSAW.to_wall(WARSAW.to_utc(wall)) == wall
        if exists and start <= WARSAW.to_utc(wall) < end:
            assert lo <= wall <= hi, wall


def test_window_ending_in_the_second_occurrence_asks_for_the_whole_repeated_hour() -> None:
    # 01:30Z is 02:30 CET, the second time 02:30 is shown; records stamped 02:45 convert
    # to the first occurrence (00:45Z), which is inside this window
    lo, hi = WARSAW.wall_range(
        dt.datetime(2024, 10, 27, 0, 0, tzinfo=UTC), dt.datetime(2024, 10, 27, 1, 30, tzinfo=UTC)
    )
    assert lo == dt.datetime(2024, 10, 27, 2, 0)
    assert hi == dt.datetime(2024, 10, 27, 2, 59, 59)


def test_window_ending_just_after_the_spring_jump_asks_for_the_wall_times_after_it() -> None:
    # 01:30Z is 03:30 CEST: calls stamped 03:00..03:29 belong here (the gap 02:xx is empty)
    lo, hi = WARSAW.wall_range(
        dt.datetime(2024, 3, 31, 0, 0, tzinfo=UTC), dt.datetime(2024, 3, 31, 1, 30, tzinfo=UTC)
    )
    assert lo == dt.datetime(2024, 3, 31, 1, 0)
    assert hi == dt.datetime(2024, 3, 31, 3, 29, 59)


def test_plan_utc_is_non_decreasing_across_both_edges() -> None:
    for day, hour in ((dt.date(2024, 3, 31), 0), (dt.date(2024, 10, 27), 0)):
        wall = dt.datetime.combine(day, dt.time(hour))
        previous = WARSAW.plan_utc(wall)
        for _ in range(5 * 60):
            wall += dt.timedelta(minutes=1)
            current = WARSAW.plan_utc(wall)
            assert current >= previous, wall
            previous = current


def test_window_starting_at_the_spring_jump_includes_the_skipped_wall_times() -> None:
    lo, hi = WARSAW.wall_range(
        dt.datetime(2024, 3, 31, 1, 0, tzinfo=UTC), dt.datetime(2024, 3, 31, 2, 0, tzinfo=UTC)
    )
    assert lo == dt.datetime(2024, 3, 31, 2, 0)
    assert hi == dt.datetime(2024, 3, 31, 3, 59, 59)


def test_format_utc_has_an_explicit_offset() -> None:
    assert format_utc(dt.datetime(2024, 3, 31, 0, 30, tzinfo=UTC)) == "2024-03-31T00:30:00+00:00"


def test_a_window_inside_the_second_occurrence_has_no_wall_range() -> None:
    # 01:10Z..01:20Z is 02:10..02:20 CET, the second time: those wall times convert to
    # 00:10Z..00:20Z, so no record can be stamped into this window (and the range
    # 03:00 -> 02:59:59 that the bounds search gives must never be sent)
    assert (
        WARSAW.wall_range(
            dt.datetime(2024, 10, 27, 1, 10, tzinfo=UTC),
            dt.datetime(2024, 10, 27, 1, 20, tzinfo=UTC),
        )
        is None
    )


@pytest.mark.parametrize(
    ("start", "end", "shift"),
    [
        # the lookback range reaches into the second occurrence (01:00Z..02:00Z)
        ("2024-10-27T00:30:00+00:00", "2024-10-27T01:30:00+00:00", 3600),
        ("2024-10-27T01:59:59+00:00", "2024-10-27T03:00:00+00:00", 3600),
        ("2024-10-27T00:00:00+00:00", "2024-10-27T01:00:00.000001+00:00", 3600),
        # it ends exactly where the second occurrence begins, or starts after it
        ("2024-10-27T00:00:00+00:00", "2024-10-27T01:00:00+00:00", 0),
        ("2024-10-27T02:00:00+00:00", "2024-10-27T03:00:00+00:00", 0),
        # the spring jump repeats nothing
        ("2024-03-31T00:00:00+00:00", "2024-03-31T03:00:00+00:00", 0),
        # long ranges over the whole year still find it
        ("2024-10-01T00:00:00+00:00", "2024-11-01T00:00:00+00:00", 3600),
    ],
)
def test_repeated_shift_is_the_repeated_hour_when_a_range_touches_its_second_occurrence(
    start: str, end: str, shift: int
) -> None:
    got = WARSAW.repeated_shift(dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end))
    assert got == dt.timedelta(seconds=shift)


def test_utc_clock_repeats_nothing() -> None:
    utc = LocalClock("UTC")
    start = dt.datetime(2024, 10, 27, tzinfo=UTC)
    assert utc.repeated_shift(start, start + dt.timedelta(days=3)) == dt.timedelta(0)


def test_conversion_memory_does_not_grow_with_distinct_minutes() -> None:
    """A month of calls has 43,200 distinct minutes; the conversion cache must not keep
    them all (it did: 65,536 entries, ~10 MiB of a million-call window's peak)."""
    clock = LocalClock("Europe/Warsaw")
    start = dt.datetime(2024, 5, 1)
    texts = [(start + dt.timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M") for i in range(30 * 1440)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for text in texts:
            clock.wall_text_to_utc_iso(text)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 1024 * 1024, f"{grown / 2**20:.1f} MiB kept for {len(texts)} minutes"
    # and the cache still answers correctly for the ones it dropped
    assert clock.wall_text_to_utc_iso(texts[0]) == "2024-04-30T22:00:00+00:00"

"""Window splitting: no gap, no overlap, for any range and size."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_callcenter.timeconv import UTC
from tap_callcenter.windows import Window, split_windows

instants = st.datetimes(
    min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1), timezones=st.just(UTC)
)
sizes = st.integers(min_value=1, max_value=40 * 86400).map(lambda s: dt.timedelta(seconds=s))


@settings(max_examples=300, deadline=None)
@given(instants, instants, sizes)
def test_windows_tile_the_range(start: dt.datetime, end: dt.datetime, size: dt.timedelta) -> None:
    if (end - start) / size > 5000:
        return
    windows = split_windows(start, end, size)
    if end <= start:
        assert windows == []
        return
    assert windows[0].start == start
    assert windows[-1].end == end
    for before, after in itertools.pairwise(windows):
        assert before.end == after.start
    for window in windows:
        assert dt.timedelta(0) < window.end - window.start <= size


def test_window_is_closed_open() -> None:
    window = Window(dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 1, 2, tzinfo=UTC))
    assert dt.datetime(2024, 1, 1, tzinfo=UTC) in window
    assert dt.datetime(2024, 1, 1, 12, tzinfo=UTC) in window
    assert dt.datetime(2024, 1, 2, tzinfo=UTC) not in window


def test_zero_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        split_windows(
            dt.datetime(2024, 1, 1, tzinfo=UTC),
            dt.datetime(2024, 1, 2, tzinfo=UTC),
            dt.timedelta(0),
        )

"""Closed date windows ``[start, end)``: how a sync range is cut into resumable pieces."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tap_callcenter.timeconv import format_utc


@dataclass(frozen=True)
class Window:
    """One closed-open UTC interval of the replication key: ``start <= t < end``."""

    start: dt.datetime
    end: dt.datetime

    def __contains__(self, instant: dt.datetime) -> bool:
        return self.start <= instant < self.end

    def __str__(self) -> str:
        return f"[{format_utc(self.start)}, {format_utc(self.end)})"


@dataclass(frozen=True)
class WindowScope:
    """What the engine needs to sort one window's records: the window, the range of
    the whole pass (``run``), the field the windows are on, and the incoming bookmark
    as a UTC ISO string (records before it are re-reads of the lookback); ``keep``
    lets a second pass leave out what the first one emits."""

    window: Window
    run: Window
    field: str
    reread_before: str | None = None
    #: Records it rejects are left to another pass (not emitted, not counted).
    keep: Callable[[dict[str, Any]], bool] | None = None


def split_windows(start: dt.datetime, end: dt.datetime, size: dt.timedelta) -> list[Window]:
    """Cut ``[start, end)`` into consecutive windows of ``size``; the last may be shorter.

    No gap and no overlap: each window starts where the previous one ended, the first at
    ``start`` and the last ends at ``end``. An empty or inverted range gives no window.
    """
    if size <= dt.timedelta(0):
        msg = "window size must be positive"
        raise ValueError(msg)
    windows: list[Window] = []
    cursor = start
    while cursor < end:
        upper = min(cursor + size, end)
        windows.append(Window(cursor, upper))
        cursor = upper
    return windows

"""What the emulator says a run must emit, keyed as the tap emits it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

Row = dict[str, Any]
Key = tuple[Any, ...]


def utc(text: str) -> dt.datetime:
    """An ISO date-time with its offset (the emulator's ``expected_fields`` are UTC)."""
    return dt.datetime.fromisoformat(text)


def emitted_key(key: list[Any] | tuple[Any, ...]) -> Key:
    """An emulator row's key as the tap emits it: ids are text (Conpeek's integer
    summary ids become their digits)."""
    return tuple(str(part) if isinstance(part, int) else part for part in key)


def expected_in_range(items: Iterable[Row], field: str, start: str, end: str) -> dict[Key, Row]:
    """Emulator rows whose ``expected_fields[field]`` lies in [start, end), by key."""
    lower, upper = utc(start), utc(end)
    return {
        emitted_key(item["key"]): item
        for item in items
        if item["expected_fields"].get(field)
        and lower <= utc(item["expected_fields"][field]) < upper
    }

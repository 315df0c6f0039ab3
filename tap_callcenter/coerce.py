"""Value coercions shared by the providers: numbers are numbers, empty means null."""

from __future__ import annotations

import typing as t


def optional_int(value: t.Any) -> t.Any:
    """``""``/None -> None; integer strings -> int; anything else unchanged (kept, not lost)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.lstrip("-").isdigit():
            return int(stripped)
    return value


def optional_bool(value: t.Any) -> t.Any:
    """``""``/None -> None; "true"/"false"/"1"/"0" -> bool; anything else unchanged."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
    return value


def optional_str(value: t.Any) -> t.Any:
    """``""`` -> None (an optional id or date the API leaves empty)."""
    return None if value == "" else value

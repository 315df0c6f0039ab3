"""The input state: read it, check it, and say clearly what is wrong with it.

A state comes from a file (``--state``) or from Meltano's system database. Whatever is
in it, the tap either resumes from it or stops before any request with one line that
names the stream and the value: never a traceback, never a silent fresh start.
"""

from __future__ import annotations

import json
import typing as t

from tap_callcenter.errors import CallcenterError
from tap_callcenter.timeconv import parse_utc

#: State key of the main bookmark (the SDK's name for it).
BOOKMARK = "replication_key_value"
#: State keys that hold an instant (ISO 8601), with what they mean, for error messages.
INSTANT_KEYS = {
    BOOKMARK: "bookmark",
    "closed_date_bookmark": "closures bookmark",
    "created_date_floor": "earliest created_date synced",
}


class StateError(CallcenterError):
    """The input state cannot be used."""


def parse_state_text(text: str, source: str = "the state file") -> dict[str, t.Any]:
    """JSON text -> state dict. A whole STATE message (``{"type": "STATE", "value": …}``)
    is unwrapped: saving the last STATE line of a run verbatim is an easy mistake, and
    reading it as an empty state would silently start a full resync."""
    if not text.strip():
        msg = (
            f"{source} is empty: give the 'value' of the last STATE message of a run, "
            "or no --state at all for a first run"
        )
        raise StateError(msg)
    try:
        state = json.loads(text)
    except ValueError as exc:
        msg = f"{source} is not JSON ({exc}); it starts with {text.strip()[:60]!r}"
        raise StateError(msg) from None
    if isinstance(state, dict) and state.get("type") == "STATE" and "value" in state:
        state = state["value"]
    return check_state(state)


def check_state(state: t.Any) -> dict[str, t.Any]:
    """The state if every bookmark in it can be read; else a :class:`StateError`."""
    if not isinstance(state, dict):
        msg = f"the state must be a JSON object with 'bookmarks', not {_shown(state)}"
        raise StateError(msg)
    bookmarks = state.get("bookmarks", {})
    if bookmarks is None:
        return state
    if not isinstance(bookmarks, dict):
        msg = f"the state's 'bookmarks' must be an object of streams, not {_shown(bookmarks)}"
        raise StateError(msg)
    for stream, stream_state in bookmarks.items():
        if not isinstance(stream_state, dict):
            msg = f"stream {stream!r}: its state must be an object, not {_shown(stream_state)}"
            raise StateError(msg, stream=stream)
        for key, meaning in INSTANT_KEYS.items():
            value = stream_state.get(key)
            if value is not None and not _is_instant(value):
                msg = (
                    f"the {meaning} {key!r} is not an ISO 8601 date-time: {_shown(value)} "
                    "(fix or remove it to resume; removing it resyncs from start_date)"
                )
                raise StateError(msg, stream=stream)
    return state


def _is_instant(value: t.Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parse_utc(value)
    except ValueError:
        return False
    return True


def _shown(value: t.Any) -> str:
    """A value for an error message: its JSON, cut short."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."

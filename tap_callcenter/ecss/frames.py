"""The ECSS websocket framing (contract): a fixed text header, then a JSON payload.

Request:  ``01`` + payload length (10 digits) + request id (4 digits) + command name,
          then the payload.
Response: ``01`` + payload length (10 digits) + request id (4 digits) + status (3 digits),
          then the payload.
A newline may stand between header and payload in either direction; the length counts
the payload's UTF-8 bytes only. The tap encodes requests and decodes responses (the
tests hold the other direction, written from the contract on their own).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PROTOCOL = "01"
_LENGTH_DIGITS = 10
_ID_DIGITS = 4
_RESPONSE = re.compile(r"01(\d{10})(\d{4})(\d{3})")
MAX_REQUEST_ID = 10**_ID_DIGITS - 1


class FrameError(ValueError):
    """A frame that does not follow the framing rules."""


@dataclass(frozen=True)
class Frame:
    """A decoded response frame: request id, status, payload."""

    request_id: int
    payload: str
    status: int | None = None


def encode_request(request_id: int, command: str, payload: str) -> str:
    """A request frame; a newline separates the command name from the payload."""
    _check_id(request_id)
    size = len(payload.encode("utf-8"))
    return f"{PROTOCOL}{size:0{_LENGTH_DIGITS}d}{request_id:0{_ID_DIGITS}d}{command}\n{payload}"


def decode_response(text: str) -> Frame:
    """Parse a response frame; :class:`FrameError` when it is malformed."""
    match = _RESPONSE.match(text)
    if not match:
        raise FrameError(f"not a response frame: {text[:40]!r}")
    size, request_id, status = (int(group) for group in match.groups())
    return Frame(request_id, _payload(text[match.end() :], size), status=status)


def _payload(rest: str, size: int) -> str:
    """The payload after the header: exactly ``size`` UTF-8 bytes, one newline allowed."""
    for candidate in (rest, rest.removeprefix("\r\n"), rest.removeprefix("\n")):
        if len(candidate.encode("utf-8")) == size:
            return candidate
    raise FrameError(f"payload is {len(rest.encode('utf-8'))} bytes, the header says {size}")


def _check_id(request_id: int) -> None:
    if not 0 <= request_id <= MAX_REQUEST_ID:
        raise FrameError(f"request id {request_id} does not fit in {_ID_DIGITS} digits")

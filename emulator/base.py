"""Provider-neutral pieces shared by the server core and every emulated API.

A provider (Thulium now; Conpeek and Eltex ECSS next) is a sibling module that
subclasses :class:`Provider` and registers itself with :func:`register_provider`.
The core (``server.py``) only knows this interface, so adding a provider never
changes the core.
"""

from __future__ import annotations

import json
import threading
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import Message
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from emulator.server import Emulator


@dataclass
class Request:
    """One parsed HTTP request, handed to a provider route.

    ``path`` is relative to the provider prefix (``/api/connections`` for
    ``/thulium/api/connections``); ``full_path`` keeps the whole path.
    """

    method: str
    path: str
    full_path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes = b""

    def arg(self, name: str, default: str | None = None) -> str | None:
        """Last value of a query parameter (PHP semantics: the last one wins)."""
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> Any:
        """The request body parsed as JSON (empty body -> empty dict)."""
        if not self.body.strip():
            return {}
        return json.loads(self.body)

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies sent by the client (needed by providers with cookie sessions)."""
        jar: dict[str, str] = {}
        for header in self.headers.get_all("Cookie") or []:
            for part in header.split(";"):
                name, sep, value = part.strip().partition("=")
                if sep:
                    jar[name] = value
        return jar


@dataclass
class Response:
    """What a route returns; the core always sends it with a Content-Length."""

    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> Response:
        """A JSON response (compact separators: large pages stay small and fast)."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        return cls(status, body)


Handler = Callable[[Request], Response]
Routes = Mapping[tuple[str, str], Handler]


def parse_query(raw: str) -> dict[str, list[str]]:
    """Query string to lists of values; blank values are kept (``outbound_id=``)."""
    return parse_qs(raw, keep_blank_values=True)


class Provider:
    """Base class of an emulated API served under ``/<name>/...``.

    Subclasses set ``name`` and implement :meth:`routes` and :meth:`error_response`;
    the lifecycle hooks let a provider run extra servers (the ECSS websocket port).
    """

    name: str = ""
    #: Path of the API below the emulator root, e.g. ``/thulium/api``.
    api_path: str = ""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.emulator: Emulator | None = None

    def routes(self) -> Routes:
        """Data routes: (METHOD, path relative to ``/<name>``) -> handler."""
        return {}

    def control_routes(self) -> Routes:
        """Test/demo helpers under ``/_emulator/<name>/...`` (never fault-injected)."""
        return {}

    def error_response(self, status: int, message: str) -> Response:
        """The provider's own error body (used by fault injection too)."""
        return Response.json({"error": message}, status)

    def describe(self, base_url: str) -> dict[str, Any]:
        """What a client needs to connect (printed by the CLI); no secrets hidden: test data."""
        return {"api_url": base_url + self.api_path}

    def on_start(self, emulator: Emulator) -> None:
        """Called each time the emulator starts listening (also after a restart)."""
        self.emulator = emulator

    def on_stop(self) -> None:
        """Called when the emulator stops; close extra sockets here."""


ProviderFactory = Callable[[Any, int], Provider]


@dataclass(frozen=True)
class ProviderSpec:
    """How the core builds a provider: its config class and a factory(config, seed)."""

    name: str
    config_type: type
    factory: ProviderFactory


PROVIDERS: dict[str, ProviderSpec] = {}


def register_provider(name: str, config_type: type, factory: ProviderFactory) -> None:
    """Make a provider known to :class:`~emulator.server.Emulator` (idempotent)."""
    PROVIDERS[name] = ProviderSpec(name, config_type, factory)


#: Sort keys of the providers' stores are ``local_seconds * KEY_SCALE + sequence``.
KEY_SCALE = 10**9


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

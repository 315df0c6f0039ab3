"""Provider-neutral pieces shared by the server core and every emulated API.

A provider (Thulium, Conpeek, Eltex ECSS) is a sibling module or package that
subclasses :class:`Provider` and registers itself with :func:`register_provider`.
The core (``server.py``) only knows this interface, so adding a provider never
changes the core.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message
from typing import Any, Protocol
from urllib.parse import parse_qs

from emulator.faults import FaultConfig


def parse_cookies(cookie_headers: Iterable[str]) -> dict[str, str]:
    """``name=value`` pairs of every ``Cookie`` header (HTTP requests and the websocket
    handshake alike); the last one of a name wins."""
    jar: dict[str, str] = {}
    for header in cookie_headers:
        for part in header.split(";"):
            name, sep, value = part.strip().partition("=")
            if sep:
                jar[name] = value
    return jar


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
        return parse_cookies(self.headers.get_all("Cookie") or [])


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


#: A UTC ``(start, end)`` given by a test: aware datetimes or ISO strings.
UtcRange = tuple[datetime | str, datetime | str]


def expected_response(rows: list[dict[str, Any]]) -> Response:
    """``/_emulator/<name>/expected``: the rows of ``expected()``, keys as JSON lists."""
    for row in rows:
        row["key"] = list(row["key"])
    return Response.json(rows)


def insert_arguments(request: Request) -> tuple[dict[str, Any], int, UtcRange | None]:
    """``/_emulator/<name>/insert``: the body, ``n`` (default 1) and the ``from``/``to``
    range (None unless both are given)."""
    body = request.json()
    n = int(body.get("n", 1))
    at_utc = (body["from"], body["to"]) if body.get("from") and body.get("to") else None
    return body, n, at_utc


def inserted_response(records: list[dict[str, Any]]) -> Response:
    """``/_emulator/<name>/insert``'s answer: how many records, and the records."""
    return Response.json({"inserted": len(records), "records": records})


def parse_query(raw: str) -> dict[str, list[str]]:
    """Query string to lists of values; blank values are kept (``outbound_id=``)."""
    return parse_qs(raw, keep_blank_values=True)


# -- the simulated clock and record visibility ------------------------------------------

Instant = datetime | str | int | float | None


def parse_instant(value: Instant) -> int | None:
    """Aware datetime, ISO string (``Z`` or an offset), epoch seconds, or None -> whole UTC
    epoch seconds (or None). A naive time is refused: the emulator never guesses a zone."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"not an instant: {value!r}")
    if isinstance(value, int | float):
        return int(value // 1)
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError as exc:
            raise ValueError(f"not an ISO 8601 instant: {text!r}") from exc
    if not isinstance(value, datetime):
        raise TypeError(f"not an instant: {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive date-time {value.isoformat()!r}: give an offset or Z")
    return int(value.timestamp() // 1)


_ISO_DAYS: dict[int, str] = {}


def iso_utc(ts: int) -> str:
    """UTC epoch seconds -> ``YYYY-MM-DDTHH:MM:SS+00:00`` (``isoformat``'s text, with the
    date cached per day: expected() renders it for every record)."""
    day, rem = divmod(ts, 86400)
    ds = _ISO_DAYS.get(day)
    if ds is None:
        ds = _ISO_DAYS[day] = datetime.fromtimestamp(day * 86400, timezone.utc).date().isoformat()
    hours, rem = divmod(rem, 3600)
    minutes, seconds = divmod(rem, 60)
    return f"{ds}T{hours:02d}:{minutes:02d}:{seconds:02d}+00:00"


class SimClock:
    """The simulated "now" of an emulator, under test control and shared by every provider.

    ``now`` is whole UTC epoch seconds, or None: no clock, so every record is visible and
    served in its final state (the emulator's behaviour before the clock existed). A
    request reads ``now`` once, so a clock moved meanwhile never splits one answer.
    """

    def __init__(self, now: Instant = None) -> None:
        self._now = parse_instant(now)

    @property
    def now(self) -> int | None:
        return self._now

    def set(self, value: Instant) -> int | None:
        """Set (or with None remove) the simulated now; returns it as epoch seconds."""
        self._now = parse_instant(value)
        return self._now

    def advance(self, seconds: float) -> int:
        """Move the clock forward (``set`` goes anywhere, also back)."""
        if self._now is None:
            raise ValueError("no simulated clock to advance: set one first")
        if isinstance(seconds, bool) or seconds < 0:
            raise ValueError(f"advance by a non-negative number of seconds, not {seconds!r}")
        self._now += int(seconds)
        return self._now

    def iso(self) -> str | None:
        return None if self._now is None else iso_utc(self._now)


#: A Mersenne prime: delays hash a record's identity modulo it.
_DELAY_P = 2**61 - 1


class Delivery:
    """When a record becomes visible: a seeded delivery delay and a cap on the total lag.

    The delay is uniform in [0, ``delay_max``] and a pure function of (seed, stream,
    record identity), so it needs no storage (a million records cost nothing until a
    clock is set) and is the same whenever it is computed, for generated and inserted
    records alike. ``visible_at`` is then ``ready + delay`` (``ready``: when the API could
    first know the record, e.g. the call's end), capped at ``instant + max_lag`` so a test
    can rely on "visible at most ``max_lag`` after its replication-key instant", and never
    before the instant itself.
    """

    def __init__(self, seed: int, name: str, delay_max: int, max_lag: int) -> None:
        if delay_max < 0 or max_lag < 0:
            raise ValueError("delivery_delay_max and max_visibility_lag must be >= 0")
        rng = random.Random(f"{seed}:{name}:delivery")
        self._mult = rng.randrange(1, _DELAY_P)
        self._add = rng.randrange(_DELAY_P)
        self._span = delay_max + 1
        self.delay_max = delay_max
        self.max_lag = max_lag

    def visible_at(self, ident: int, instant: int, ready: int) -> int:
        """Epoch seconds from which the record identified by ``ident`` is served."""
        at = ready + (ident * self._mult + self._add) % _DELAY_P % self._span
        cap = instant + self.max_lag
        return instant if at < instant else cap if at > cap else at


class VisibleIndex:
    """Positions in ``[i0, i1)`` of a sorted store whose records are visible at ``now``
    (ascending), cached per stream: paging through one window filters it once.

    The cache key is (range, store length, now). Stores only grow (records are inserted,
    never removed), so one length names one state of the store and a stale hit is
    impossible; an insert changes the length and so misses.
    """

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple[int, int, int, int], list[int]]] = {}

    def get(
        self,
        stream: str,
        items: Sequence[Any],
        i0: int,
        i1: int,
        *,
        now: int,
        visible_at: Callable[[Any], int],
    ) -> list[int]:
        key = (i0, i1, len(items), now)
        hit = self._cache.get(stream)
        if hit is not None and hit[0] == key:
            return hit[1]
        found = [i for i in range(i0, i1) if visible_at(items[i]) <= now]
        self._cache[stream] = (key, found)
        return found


class ProviderHost(Protocol):
    """What a provider uses of the emulator that runs it (``server.Emulator``). A protocol,
    so this module never imports the server: imports go one way, server -> base."""

    host: str
    faults: FaultConfig

    def log_request(self, entry: dict[str, Any]) -> None: ...


class Provider:
    """Base class of an emulated API served under ``/<name>/...``.

    Subclasses set ``name`` and implement :meth:`routes` and :meth:`error_response`;
    the lifecycle hooks let a provider run extra servers (the ECSS websocket port).
    """

    name: str = ""
    #: Path of the API below the emulator root, e.g. ``/thulium/api``.
    api_path: str = ""
    #: The provider's name in messages ("Thulium").
    title: str = ""
    #: Knobs a test may change at run time (see :meth:`set`).
    runtime_settings: tuple[str, ...] = ()
    #: Serve loosely typed values, as some real servers do (see :func:`loosen`); the
    #: Emulator's ``loose_types`` sets it, tests may flip it at any time.
    loose_types: bool = False

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.emulator: ProviderHost | None = None
        #: The simulated now; the Emulator replaces it with the one all providers share.
        self.sim_clock = SimClock()
        self.visible_index = VisibleIndex()

    def routes(self) -> Routes:
        """Data routes: (METHOD, path relative to ``/<name>``) -> handler."""
        return {}

    def control_routes(self) -> Routes:
        """Test/demo helpers under ``/_emulator/<name>/...`` (never fault-injected); here
        ``/settings`` (GET and POST) when the provider has runtime settings."""
        if not self.runtime_settings:
            return {}
        return {
            ("GET", "/settings"): self._control_settings,
            ("POST", "/settings"): self._control_settings,
        }

    # -- runtime settings (``set``, ``settings``, ``/_emulator/<name>/settings``) ----------

    def counts(self) -> dict[str, int]:
        """How many records the provider holds, per store (shown with the settings)."""
        return {}

    def coerce_setting(self, name: str, value: Any) -> Any:
        """A setting's value as stored (e.g. ``int``); raise ValueError to refuse it."""
        return value

    def validate_settings(self) -> None:
        """Raise ValueError for a bad value or combination: :meth:`set` then restores them."""

    def set(self, **knobs: Any) -> dict[str, Any]:
        """Change runtime settings (names in ``runtime_settings``): all or none of them;
        unknown names or bad values raise ValueError. Returns :meth:`settings`."""
        unknown = sorted(set(knobs) - set(self.runtime_settings))
        if unknown:
            raise ValueError(f"unknown {self.title} setting(s): {', '.join(unknown)}")
        with self.lock:
            old = {name: getattr(self, name) for name in knobs}
            try:
                for name, value in knobs.items():
                    setattr(self, name, self.coerce_setting(name, value))
                self.validate_settings()
            except (ValueError, TypeError):
                for name, value in old.items():
                    setattr(self, name, value)
                raise
        return self.settings()

    def settings(self) -> dict[str, Any]:
        """The runtime settings and :meth:`counts`."""
        with self.lock:
            data = {name: getattr(self, name) for name in self.runtime_settings}
        data.update(self.counts())
        return data

    def _control_settings(self, request: Request) -> Response:
        """GET: :meth:`settings`; POST a JSON object: :meth:`set` it, answer the result."""
        if request.method == "POST":
            body = request.json()
            if not isinstance(body, dict):
                raise ValueError(f"expected a JSON object of {self.title} settings")
            return Response.json(self.set(**body))
        return Response.json(self.settings())

    def error_response(self, status: int, message: str) -> Response:
        """The provider's own error body (used by fault injection too)."""
        return Response.json({"error": message}, status)

    def describe(self, base_url: str) -> dict[str, Any]:
        """What a client needs to connect (printed by the CLI); no secrets hidden: test data."""
        return {"api_url": base_url + self.api_path}

    def on_start(self, emulator: ProviderHost) -> None:
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


def loosen(value: Any) -> Any:
    """A loosely typed server's rendering of a JSON value: numbers as strings (ids and
    counts too), booleans as 0/1, absent values (null) as "", inside objects and lists
    too. Strings are left as they are. The same information, other JSON types: a client
    must read both renderings the same way."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return {key: loosen(item) for key, item in value.items()}
    if isinstance(value, list):
        return [loosen(item) for item in value]
    return value

"""Conpeek emulator: ``GET /conpeek/cdr_dialog``, ``GET /conpeek/voice_campaign_request_summary``.

Behaves like the vendor docs (api-docs/conpeek-*.txt): header ``Authorization: <api_key>``
(the raw key, no scheme), ``limit``/``offset`` paging with no total count (the last page
is shorter than ``limit``), ``limit`` silently clamped to a server maximum, and a
``filter`` parameter holding a JSON list of ``{"property", "operator"?, "value"}``
objects that all must hold (AND). Dates are UTC, ``YYYY-MM-DD HH:mm:ss``, in requests and
responses. Records come OLDEST first (ascending start_time / created_date, ties by key).

Every error answers ``{"status": <int>, "message": "<text>"}``.

Data is generated from a seed over the same UTC periods as the Thulium emulator and kept
sorted by an integer key (date seconds first), so a date range is found with ``bisect``:
a page costs the same with 1,000,000 dialogs. Strings are rendered only when served.
"""

from __future__ import annotations

import json
import random
import re
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from emulator.base import (
    Delivery,
    Instant,
    Provider,
    Request,
    Response,
    Routes,
    UtcRange,
    expected_response,
    insert_arguments,
    inserted_response,
    iso_utc,
    loosen,
    parse_instant,
    register_provider,
)
from emulator.records import (
    DEFAULT_PERIODS,
    PeriodSampler,
    gc_paused,
    late_arrival_range,
    merge_sorted,
    utc_seconds,
)
from emulator.thulium import format_local

DEFAULT_API_KEY = "cpk-Secret-Key-123"
DIALOGS = "cdr_dialog"
SUMMARIES = "voice_campaign_request_summary"
STREAMS = (DIALOGS, SUMMARIES)
#: Documented default ``limit`` per endpoint (also what the server clamps to by default).
DEFAULT_LIMITS = {DIALOGS: 500, SUMMARIES: 100}
DATE_FORMAT = "YYYY-MM-DD HH:mm:ss"

_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$")
#: Dialog sort key = start seconds << 128 | dialog uuid (ties ordered by dialog_uuid).
_SHIFT = 128
_MASK = (1 << _SHIFT) - 1
#: Summary sort key = created seconds * _K + id (ties ordered by id).
_K = 10**9
_DAY = 86400

# -- vocabulary --------------------------------------------------------------------------

DIALOG_TYPES: tuple[str, ...] = (
    "CONSULTANT",
    "TENANT_USER",
    "EXTERNAL",
    "BOT",
    "SCREENSHARE_DIALOG",
    "SYSTEM",
    "UNBOUND_DIALOG",
)
_CONSULTANT, _TENANT_USER, _EXTERNAL, _BOT, _SCREENSHARE, _SYSTEM, _UNBOUND = range(7)
END_CAUSES: tuple[str, ...] = (
    "NORMAL_CLEARING",
    "NO_ANSWER",
    "USER_BUSY",
    "ORIGINATOR_CANCEL",
    "CALL_REJECTED",
)
_NORMAL, _NO_ANSWER, _BUSY, _CANCEL, _REJECTED = range(5)
HANGUP_SIDES: tuple[str, ...] = ("CALLER", "CALLEE", "SYSTEM")
_CALLER, _CALLEE, _SIDE_SYSTEM = range(3)
PROJECTS: tuple[int, ...] = (11, 12, 27, 40)
#: (tenant_user_id, display name, extension)
TENANT_USERS: tuple[tuple[int, str, str], ...] = tuple(
    (101 + i, name, str(201 + i))
    for i, name in enumerate(
        (
            "Anna Kowalska",
            "Piotr Nowak",
            "Łukasz Wiśniewski",
            "Małgorzata Wójcik",
            "Katarzyna Kamińska",
            "Tomasz Lewandowski",
            "Agnieszka Zielińska",
            "Michał Szymański",
            "Ewa Woźniak",
            "Paweł Dąbrowski",
            "Joanna Kozłowska",
            "Krzysztof Jankowski",
        )
    )
)
#: (our number, display name)
LINES: tuple[tuple[str, str], ...] = (
    ("48223071234", "Infolinia"),
    ("48587654321", "Sprzedaż"),
    ("48801123456", "Reklamacje"),
)
TAG_SETS: tuple[tuple[int, ...], ...] = ((), (), (), (5,), (7,), (5, 9), (12,), (7, 12, 31))
CALL_REQUEST_AGENTS: tuple[str, ...] = ("dialer-01", "dialer-02", "dialer-03")
BOT_NAMES: tuple[str, ...] = ("IVR Menu", "Voicebot Ania")
RECORDING_BASE = "https://rec.conpeek.example/v1/recordings/"
SIP_DOMAIN = "sip.conpeek.example"

CUSTOMER_NAMES: tuple[str, ...] = (
    "Jan Kowalski",
    "Maria Nowak",
    "Adam Wiśniewski",
    "Zofia Krawczyk",
    "Marcin Piotrowski",
    "Barbara Grabowska",
    "Janusz Pawłowski",
    "Ewelina Mazur",
    "Grzegorz Kwiatkowski",
    "Alicja Dudek",
)
VOICE_CAMPAIGNS: tuple[str, ...] = (
    "0c9e6a52-3f1b-4d8e-9a57-5b1f2e7c4a10",
    "5d2f8b13-7a4c-4e69-8b02-9c3d1e6f7a21",
    "9a7e4c36-1d5b-4f80-a213-6e8f2b9c0d32",
)
CLOSE_REASONS: tuple[str, ...] = ("SUCCESS", "MAX_TRIES", "REJECTED", "CANCELLED")
_SUCCESS, _MAX_TRIES, _REASON_REJECTED, _CANCELLED = range(4)
_CLOSE_WEIGHTS: tuple[tuple[float, int], ...] = (
    (0.60, _SUCCESS),
    (0.85, _MAX_TRIES),
    (0.95, _REASON_REJECTED),
    (1.01, _CANCELLED),
)


def format_utc(ts: int) -> str:
    """UTC epoch seconds -> ``YYYY-MM-DD HH:mm:ss`` (the API's date format)."""
    return format_local(ts, True)


def _uuid_str(value: int) -> str:
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _uuid4_bits(value: int) -> int:
    """Set the version (4) and variant (RFC 4122) bits of a random 128-bit int."""
    value &= ~(0xF000 << 64)
    value |= 0x4000 << 64
    value &= ~(0xC000 << 48)
    value |= 0x8000 << 48
    return value


@dataclass
class ConpeekConfig:
    """Seeded data and behaviour of the Conpeek emulator."""

    dialogs: int = 2000
    summaries: int = 500
    periods: Sequence[tuple[datetime | str, datetime | str]] = DEFAULT_PERIODS
    api_key: str = DEFAULT_API_KEY
    #: Server maximum of ``limit`` (a bigger one is silently cut to it).
    max_limit_dialogs: int = 500
    max_limit_summaries: int = 100
    #: On each request with offset > 0 (and not past the end of the range), insert this
    #: many records at the START of the requested range (they sort before the current
    #: offset: every later page shifts).
    insert_while_paging: int = 0
    #: Share of summaries that have a closed_date (minutes to ~60 days after creation;
    #: under a simulated clock they are served OPEN until that closure is delivered).
    closed_share: float = 0.5
    #: Under a simulated clock (``Emulator.set_now``) a record is served from its
    #: ``visible_at``: a dialog from its hangup + a delivery delay, a summary from its
    #: creation + a delay, and its closed form from closed_date + a delay; each delay is
    #: uniform in [0, this] seconds.
    delivery_delay_max: int = 1200
    #: ... and each lag (visible_at - start_time / created_date, closed form's visible -
    #: closed_date) is at most this many seconds.
    max_visibility_lag: int = 2700


@dataclass(slots=True, eq=False)
class _Dialog:
    """One dialog (a leg of a call), compact: strings are rendered when served."""

    key: int
    ts: int
    call: int
    dtype: int
    out: bool
    outbound: bool
    caller: str
    callee: str
    caller_display: str | None
    callee_display: str | None
    ringing: int
    talking: int
    holding: int
    cause: int
    side: int
    project: int
    tenant_user: int | None
    tags: tuple[int, ...]
    operator_call: int | None
    request_agent: int
    machine: bool | None
    recorded: bool

    @property
    def uuid(self) -> int:
        return self.key & _MASK

    @property
    def answer(self) -> int | None:
        return self.ts + self.ringing // 1000 if self.talking > 0 else None

    @property
    def hangup(self) -> int:
        return self.ts + (self.ringing + self.talking + self.holding) // 1000


@dataclass(slots=True, eq=False)
class _Summary:
    """One voice-campaign request summary (mutable: closing changes it).

    ``tries``/``last_try`` are the final values; ``open_tries``/``open_last_try`` what
    the OPEN form shows while a closure is not yet delivered (simulated clock)."""

    id: int
    created: int
    key: int
    name: int
    contact: str
    project: int
    campaign: int
    closed: int | None
    reason: int
    tries: int
    max_tries: int
    last_try: int | None
    priority: int | None
    open_tries: int = 0
    open_last_try: int | None = None


class _BadRequest(ValueError):
    """A request the server rejects with 400."""


# -- filters -------------------------------------------------------------------------------

_DATE_OPS = ("gt", "gte", "lt", "lte")
_NUM_OPS = ("eq", "gt", "gte", "lt", "lte")

Predicate = Callable[[Any], bool]


@dataclass(frozen=True)
class _Prop:
    """A filterable property: its value kind, operators and the record attribute."""

    kind: str  # "date", "int", "str", "int_list", "str_list"
    getter: Callable[[Any], Any]
    operators: tuple[str, ...]
    #: Operator used when the filter object has none (None: an operator is required).
    default_op: str | None
    #: For list properties: the record holds several values, any one may match.
    many: bool = False


def _dialog_numbers(d: _Dialog) -> tuple[str, str]:
    return (d.caller, d.callee)


def _dialog_op_call(d: _Dialog) -> str | None:
    return f"ext-{d.operator_call}" if d.operator_call is not None else None


def _dialog_req_agent(d: _Dialog) -> str | None:
    return CALL_REQUEST_AGENTS[d.request_agent] if d.request_agent >= 0 else None


_DIALOG_PROPS: dict[str, _Prop] = {
    "start_time": _Prop("date", lambda d: d.ts, _DATE_OPS, None),
    "hangup_time": _Prop("date", lambda d: d.hangup, _DATE_OPS, None),
    "talking_time": _Prop("int", lambda d: d.talking, _NUM_OPS, "eq"),
    "number_list": _Prop("str_list", _dialog_numbers, ("in",), "in", many=True),
    "project_id_list": _Prop("int_list", lambda d: d.project, ("in",), "in"),
    "tenant_user_id_list": _Prop("int_list", lambda d: d.tenant_user, ("in",), "in"),
    "custom_tag_id_list": _Prop("int_list", lambda d: d.tags, ("in",), "in", many=True),
    "operator_call_id_list": _Prop("str_list", _dialog_op_call, ("in",), "in"),
    "dialog_type_list": _Prop("str_list", lambda d: DIALOG_TYPES[d.dtype], ("in",), "in"),
    "call_request_agent_id_list": _Prop("str_list", _dialog_req_agent, ("in",), "in"),
    "business_direction": _Prop(
        "str", lambda d: "OUTBOUND" if d.outbound else "INBOUND", ("eq",), "eq"
    ),
}
_SUMMARY_PROPS: dict[str, _Prop] = {
    "created_date": _Prop("date", lambda s: s.created, _DATE_OPS, None),
    "closed_date": _Prop("date", lambda s: s.closed, _DATE_OPS, None),
    "contact_number_list": _Prop("str_list", lambda s: s.contact, ("in",), "in"),
    # The vendor's own example filters on "contact_number" with a plain string.
    "contact_number": _Prop("str", lambda s: s.contact, ("eq",), "eq"),
    "voice_campaign_id_list": _Prop(
        "str_list", lambda s: VOICE_CAMPAIGNS[s.campaign], ("in",), "in"
    ),
    "project_id_list": _Prop("int_list", lambda s: s.project, ("in",), "in"),
    "call_request_id_list": _Prop("str_list", lambda s: _case_id(s.id), ("in",), "in"),
}
_PROPS = {DIALOGS: _DIALOG_PROPS, SUMMARIES: _SUMMARY_PROPS}
_PRIMARY = {DIALOGS: "start_time", SUMMARIES: "created_date"}


def _open_values(s: _Summary) -> tuple[int, int | None]:
    """(tries, last_try) of the OPEN form: the final values of a summary that never
    closes, the ones it had before closing otherwise."""
    if s.closed is None:
        return s.tries, s.last_try
    return s.open_tries, s.open_last_try


def _case_id(summary_id: int) -> str:
    return f"CR-{summary_id:08d}"


def _parse_date(prop: str, value: Any) -> int:
    """A filter date (``YYYY-MM-DD HH:mm:ss``, UTC) -> epoch seconds."""
    m = _DATE_RE.match(value) if isinstance(value, str) else None
    if m is None:
        raise _BadRequest(
            f"Invalid filter: value of {prop} must be a date in the format {DATE_FORMAT} "
            f"(UTC), got {json.dumps(value, ensure_ascii=False)}"
        )
    try:
        year, month, day, hour, minute, second = (int(g) for g in m.groups())
        dt = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError as exc:
        raise _BadRequest(f"Invalid filter: value of {prop} is not a valid date: {exc}") from exc
    return int(dt.timestamp())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_value(prop: str, spec: _Prop, value: Any) -> Any:
    """Validate a non-date filter value; list values come back as a set."""
    if spec.kind == "int":
        if not _is_int(value):
            raise _BadRequest(f"Invalid filter: value of {prop} must be an integer")
        return value
    if spec.kind == "str":
        if not isinstance(value, str):
            raise _BadRequest(f"Invalid filter: value of {prop} must be a string")
        return value
    item_ok = _is_int if spec.kind == "int_list" else (lambda v: isinstance(v, str))
    what = "integers" if spec.kind == "int_list" else "strings"
    if not isinstance(value, list) or not all(item_ok(v) for v in value):
        raise _BadRequest(f"Invalid filter: value of {prop} must be a list of {what}")
    return frozenset(value)


@dataclass
class _Query:
    """A parsed request: paging, the primary date range [lo, hi) and other predicates."""

    limit: int
    offset: int
    lo: int | None
    hi: int | None
    predicates: list[Predicate]
    #: Bounds on the primary date implied by other predicates (hangup >= start, ...).
    scan_lo: int | None
    scan_hi: int | None


def _tighten(lo: int | None, hi: int | None, op: str, ts: int) -> tuple[int | None, int | None]:
    """Fold one date comparison into a half-open [lo, hi) range of whole seconds."""
    if op == "gte":
        lo = ts if lo is None else max(lo, ts)
    elif op == "gt":
        lo = ts + 1 if lo is None else max(lo, ts + 1)
    elif op == "lt":
        hi = ts if hi is None else min(hi, ts)
    elif op == "lte":
        hi = ts + 1 if hi is None else min(hi, ts + 1)
    return lo, hi


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is None:
        return False
    if op == "eq":
        return bool(left == right)
    if op == "gt":
        return bool(left > right)
    if op == "gte":
        return bool(left >= right)
    if op == "lt":
        return bool(left < right)
    return bool(left <= right)


def _predicate(spec: _Prop, op: str, value: Any) -> Predicate:
    getter = spec.getter
    if spec.kind.endswith("_list"):
        if spec.many:
            return lambda item: any(v in value for v in getter(item))
        return lambda item: getter(item) in value
    return lambda item: _compare(op, getter(item), value)


def parse_filter(stream: str, raw: str | None) -> tuple[list[tuple[str, str, Any]], str]:
    """Strictly parse the ``filter`` parameter -> [(property, operator, value)].

    Dates become epoch seconds, list values frozensets. Raises ``ValueError`` (the
    400 message) on anything the server rejects. Second item: the primary property.
    """
    props = _PROPS[stream]
    primary = _PRIMARY[stream]
    if raw is None:
        return [], primary
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _BadRequest(f"Invalid filter: not valid JSON ({exc})") from exc
    if not isinstance(parsed, list):
        raise _BadRequest("Invalid filter: expected a JSON list of filter objects")
    out: list[tuple[str, str, Any]] = []
    for i, item in enumerate(parsed):
        if not isinstance(item, dict):
            raise _BadRequest(f"Invalid filter: item {i} is not an object")
        unknown = sorted(set(item) - {"property", "operator", "value"})
        if unknown:
            raise _BadRequest(
                f"Invalid filter: item {i} has unknown key(s): {', '.join(unknown)}"
                " (allowed: property, operator, value)"
            )
        if "property" not in item:
            raise _BadRequest(f"Invalid filter: item {i} has no 'property'")
        prop = item["property"]
        if not isinstance(prop, str) or prop not in props:
            raise _BadRequest(
                f"Invalid filter: unknown property {json.dumps(prop, ensure_ascii=False)} "
                f"for {stream} (allowed: {', '.join(props)})"
            )
        if "value" not in item:
            raise _BadRequest(f"Invalid filter: item {i} ({prop}) has no 'value'")
        spec = props[prop]
        op = item.get("operator", spec.default_op)
        if op is None:
            raise _BadRequest(
                f"Invalid filter: {prop} requires an operator (one of {', '.join(spec.operators)})"
            )
        if op not in spec.operators:
            raise _BadRequest(
                f"Invalid filter: operator {json.dumps(op, ensure_ascii=False)} is not allowed "
                f"for {prop} (allowed: {', '.join(spec.operators)})"
            )
        value = item["value"]
        if spec.kind == "date":
            out.append((prop, op, _parse_date(prop, value)))
        else:
            out.append((prop, op, _check_value(prop, spec, value)))
    return out, primary


def _parse_int(name: str, value: str | None, default: int, minimum: int) -> int:
    if value is None:
        return default
    try:
        number = int(value.strip())
    except ValueError as exc:
        raise _BadRequest(
            f"Invalid value of parameter {name}: '{value}' (integer expected)"
        ) from exc
    if number < minimum:
        raise _BadRequest(f"Invalid value of parameter {name}: '{value}' (minimum {minimum})")
    return number


class ConpeekProvider(Provider):
    """Data store, HTTP routes and test helpers of the Conpeek emulator."""

    name = "conpeek"
    title = "Conpeek"
    api_path = "/conpeek"
    runtime_settings = ("insert_while_paging", "max_limit_dialogs", "max_limit_summaries")

    def __init__(self, config: ConpeekConfig | None = None, seed: int = 1) -> None:
        super().__init__()
        self.config = config if config is not None else ConpeekConfig()
        self.seed = seed
        self.api_key = self.config.api_key
        self.insert_while_paging = self.config.insert_while_paging
        self.max_limit_dialogs = self.config.max_limit_dialogs
        self.max_limit_summaries = self.config.max_limit_summaries
        self.periods = [(utc_seconds(a), utc_seconds(b)) for a, b in self.config.periods]
        self._dialogs: list[_Dialog] = []
        self._dialog_keys: list[int] = []
        self._summaries: list[_Summary] = []
        self._summary_keys: list[int] = []
        self._summary_by_id: dict[int, _Summary] = {}
        self._next_summary_id = 1
        self._next_operator_call = 700_000
        #: Longest dialog (hangup - start) and longest open->closed delay, in seconds:
        #: hangup/closed filters narrow the bisect range with them.
        self._max_dialog_span = 0
        self._max_close_delay = 0
        self._insert_rng = random.Random(f"{seed}:conpeek:insert")
        cfg = self.config
        delay_max, max_lag = cfg.delivery_delay_max, cfg.max_visibility_lag
        self._dialog_delivery = Delivery(seed, "conpeek:dialogs", delay_max, max_lag)
        self._summary_delivery = Delivery(seed, "conpeek:summaries", delay_max, max_lag)
        self._closure_delivery = Delivery(seed, "conpeek:closures", delay_max, max_lag)
        with gc_paused():
            self._generate_dialogs(random.Random(f"{seed}:conpeek:dialogs"), self.config.dialogs)
            self._generate_summaries(
                random.Random(f"{seed}:conpeek:summaries"), self.config.summaries
            )

    # -- generation: dialogs ------------------------------------------------------------

    def _edge_instants(self, n: int) -> list[int]:
        """UTC midnights inside a period: the second before it, and it twice (a tie).
        Half-open day windows must put each on the right side. Every midnight while there
        are at most 10; over long periods every k-th, so edges stay about a tenth of
        ``n`` records (sparse data keeps its random spread), and at most ``n``."""
        days: list[tuple[int, int, int]] = []
        for start, end in self.periods:
            day = -(-start // _DAY) * _DAY
            while day < end:
                days.append((day, start, end))
                day += _DAY
        if len(days) > 10:
            step = -(-len(days) * 3 // max(30, n // 10))
            days = days[::step]
        out = [ts for day, start, end in days for ts in (day - 1, day, day) if start <= ts < end]
        return out[: max(0, n)]

    def _generate_dialogs(self, rng: random.Random, n: int) -> None:
        """``n`` dialogs: calls of 1-3 legs over the periods, a few dialer bursts (same
        second), and records at (and right before) every UTC midnight in the periods."""
        if n <= 0:
            return
        out = [
            self._make_dialog(rng, ts, _EXTERNAL, rng.random() < 0.5)
            for ts in self._edge_instants(n)
        ]
        sampler = PeriodSampler(self.periods)
        rand = rng.random
        while len(out) < n and sampler.total > 0:
            ts, end = sampler.draw(rand)
            burst = 2 + int(rand() * 5) if rand() < 0.03 else 1
            for _ in range(burst):
                out.extend(self._make_call(rng, ts, end))
        self._store_dialogs(out[:n])

    def _make_call(self, rng: random.Random, ts: int, end: int) -> list[_Dialog]:
        """The legs of one call that start before ``end``: the customer leg (EXTERNAL),
        sometimes a BOT, then a consultant; or a lone SYSTEM / internal dialog."""
        rand = rng.random
        r = rand()
        if r < 0.06:
            kind = _SYSTEM if r < 0.03 else _UNBOUND if r < 0.045 else _SCREENSHARE
            return [self._make_dialog(rng, ts, kind, False)]
        if r < 0.12:
            return [self._make_dialog(rng, ts, _TENANT_USER, False)]
        outbound = rand() < 0.4
        first = self._make_dialog(rng, ts, _EXTERNAL, outbound)
        legs = [first]
        at = ts
        if not outbound and rand() < 0.3:
            at += int(rand() * 3)
            if at < end:
                bot = self._make_dialog(rng, at, _BOT, outbound, first)
                legs.append(bot)
                at = bot.hangup
        if first.talking > 0 and rand() < 0.85:
            at += 1 + int(rand() * 20)
            if at < end:
                legs.append(self._make_dialog(rng, at, _CONSULTANT, outbound, first))
        return legs

    def _make_dialog(
        self,
        rng: random.Random,
        ts: int,
        dtype: int,
        outbound: bool,
        parent: _Dialog | None = None,
    ) -> _Dialog:
        """One dialog starting at ``ts``; ``parent`` is the call's customer leg (same
        call_uuid, numbers and project). Draws use ``int(random() * n)``: fast."""
        rand = rng.random
        if parent is None:
            call = _uuid4_bits(rng.getrandbits(128))
            customer = f"48{500_000_000 + int(rand() * 400_000_000)}"
            line_no, line_name = LINES[int(rand() * len(LINES))]
            project = PROJECTS[int(rand() * len(PROJECTS))]
        else:
            call = parent.call
            customer = parent.callee if parent.out else parent.caller
            line_no = parent.caller if parent.out else parent.callee
            display = parent.caller_display if parent.out else parent.callee_display
            line_name = display or LINES[0][1]
            project = parent.project
        tenant_user: int | None = None
        machine: bool | None = None
        caller_display: str | None
        callee_display: str | None
        request_agent = -1
        recorded = False
        holding = 0
        r = rand()
        if dtype == _EXTERNAL:
            out = outbound
            if outbound:
                caller, callee = line_no, customer
                caller_display, callee_display = line_name, None
                if rand() < 0.5:  # a campaign dialer call
                    request_agent = int(rand() * len(CALL_REQUEST_AGENTS))
                    machine = rand() < 0.15
            else:
                caller, callee = customer, line_no
                caller_display = None if rand() < 0.1 else customer
                callee_display = line_name
            if r < 0.72:
                cause, side = _NORMAL, _CALLER if rand() < 0.5 else _CALLEE
            elif r < 0.86:
                cause, side = (_NO_ANSWER, _SIDE_SYSTEM) if outbound else (_CANCEL, _CALLER)
            elif r < 0.95:
                cause, side = _BUSY, _CALLEE
            else:
                cause, side = _REJECTED, _CALLEE
        elif dtype in (_BOT, _SYSTEM):
            out = False
            caller, callee = customer, line_no
            caller_display = None
            callee_display = BOT_NAMES[int(rand() * len(BOT_NAMES))] if dtype == _BOT else None
            cause, side = _NORMAL, _SIDE_SYSTEM if rand() < 0.7 else _CALLER
        else:  # a consultant / tenant user / internal leg
            user_id, user_name, ext = TENANT_USERS[int(rand() * len(TENANT_USERS))]
            tenant_user = user_id
            out = True
            caller, callee = (customer, ext) if parent is not None else (line_no, ext)
            caller_display = customer if parent is not None else line_name
            callee_display = user_name
            if dtype == _CONSULTANT and parent is not None:
                cause = _NORMAL if r < 0.9 else _NO_ANSWER
            else:
                cause = _NORMAL if r < 0.7 else _NO_ANSWER if r < 0.9 else _BUSY
            side = (_CALLER if rand() < 0.5 else _CALLEE) if cause == _NORMAL else _SIDE_SYSTEM
            recorded = cause == _NORMAL and rand() < 0.8
            if cause == _NORMAL and rand() < 0.2:
                holding = 1000 + int(rand() * 120_000)
        answered = cause == _NORMAL
        if dtype in (_BOT, _SYSTEM):
            ringing = int(rand() * 500)
            talking = 3000 + int(rand() * 60_000)
        elif answered:
            ringing = 500 + int(rand() * 25_000)
            talking = 2000 + int(rng.expovariate(1 / 170_000.0))
        else:
            ringing = 1000 + int(rand() * 45_000)
            talking = 0
        operator_call: int | None = None
        if rand() < 0.2:
            operator_call = self._next_operator_call + int(rand() * 1000)
            self._next_operator_call += 1000
        return _Dialog(
            key=ts << _SHIFT | _uuid4_bits(rng.getrandbits(128)),
            ts=ts,
            call=call,
            dtype=dtype,
            out=out,
            outbound=outbound,
            caller=caller,
            callee=callee,
            caller_display=caller_display,
            callee_display=callee_display,
            ringing=ringing,
            talking=talking,
            holding=holding,
            cause=cause,
            side=side,
            project=project,
            tenant_user=tenant_user,
            tags=TAG_SETS[int(rand() * len(TAG_SETS))],
            operator_call=operator_call,
            request_agent=request_agent,
            machine=machine,
            recorded=recorded,
        )

    def _store_dialogs(self, dialogs: list[_Dialog]) -> None:
        """Merge into the sorted list (bulk re-sort, or one ``insort`` at a time)."""
        if not dialogs:
            return
        span = max(d.hangup - d.ts for d in dialogs)
        with self.lock:
            self._max_dialog_span = max(self._max_dialog_span, span)
            merge_sorted(self._dialogs, self._dialog_keys, dialogs)

    # -- generation: summaries -----------------------------------------------------------

    def _generate_summaries(self, rng: random.Random, n: int) -> None:
        """``n`` summaries over the periods; campaign uploads create batches in the same
        second; records at (and right before) every UTC midnight; about
        ``closed_share`` are CLOSED (minutes to ~60 days after creation)."""
        if n <= 0:
            return
        instants = self._edge_instants(n)
        sampler = PeriodSampler(self.periods)
        rand = rng.random
        while len(instants) < n and sampler.total > 0:
            ts, _ = sampler.draw(rand)
            batch = 3 + int(rand() * 13) if rand() < 0.05 else 1
            instants.extend([ts] * batch)
        instants = instants[:n]
        instants.sort()
        share = self.config.closed_share
        summaries = [self._make_summary(rng, ts, rand() < share, None) for ts in instants]
        self._store_summaries(summaries)

    def _make_summary(
        self, rng: random.Random, created: int, closed: bool, closed_at: int | None
    ) -> _Summary:
        rand = rng.random
        max_tries = 3 if rand() < 0.6 else 5
        closed_ts: int | None = None
        reason = -1
        last_try: int | None = None
        open_tries, open_last_try = 0, None
        if closed:
            closed_ts = closed_at
            if closed_ts is None:
                closed_ts = created + self._close_delay(rng)
            r = rand()
            reason = next(c for p, c in _CLOSE_WEIGHTS if r < p)
            tries, last_try = self._tries_on_close(rng, reason, max_tries, created, closed_ts)
        else:
            tries = int(rand() * max_tries)
            if tries:
                last_try = created + 60 + int(rand() * 3600)
            open_tries, open_last_try = tries, last_try
        return _Summary(
            id=0,
            created=created,
            key=0,
            name=int(rand() * len(CUSTOMER_NAMES)),
            contact=f"48{500_000_000 + int(rand() * 400_000_000)}",
            project=PROJECTS[int(rand() * len(PROJECTS))],
            campaign=int(rand() * len(VOICE_CAMPAIGNS)),
            closed=closed_ts,
            reason=reason,
            tries=tries,
            max_tries=max_tries,
            last_try=last_try,
            priority=1 + int(rand() * 5) if rand() < 0.2 else None,
            open_tries=open_tries,
            open_last_try=open_last_try,
        )

    @staticmethod
    def _close_delay(rng: random.Random) -> int:
        """Seconds from creation to closure: a third within the hour (answered at once),
        most within days, a quarter after 1-8 weeks of retries (up to 60 days), so a
        clock moved through months keeps seeing closures."""
        r = rng.random()
        if r < 0.35:
            return 60 + min(_DAY, int(rng.expovariate(1 / 1800.0)))
        if r < 0.75:
            return 3600 + min(14 * _DAY, int(rng.expovariate(1 / (2.0 * _DAY))))
        return 7 * _DAY + int(rng.random() * 53 * _DAY)

    @staticmethod
    def _tries_on_close(
        rng: random.Random, reason: int, max_tries: int, created: int, closed: int
    ) -> tuple[int, int | None]:
        if reason == _MAX_TRIES:
            return max_tries, closed
        if reason == _CANCELLED:
            tries = int(rng.random() * max_tries)
            return tries, (created + (closed - created) // 2 if tries else None)
        return 1 + int(rng.random() * max_tries), closed

    def _store_summaries(self, summaries: list[_Summary]) -> None:
        """Assign ids in creation order and merge into the sorted list."""
        if not summaries:
            return
        summaries.sort(key=lambda s: s.created)
        with self.lock:
            for s in summaries:
                s.id = self._next_summary_id
                self._next_summary_id += 1
                if s.id >= _K:
                    raise OverflowError("too many Conpeek summaries for the sort key")
                s.key = s.created * _K + s.id
                self._summary_by_id[s.id] = s
                if s.closed is not None:
                    self._max_close_delay = max(self._max_close_delay, s.closed - s.created)
            merge_sorted(self._summaries, self._summary_keys, summaries)

    # -- visibility under a simulated clock --------------------------------------------------

    def dialog_visible_at(self, d: _Dialog) -> int:
        """When a dialog is first served: it has hung up and been delivered."""
        return self._dialog_delivery.visible_at(d.key & _MASK, d.ts, d.hangup)

    def summary_visible_at(self, s: _Summary) -> int:
        """When a summary is first served (OPEN, unless its closure is delivered too)."""
        return self._summary_delivery.visible_at(s.id, s.created, s.created)

    def summary_closed_visible_at(self, s: _Summary) -> int | None:
        """When a summary is first served in its CLOSED form (None: it never closes).
        Never before the summary itself is visible: then it first appears closed."""
        if s.closed is None:
            return None
        closure = self._closure_delivery.visible_at(s.id, s.closed, s.closed)
        return max(closure, self.summary_visible_at(s))

    def _served_closed(self, s: _Summary, now: int | None) -> bool:
        """Whether ``s`` is served CLOSED at ``now`` (None: no clock, the final form)."""
        if s.closed is None:
            return False
        if now is None:
            return True
        closed_visible = self.summary_closed_visible_at(s)
        return closed_visible is not None and now >= closed_visible

    def _served_closed_date(self, now: int) -> Callable[[_Summary], int | None]:
        """The closed_date filters see at ``now``: null until the closure is delivered."""
        return lambda s: s.closed if self._served_closed(s, now) else None

    # -- rendering -------------------------------------------------------------------------

    @staticmethod
    def _render_dialog(d: _Dialog) -> dict[str, Any]:
        """The API dict of a dialog (times UTC ``YYYY-MM-DD HH:mm:ss``, durations in ms)."""
        uuid = _uuid_str(d.key & _MASK)
        ts = d.ts
        record: dict[str, Any] = {
            "dialog_uuid": uuid,
            "call_uuid": _uuid_str(d.call),
            "dialog_type": DIALOG_TYPES[d.dtype],
            "direction": "OUT" if d.out else "IN",
            "business_direction": "OUTBOUND" if d.outbound else "INBOUND",
            "caller_number": d.caller,
            "callee_number": d.callee,
            "caller_display": d.caller_display,
            "callee_display": d.callee_display,
            "start_time": format_utc(ts),
            "answer_time": format_utc(ts + d.ringing // 1000) if d.talking > 0 else None,
            "hangup_time": format_utc(ts + (d.ringing + d.talking + d.holding) // 1000),
            "ringing_time": d.ringing,
            "talking_time": d.talking,
            "holding_time": d.holding,
            "end_cause": END_CAUSES[d.cause],
            "hangup_side": HANGUP_SIDES[d.side],
            "project_id": d.project,
            "tenant_user_id": d.tenant_user,
            "custom_tag_id_list": list(d.tags),
            "operator_call_id": f"ext-{d.operator_call}" if d.operator_call is not None else None,
            "call_request_agent_id": (
                CALL_REQUEST_AGENTS[d.request_agent] if d.request_agent >= 0 else None
            ),
            "machine_detected": d.machine,
            "recording_url": f"{RECORDING_BASE}{uuid}.wav" if d.recorded else None,
        }
        if d.dtype == _EXTERNAL:
            # A field the documented list does not have: clients must keep it.
            record["sip_call_id"] = f"{d.call & 0xFFFFFFFFFFFF:012x}@{SIP_DOMAIN}"
        return record

    @staticmethod
    def _render_summary(s: _Summary, closed_form: bool = True) -> dict[str, Any]:
        """The API dict; ``closed_form=False`` gives the OPEN version of a summary whose
        closure is not yet delivered (no closed_date/reason, its open tries)."""
        closed = s.closed if closed_form else None
        tries, last_try = (s.tries, s.last_try) if closed is not None else _open_values(s)
        record: dict[str, Any] = {
            "id": s.id,
            "name": CUSTOMER_NAMES[s.name],
            "contact_number": s.contact,
            "case_id": _case_id(s.id),
            "state": "OPEN" if closed is None else "CLOSED",
            "close_reason": CLOSE_REASONS[s.reason] if closed is not None else None,
            "project_id": s.project,
            "voice_campaign_id": VOICE_CAMPAIGNS[s.campaign],
            "created_date": format_utc(s.created),
            "closed_date": format_utc(closed) if closed is not None else None,
            "tries": tries,
            "max_tries": s.max_tries,
            "last_try_date": format_utc(last_try) if last_try is not None else None,
        }
        if s.priority is not None:
            record["priority"] = s.priority  # not in the field list: clients must keep it
        return record

    # -- HTTP ------------------------------------------------------------------------------

    def routes(self) -> Routes:
        return {
            ("GET", "/cdr_dialog"): lambda req: self._list(req, DIALOGS),
            ("GET", "/voice_campaign_request_summary"): lambda req: self._list(req, SUMMARIES),
        }

    def control_routes(self) -> Routes:
        return {
            **super().control_routes(),
            ("GET", "/expected"): self._control_expected,
            ("POST", "/insert"): self._control_insert,
            ("POST", "/close"): self._control_close,
        }

    def coerce_setting(self, name: str, value: Any) -> int:
        return int(value)

    def error_response(self, status: int, message: str) -> Response:
        """Conpeek's error body: ``{"status": <int>, "message": "..."}``."""
        return Response.json({"status": status, "message": message}, status)

    def describe(self, base_url: str) -> dict[str, Any]:
        return {"api_url": base_url + self.api_path, "api_key": self.api_key}

    def max_limit(self, stream: str) -> int:
        return self.max_limit_dialogs if stream == DIALOGS else self.max_limit_summaries

    def _auth_error(self, request: Request) -> Response | None:
        header = request.headers.get("Authorization")
        if header is None or not header.strip():
            return self.error_response(401, "Unauthorized: missing Authorization header")
        if header.strip() != self.api_key:
            return self.error_response(
                401, "Unauthorized: invalid API key (send the raw key, no scheme)"
            )
        return None

    def _query(self, request: Request, stream: str, now: int | None = None) -> _Query:
        max_limit = self.max_limit(stream)
        limit = _parse_int("limit", request.arg("limit"), DEFAULT_LIMITS[stream], 1)
        offset = _parse_int("offset", request.arg("offset"), 0, 0)
        filters, primary = parse_filter(stream, request.arg("filter"))
        props = _PROPS[stream]
        lo: int | None = None
        hi: int | None = None
        scan_lo: int | None = None
        scan_hi: int | None = None
        predicates: list[Predicate] = []
        for prop, op, value in filters:
            if prop == primary:
                lo, hi = _tighten(lo, hi, op, value)
                continue
            spec = props[prop]
            if prop == "closed_date" and now is not None:
                # A closure not yet delivered: the summary is served OPEN, closed_date null.
                spec = replace(spec, getter=self._served_closed_date(now))
            predicates.append(_predicate(spec, op, value))
            if prop in ("hangup_time", "closed_date"):
                # hangup >= start and closed >= created: bound the primary range too.
                delay = self._max_dialog_span if stream == DIALOGS else self._max_close_delay
                if op in ("lt", "lte"):
                    scan_hi = value + 1 if scan_hi is None else min(scan_hi, value + 1)
                else:
                    floor = value - delay
                    scan_lo = floor if scan_lo is None else max(scan_lo, floor)
        return _Query(min(limit, max_limit), offset, lo, hi, predicates, scan_lo, scan_hi)

    def _list(self, request: Request, stream: str) -> Response:
        error = self._auth_error(request)
        if error is not None:
            return error
        now = self.sim_clock.now
        try:
            q = self._query(request, stream, now)
        except _BadRequest as exc:
            return self.error_response(400, str(exc))
        with self.lock:
            if q.offset > 0 and self.insert_while_paging > 0:
                i0, i1 = self._index_range(stream, q)
                if i0 + q.offset < i1:  # a request past the end (empty page) moves nothing
                    self._insert_for_paging(stream, q)
            page = self._page(stream, q) if now is None else self._visible_page(stream, q, now)
        if stream == DIALOGS:
            data = [self._render_dialog(d) for d in page]
        elif now is None:
            data = [self._render_summary(s) for s in page]
        else:
            data = [self._render_summary(s, self._served_closed(s, now)) for s in page]
        return Response.json({"data": loosen(data) if self.loose_types else data})

    def _index_range(self, stream: str, q: _Query) -> tuple[int, int]:
        """Indexes [i0, i1) of the stored list the primary date range covers."""
        keys = self._dialog_keys if stream == DIALOGS else self._summary_keys
        lo = q.lo
        hi = q.hi
        if q.scan_lo is not None:
            lo = q.scan_lo if lo is None else max(lo, q.scan_lo)
        if q.scan_hi is not None:
            hi = q.scan_hi if hi is None else min(hi, q.scan_hi)

        def bound(ts: int) -> int:
            return ts << _SHIFT if stream == DIALOGS else ts * _K

        i0 = bisect_left(keys, bound(lo)) if lo is not None else 0
        i1 = bisect_left(keys, bound(hi)) if hi is not None else len(keys)
        return i0, max(i0, i1)

    def _page(self, stream: str, q: _Query) -> list[Any]:
        items: list[Any] = self._dialogs if stream == DIALOGS else self._summaries
        i0, i1 = self._index_range(stream, q)
        if q.predicates:
            preds = q.predicates
            matched = [it for it in items[i0:i1] if all(p(it) for p in preds)]
            return matched[q.offset : q.offset + q.limit]
        start = i0 + q.offset
        return items[start : min(i1, start + q.limit)]

    def _visible_page(self, stream: str, q: _Query, now: int) -> list[Any]:
        """:meth:`_page` over the records visible at ``now`` only (no holes, no shifts)."""
        items: list[Any] = self._dialogs if stream == DIALOGS else self._summaries
        i0, i1 = self._index_range(stream, q)
        visible_at = self.dialog_visible_at if stream == DIALOGS else self.summary_visible_at
        visible = self.visible_index.get(stream, items, i0, i1, now=now, visible_at=visible_at)
        if q.predicates:
            preds = q.predicates
            matched = [items[i] for i in visible if all(p(items[i]) for p in preds)]
            return matched[q.offset : q.offset + q.limit]
        return [items[i] for i in visible[q.offset : q.offset + q.limit]]

    # -- mutation helpers ------------------------------------------------------------------

    def insert_dialogs(self, n: int, at_utc_range: UtcRange | None = None) -> list[dict[str, Any]]:
        """Late arrivals: ``n`` new dialogs with start_time uniformly in ``at_utc_range``
        [start, end) (default: the last hour of the last period). Returns their API dicts."""
        start, stop = late_arrival_range(self.periods, at_utc_range)
        with self.lock:
            rng = self._insert_rng
            dialogs = [self._random_dialog(rng, rng.randrange(start, stop)) for _ in range(n)]
            self._store_dialogs(dialogs)
        return [self._render_dialog(d) for d in sorted(dialogs, key=lambda d: d.key)]

    def _random_dialog(self, rng: random.Random, ts: int) -> _Dialog:
        r = rng.random()
        if r < 0.6:
            return self._make_dialog(rng, ts, _EXTERNAL, rng.random() < 0.4)
        if r < 0.8:
            return self._make_dialog(rng, ts, _TENANT_USER, False)
        return self._make_dialog(rng, ts, _SYSTEM if r < 0.9 else _BOT, False)

    def insert_summaries(
        self,
        n: int,
        at_utc_range: UtcRange | None = None,
        closed: bool = False,
    ) -> list[dict[str, Any]]:
        """``n`` new summaries with created_date uniformly in ``at_utc_range`` [start, end)
        (default: the last hour of the last period); OPEN unless ``closed``."""
        start, stop = late_arrival_range(self.periods, at_utc_range)
        with self.lock:
            rng = self._insert_rng
            summaries = [
                self._make_summary(rng, rng.randrange(start, stop), closed, None) for _ in range(n)
            ]
            self._store_summaries(summaries)
        return [self._render_summary(s) for s in summaries]

    def now_ish(self) -> int:
        """The emulator's "now" for closing summaries: the simulated now when a clock is
        set, else one minute before the end of the last period (UTC epoch seconds)."""
        now = self.sim_clock.now
        return now if now is not None else max(e for _, e in self.periods) - 60

    def close_summaries(
        self,
        n: int,
        at_utc: datetime | str | None = None,
        ids: Sequence[int] | None = None,
    ) -> list[int]:
        """Close ``n`` OPEN summaries (the oldest created at or before ``at_utc``), or
        exactly ``ids`` when given: state CLOSED, closed_date = ``at_utc`` (default
        :meth:`now_ish`), a close_reason, tries and last_try_date updated (the values before
        stay those of its OPEN form). Under a simulated clock the closure is served from
        ``closed_date`` + a delivery delay on. Returns the ids closed (fewer than ``n``
        when not enough are open)."""
        at = utc_seconds(at_utc) if at_utc is not None else self.now_ish()
        with self.lock:
            if ids is not None:
                chosen = []
                for sid in ids:
                    summary = self._summary_by_id.get(int(sid))
                    if summary is None:
                        raise ValueError(f"no Conpeek summary with id {sid}")
                    if summary.closed is not None:
                        raise ValueError(f"Conpeek summary {sid} is already CLOSED")
                    if summary.created > at:
                        raise ValueError(f"Conpeek summary {sid} was created after {at_utc}")
                    chosen.append(summary)
            else:
                chosen = [s for s in self._summaries if s.closed is None and s.created <= at][
                    : max(0, n)
                ]
            rng = self._insert_rng
            for s in chosen:
                s.open_tries, s.open_last_try = s.tries, s.last_try
                s.reason = (_SUCCESS, _MAX_TRIES, _REASON_REJECTED)[int(rng.random() * 3)]
                s.closed = at
                s.tries, s.last_try = self._tries_on_close(
                    rng, s.reason, s.max_tries, s.created, at
                )
                self._max_close_delay = max(self._max_close_delay, at - s.created)
        return [s.id for s in chosen]

    def _insert_for_paging(self, stream: str, q: _Query) -> None:
        """Insert records at the START of the requested primary range (its first minute,
        before the records already there): ascending order puts them before the current
        offset, so every later page shifts by the number inserted."""
        keys = self._dialog_keys if stream == DIALOGS else self._summary_keys
        if q.lo is not None:
            lo = q.lo
        elif keys:
            lo = keys[0] >> _SHIFT if stream == DIALOGS else keys[0] // _K
        else:
            lo = min(s for s, _ in self.periods)
        hi = lo + 60
        if q.hi is not None:
            hi = min(hi, q.hi)
        # Before the first record of the range, so they lead it (at ``lo`` itself they
        # tie with what is there: dialogs then order by uuid, summaries by id).
        i0 = bisect_left(keys, lo << _SHIFT if stream == DIALOGS else lo * _K)
        if i0 < len(keys):
            hi = min(hi, keys[i0] >> _SHIFT if stream == DIALOGS else keys[i0] // _K)
        hi = max(hi, lo + 1)
        rng = self._insert_rng
        count = self.insert_while_paging
        if stream == DIALOGS:
            self._store_dialogs(
                [self._random_dialog(rng, rng.randrange(lo, hi)) for _ in range(count)]
            )
        else:
            self._store_summaries(
                [self._make_summary(rng, rng.randrange(lo, hi), False, None) for _ in range(count)]
            )

    # -- expectations for tests ------------------------------------------------------------

    def expected(self, stream: str, as_of: Instant = None) -> list[dict[str, Any]]:
        """Every stored record in API order (ascending): ``key`` (tuple), ``expected_utc``
        (ISO UTC of the replication key), ``expected_fields`` (every date field as a
        correct client emits it: ISO 8601 ``+00:00``, or None), ``record`` (API dict) and
        ``visible_at`` (ISO UTC: served from then on under a simulated clock).

        Summaries also have ``closed_at`` (closed_date as a client emits it, or None) and
        ``closed_visible_at`` (ISO UTC from which the CLOSED form is served, or None).

        Every record is listed whatever the clock (filter on ``visible_at``). By default
        ``record``/``expected_fields`` are the final (closed) form; ``as_of`` (datetime,
        ISO, epoch) gives the version served at that instant instead: the OPEN form of a
        summary whose closure is not delivered by then (for a record not yet visible at
        ``as_of``, the version it will first be served in)."""
        if stream not in STREAMS:
            raise ValueError(f"unknown Conpeek stream {stream!r}; expected one of {STREAMS}")
        at = parse_instant(as_of)
        with self.lock:
            items: list[Any] = list(self._dialogs if stream == DIALOGS else self._summaries)
        out: list[dict[str, Any]] = []
        cache: dict[int, str] = {}

        def iso(ts: int | None) -> str | None:
            if ts is None:
                return None
            value = cache.get(ts)
            if value is None:
                value = cache[ts] = iso_utc(ts)
            return value

        with gc_paused():
            for item in items:
                if stream == DIALOGS:
                    record = self._render_dialog(item)
                    fields = {
                        "start_time": iso(item.ts),
                        "answer_time": iso(item.answer),
                        "hangup_time": iso(item.hangup),
                    }
                    key: tuple[Any, ...] = (record["dialog_uuid"],)
                    primary = fields["start_time"]
                    extra: dict[str, Any] = {"visible_at": iso(self.dialog_visible_at(item))}
                else:
                    # Before it is visible: the version it will first be served in.
                    first = self.summary_visible_at(item)
                    closed_form = at is None or self._served_closed(item, max(at, first))
                    record = self._render_summary(item, closed_form)
                    last_try = item.last_try if closed_form else _open_values(item)[1]
                    fields = {
                        "created_date": iso(item.created),
                        "closed_date": iso(item.closed if closed_form else None),
                        "last_try_date": iso(last_try),
                    }
                    key = (item.id,)
                    primary = fields["created_date"]
                    extra = {
                        "visible_at": iso(self.summary_visible_at(item)),
                        "closed_at": iso(item.closed),
                        "closed_visible_at": iso(self.summary_closed_visible_at(item)),
                    }
                out.append(
                    {
                        "key": key,
                        "expected_utc": primary,
                        "expected_fields": fields,
                        "record": record,
                        **extra,
                    }
                )
        return out

    def counts(self) -> dict[str, int]:
        with self.lock:
            open_ = sum(1 for s in self._summaries if s.closed is None)
            return {
                DIALOGS: len(self._dialogs),
                SUMMARIES: len(self._summaries),
                "open_summaries": open_,
            }

    # -- control endpoints -----------------------------------------------------------------

    def _control_expected(self, request: Request) -> Response:
        """``?stream=...&as_of=<ISO or epoch>`` (as_of optional: see :meth:`expected`)."""
        as_of: Instant = request.arg("as_of") or None
        if isinstance(as_of, str) and as_of.lstrip("-").isdigit():
            as_of = int(as_of)
        rows = self.expected(request.arg("stream", DIALOGS) or DIALOGS, as_of=as_of)
        return expected_response(rows)

    def _control_insert(self, request: Request) -> Response:
        """Body ``{"stream", "n", "from", "to", "closed"}`` (from/to ISO UTC, optional)."""
        body, n, at_utc = insert_arguments(request)
        stream = body.get("stream", DIALOGS)
        if stream == DIALOGS:
            records = self.insert_dialogs(n, at_utc)
        elif stream == SUMMARIES:
            records = self.insert_summaries(n, at_utc, closed=bool(body.get("closed", False)))
        else:
            raise ValueError(f"unknown Conpeek stream {stream!r}; expected one of {STREAMS}")
        return inserted_response(records)

    def _control_close(self, request: Request) -> Response:
        """Body ``{"n", "at"?, "ids"?}``: close OPEN summaries, answer their ids."""
        body = request.json()
        ids = self.close_summaries(int(body.get("n", 1)), body.get("at"), body.get("ids"))
        return Response.json({"closed": ids})


def _factory(config: Any, seed: int) -> Provider:
    return ConpeekProvider(config, seed)


register_provider("conpeek", ConpeekConfig, _factory)

__all__ = ["DEFAULT_API_KEY", "ConpeekConfig", "ConpeekProvider", "parse_filter"]

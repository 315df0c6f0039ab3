"""Thulium emulator: ``GET /thulium/api/connections`` and ``GET /thulium/api/recordings``.

Behaves like the vendor docs (api-docs/thulium-*.txt) and what the real server does:
HTTP basic auth, ``limit`` silently clamped to 100, ``count`` ignores limit/offset,
newest first, ``date_from``/``date_to`` in LOCAL wall-clock time, both inclusive at
the precision given, compared as naive local times (no offsets anywhere, so both
occurrences of the repeated autumn hour match a local range covering it).

Data is generated at true UTC instants from a seed and rendered in local time, so
it never contains a nonexistent local time. Records are kept sorted by local time
and a range is found with ``bisect``: a page costs the same with 1,000,000 records.
"""

from __future__ import annotations

import base64
import binascii
import random
import re
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
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
    KEY_SCALE,
    LocalClock,
    PeriodSampler,
    gc_paused,
    late_arrival_range,
    merge_sorted,
    newest_insert_range,
    utc_seconds,
)

DEFAULT_USERNAME = "api_user"
DEFAULT_PASSWORD = "api_pass-Secret1"
MAX_LIMIT = 100
DEFAULT_LIMIT = 100
STREAMS = ("connections", "recordings")

#: Sort key = local seconds * _K + seq; seq stays below _K.
_K = KEY_SCALE
_EPOCH = datetime(1970, 1, 1)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?: (\d{2}):(\d{2})(?::(\d{2}))?)?$")

AGENTS: tuple[tuple[str, str], ...] = (
    ("Bob Smith", "bob_smith"),
    ("John Doe", "john_doe"),
    ("Anna Kowalska", "a.kowalska"),
    ("Piotr Nowak", "p.nowak"),
    ("Łukasz Wiśniewski", "l.wisniewski"),
    ("Małgorzata Wójcik", "m.wojcik"),
    ("Katarzyna Kamińska", "k.kaminska"),
    ("Tomasz Lewandowski", "t.lewandowski"),
    ("Agnieszka Zielińska", "a.zielinska"),
    ("Michał Szymański", "m.szymanski"),
    ("Ewa Woźniak", "e.wozniak"),
    ("Paweł Dąbrowski", "p.dabrowski"),
    ("Joanna Kozłowska", "j.kozlowska"),
    ("Krzysztof Jankowski", "k.jankowski"),
    ("Magdalena Mazur", "m.mazur"),
    ("Grzegorz Kwiatkowski", "g.kwiatkowski"),
    ("Zofia Krawczyk", "z.krawczyk"),
    ("Marcin Piotrowski", "m.piotrowski"),
    ("Barbara Grabowska", "b.grabowska"),
    ("Janusz Pawłowski", "janusz"),
)
#: (queue_id, slug used in recording file names)
QUEUES: tuple[tuple[int, str], ...] = (
    (34, "sprzedaz"),
    (35, "obsluga"),
    (542, "reklamacje"),
    (77, "windykacja"),
    (12, "infolinia"),
)
TOPICS: tuple[tuple[int, str], ...] = (
    (365, "Zamówienie"),
    (366, "Reklamacja"),
    (367, "Pytanie o fakturę"),
    (368, "Zmiana danych"),
    (369, "Rezygnacja"),
    (370, "Inne"),
)
TAG_SETS: tuple[tuple[str, ...], ...] = (
    (),
    (),
    ("vip",),
    ("pilne",),
    ("reklamacja", "pilne"),
    ("tag1", "tag2", "tag3"),
    ("oddzwonić",),
    ("nowy klient", "vip"),
)
#: (outbound_id, campaign name: a field the docs do not list)
CAMPAIGNS: tuple[tuple[int, str], ...] = (
    (101, "Wiosenna promocja"),
    (102, "Przedłużenie umowy"),
    (205, "Ankieta satysfakcji"),
)
LINES: tuple[str, ...] = ("223071234", "223071235", "1234", "587654321", "801123456")
OPERATORS: tuple[str, ...] = ("siptrunk", "siptrunk", "siptrunk", "orange_trunk", "plus_trunk")
RATES: tuple[str, ...] = ("happy", "happy", "neutral", "sad")

ANSWERED = "ANSWERED"
_DISPOSITIONS: tuple[tuple[float, str], ...] = (
    (0.70, ANSWERED),
    (0.88, "NO ANSWER"),
    (0.95, "BUSY"),
    (1.01, "FAILED"),
)


_DAY_CACHE: dict[int, str] = {}


def format_local(local: int, with_seconds: bool) -> str:
    """Local wall seconds (naive epoch) -> ``YYYY-MM-DD HH:MM[:SS]``; cached per day."""
    day, rem = divmod(local, 86400)
    ds = _DAY_CACHE.get(day)
    if ds is None:
        ds = _DAY_CACHE[day] = date.fromordinal(_EPOCH_ORDINAL + day).isoformat()
    hours, rem = divmod(rem, 3600)
    minutes, seconds = divmod(rem, 60)
    if with_seconds:
        return f"{ds} {hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{ds} {hours:02d}:{minutes:02d}"


@dataclass
class ThuliumConfig:
    """Seeded data and behaviour of the Thulium emulator."""

    timezone: str = "Europe/Warsaw"
    connections: int = 2000
    periods: Sequence[tuple[datetime | str, datetime | str]] = DEFAULT_PERIODS
    with_seconds: bool = False
    username: str = DEFAULT_USERNAME
    password: str = DEFAULT_PASSWORD
    #: On each request with offset > 0, insert this many new records at the head.
    insert_while_paging: int = 0
    #: Share of answered connections that leave two recordings (a transfer).
    two_recordings_share: float = 0.14
    #: Server maximum of ``limit`` (a bigger one is silently cut to it). Also a runtime
    #: knob (``provider.max_limit``, ``POST /_emulator/thulium/settings``): below 100 a
    #: client asking for 100 gets short pages that are not the last (``count`` says so).
    max_limit: int = MAX_LIMIT
    #: Under a simulated clock (``Emulator.set_now``) a record is served from its
    #: ``visible_at``: a connection from call start + duration + a delivery delay, a
    #: recording from its creation + a delay; the delay is uniform in [0, this] seconds.
    delivery_delay_max: int = 1200
    #: ... and ``visible_at`` is at most this long after the replication-key instant
    #: (the true UTC of ``date`` / ``created_at``).
    max_visibility_lag: int = 2700


@dataclass(slots=True, eq=False)
class _Conn:
    """One connection, compact: strings are rendered only when a page is served."""

    seq: int
    utc: int
    inbound: bool
    disposition: str
    duration: int
    billsec: int
    phone: int
    line: str
    operator: str
    agent: int
    dst_agent: int
    customer_id: int
    campaign: int
    queue: int
    topic: int
    rating: int
    tags: tuple[str, ...]
    disconnected_by: str
    transferred_to: str
    local: int = 0
    key: int = 0
    #: Creation instants (UTC) of its recording files, part 1 first. Plain ints, not
    #: ``_Rec`` objects: no reference cycle, so a dropped store is freed at once.
    recordings: tuple[int, ...] = ()

    @property
    def connection_id(self) -> str:
        return f"{self.utc}.{self.seq}"


@dataclass(slots=True, eq=False)
class _Rec:
    """One recording file of an answered connection (``part`` 1 or 2)."""

    conn: _Conn
    part: int
    created: int
    seq: int = 0
    local: int = 0
    key: int = 0


@dataclass
class _Params:
    limit: int
    offset: int
    lo: int | None
    hi: int | None
    include_tags: bool
    include_topics: bool
    filters: dict[str, list[str]]


class _BadParam(ValueError):
    """A query parameter the server rejects with 400."""


def _parse_local(name: str, value: str, upper: bool) -> int:
    """Local wall seconds of a date parameter; an upper bound covers its whole precision."""
    m = _DATE_RE.match(value.strip())
    if not m:
        raise _BadParam(
            f"Invalid value of parameter {name}: '{value}'"
            " (expected YYYY-MM-DD, YYYY-MM-DD HH:MM or YYYY-MM-DD HH:MM:SS)"
        )
    year, month, day, hh, mm, ss = m.groups()
    try:
        dt = datetime(int(year), int(month), int(day), int(hh or 0), int(mm or 0), int(ss or 0))
    except ValueError as exc:
        raise _BadParam(f"Invalid value of parameter {name}: '{value}' ({exc})") from exc
    local = int((dt - _EPOCH).total_seconds())
    if upper:
        local += 86399 if hh is None else 59 if ss is None else 0
    return local


def _parse_int(name: str, value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value.strip())
    except ValueError as exc:
        raise _BadParam(f"Invalid value of parameter {name}: '{value}' (integer expected)") from exc
    if number < 0:
        raise _BadParam(f"Invalid value of parameter {name}: '{value}' (must not be negative)")
    return number


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


_FILTERS = {
    "connections": (
        "src",
        "dst",
        "connection_id",
        "user_login",
        "queue_id",
        "topic_id",
        "customer_id",
        "tags[]",
        "tags",
    ),
    "recordings": ("src", "dst", "connection_id"),
}


class ThuliumProvider(Provider):
    """Data store, HTTP routes and test helpers of the Thulium emulator."""

    name = "thulium"
    title = "Thulium"
    api_path = "/thulium/api"
    #: ``max_limit`` below 100: a client asking for 100 gets short pages that are not the last.
    runtime_settings = ("insert_while_paging", "max_limit")

    def __init__(self, config: ThuliumConfig | None = None, seed: int = 1) -> None:
        super().__init__()
        self.config = config if config is not None else ThuliumConfig()
        self.seed = seed
        self.username = self.config.username
        self.password = self.config.password
        self.with_seconds = self.config.with_seconds
        self.insert_while_paging = self.config.insert_while_paging
        self.max_limit = self.config.max_limit
        self.validate_settings()
        self.clock = LocalClock(self.config.timezone)
        cfg = self.config
        self._conn_delivery = Delivery(
            seed, "thulium:connections", cfg.delivery_delay_max, cfg.max_visibility_lag
        )
        self._rec_delivery = Delivery(
            seed, "thulium:recordings", cfg.delivery_delay_max, cfg.max_visibility_lag
        )
        self.periods = [(utc_seconds(a), utc_seconds(b)) for a, b in self.config.periods]
        self._conns: list[_Conn] = []
        self._conn_keys: list[int] = []
        self._recs: list[_Rec] = []
        self._rec_keys: list[int] = []
        self._next_seq = 1
        self._next_rec_seq = 1
        self._insert_rng = random.Random(f"{seed}:thulium:insert")
        with gc_paused():
            self._generate(random.Random(f"{seed}:thulium"), self.config.connections)

    # -- generation ----------------------------------------------------------------

    def _seconds_step(self, ts: int) -> int:
        """Instants are whole minutes when dates render without seconds (what you see is
        the truth, so ``expected_utc == true_utc`` outside the repeated hour)."""
        return ts if self.with_seconds else ts - ts % 60

    def _forced_instants(self, rng: random.Random) -> list[tuple[int, str]]:
        """A few records on both sides of every DST transition, by call date and by
        recording creation date, so edge cases always exist whatever the seed."""
        forced: list[tuple[int, str]] = []
        for start, end in self.periods:
            for t in self.clock.transitions(start, end):
                for mode in ("date", "created"):
                    for a, b, n in (
                        (t - 3600, t - 300, 3),
                        (t - 300, t, 2),
                        (t, t + 300, 3),
                        (t + 300, t + 3600, 3),
                    ):
                        lo, hi = max(a, start), min(b, end)
                        for _ in range(n if hi > lo else 0):
                            forced.append((self._seconds_step(rng.randrange(lo, hi)), mode))
        return forced

    def _generate(self, rng: random.Random, n: int) -> None:
        """Build ``n`` connections (and their recordings) over the configured periods."""
        forced = self._forced_instants(rng)[: max(0, n)]
        plain = PeriodSampler(self.periods).draws(rng.random, max(0, n - len(forced)))
        instants = forced + [(s if self.with_seconds else s - s % 60, "plain") for s in plain]
        conns = [self._make_conn(rng, ts, mode) for ts, mode in instants]
        self._store(conns)

    def _make_conn(self, rng: random.Random, ts: int, mode: str) -> _Conn:
        """One realistic connection. ``mode``: "plain"; "date" (answered, starts at ts);
        "created" (answered, its first recording is created at ts).

        Draws use ``int(random() * n)`` rather than ``randrange``: 4x faster, and a
        million connections must build in seconds."""
        rand = rng.random
        inbound = rand() < 0.6
        if mode == "plain":
            r = rand()
            disposition = next(d for p, d in _DISPOSITIONS if r < p)
        else:
            disposition = ANSWERED
        answered = disposition == ANSWERED
        if answered:
            billsec = 5 + int(rng.expovariate(1 / 170.0))
            duration = billsec + 2 + int(rand() * 39)
        elif disposition == "NO ANSWER":
            billsec, duration = 0, 5 + int(rand() * 56)
        elif disposition == "BUSY":
            billsec, duration = 0, int(rand() * 6)
        else:
            billsec, duration = 0, 0
        campaign = -1
        n_agents = len(AGENTS)
        if inbound:
            queue = int(rand() * len(QUEUES)) if rand() < 0.9 else -1
            agent = int(rand() * n_agents) if answered else -1
            dst_agent = int(rand() * n_agents) if answered and rand() < 0.15 else -1
        else:
            campaign = int(rand() * len(CAMPAIGNS)) if rand() < 0.35 else -1
            queue = int(rand() * len(QUEUES)) if campaign >= 0 and rand() < 0.5 else -1
            agent = int(rand() * n_agents)
            dst_agent = -1
        # A record placed by its recording ("created") keeps one file: the caller counts it.
        two = answered and rand() < self.config.two_recordings_share and mode != "created"
        transferred_to = ""
        if two:
            if rand() < 0.7:
                transferred_to = AGENTS[int(rand() * n_agents)][1]
            else:
                transferred_to = str(500_000_000 + int(rand() * 400_000_000))
        conn = _Conn(
            0,
            ts,
            inbound,
            disposition,
            duration,
            billsec,
            500_000_000 + int(rand() * 400_000_000),
            LINES[int(rand() * len(LINES))],
            OPERATORS[int(rand() * len(OPERATORS))],
            agent,
            dst_agent,
            1000 + int(rand() * 999_000) if rand() < 0.75 else -1,
            campaign,
            queue,
            int(rand() * len(TOPICS)) if answered and rand() < 0.6 else -1,
            int(rand() * len(RATES)) if answered and rand() < 0.25 else -1,
            TAG_SETS[int(rand() * len(TAG_SETS))],
            "Agent" if answered and rand() < 0.55 else "Customer",
            transferred_to,
        )
        if answered:
            delays = [int(rand() * 601) for _ in range(2 if two else 1)]
            if mode == "created":
                # Work backwards: the call started before its recording was created.
                conn.utc = self._seconds_step(ts - delays[0] - duration)
            end = conn.utc + duration
            created_at: list[int] = []
            for part, delay in enumerate(delays, start=1):
                created = end + delay
                if not self.with_seconds:
                    created = -(-created // 60) * 60  # round up: never before the call ended
                if mode == "created" and part == 1:
                    created = max(ts, end)
                created_at.append(created)
            conn.recordings = tuple(created_at)
        return conn

    def _store(self, conns: list[_Conn]) -> None:
        """Assign ids in start order and merge into the sorted lists (bulk or one by one)."""
        conns.sort(key=lambda c: c.utc)
        local = self.clock.local
        recs: list[_Rec] = []
        for conn in conns:
            conn.seq = self._next_seq
            self._next_seq += 1
            conn.local = local(conn.utc)
            conn.key = conn.local * _K + conn.seq
            recs.extend(
                _Rec(conn, part, created) for part, created in enumerate(conn.recordings, start=1)
            )
        recs.sort(key=lambda r: (r.created, r.conn.seq, r.part))
        for rec in recs:
            rec.seq = self._next_rec_seq
            self._next_rec_seq += 1
            rec.local = local(rec.created)
            rec.key = rec.local * _K + rec.seq
        if self._next_seq >= _K or self._next_rec_seq >= _K:
            raise OverflowError("too many Thulium records for the sort key")
        with self.lock:
            merge_sorted(self._conns, self._conn_keys, conns)
            merge_sorted(self._recs, self._rec_keys, recs)

    # -- visibility under a simulated clock ----------------------------------------

    def conn_visible_at(self, conn: _Conn) -> int:
        """When a connection is first served: its call has ended and been delivered."""
        return self._conn_delivery.visible_at(conn.seq, conn.utc, conn.utc + conn.duration)

    def rec_visible_at(self, rec: _Rec) -> int:
        """When a recording is first served: created, then delivered."""
        return self._rec_delivery.visible_at(rec.seq, rec.created, rec.created)

    # -- rendering -----------------------------------------------------------------

    def _fmt(self, local: int) -> str:
        return format_local(local, self.with_seconds)

    def _filename(self, rec_or_conn: _Conn | _Rec) -> str:
        """``<queue slug>/<local date>/<local date>_<HHMMSS>_<connection_id>[_2].wav``."""
        if isinstance(rec_or_conn, _Rec):
            conn, part = rec_or_conn.conn, rec_or_conn.part
        else:
            conn, part = rec_or_conn, 1
        slug = QUEUES[conn.queue][1] if conn.queue >= 0 else "outbound"
        stamp = format_local(conn.local, True)
        day = stamp[:10]
        hms = stamp[11:].replace(":", "")
        suffix = "" if part == 1 else f"_{part}"
        return f"{slug}/{day}/{day}_{hms}_{conn.connection_id}{suffix}.wav"

    def _render_conn(self, c: _Conn, tags: bool, topics: bool) -> dict[str, Any]:
        """The API dict, field order as in the vendor's example."""
        agent = AGENTS[c.agent] if c.agent >= 0 else ("", "")
        dst_agent = AGENTS[c.dst_agent] if c.dst_agent >= 0 else ("", "")
        phone = str(c.phone)
        record: dict[str, Any] = {
            "date": self._fmt(c.local),
            "src": phone if c.inbound else c.line,
            "dst": c.line if c.inbound else phone,
            "disposition": c.disposition,
            "duration": c.duration,
            "billsec": c.billsec,
            "operator": c.operator,
            "filename": self._filename(c) if c.recordings else "",
            "user": agent[0],
            "user_login": agent[1],
            "dst_user": dst_agent[0],
            "dst_user_login": dst_agent[1],
            "customer_id": c.customer_id if c.customer_id >= 0 else "",
            "outbound_id": CAMPAIGNS[c.campaign][0] if c.campaign >= 0 else "",
            "connection_id": c.connection_id,
            "type": "INBOUND" if c.inbound else "OUTBOUND",
            "rating": {"type": "face", "rate": RATES[c.rating]} if c.rating >= 0 else None,
            "queue_id": QUEUES[c.queue][0] if c.queue >= 0 else "",
            "topic_id": TOPICS[c.topic][0] if c.topic >= 0 else None,
        }
        if topics:
            record["topic"] = TOPICS[c.topic][1] if c.topic >= 0 else None
        if tags:
            record["tags"] = list(c.tags)
        record["disconnected_by"] = c.disconnected_by
        record["transferred_to"] = c.transferred_to
        if c.campaign >= 0:
            record["campaign_name"] = CAMPAIGNS[c.campaign][1]
        return record

    def _render_rec(self, r: _Rec) -> dict[str, Any]:
        c = r.conn
        phone = str(c.phone)
        return {
            "date": self._fmt(c.local),
            "created_at": self._fmt(r.local),
            "src": phone if c.inbound else c.line,
            "dst": c.line if c.inbound else phone,
            "disposition": ANSWERED,
            "duration": c.duration,
            "billsec": c.billsec,
            "filename": self._filename(r),
            "user": AGENTS[c.agent][0] if c.agent >= 0 else "",
            "connection_id": c.connection_id,
            "type": "INBOUND" if c.inbound else "OUTBOUND",
        }

    # -- HTTP ----------------------------------------------------------------------

    def routes(self) -> Routes:
        return {
            ("GET", "/api/connections"): lambda req: self._list(req, "connections"),
            ("GET", "/api/recordings"): lambda req: self._list(req, "recordings"),
        }

    def control_routes(self) -> Routes:
        return {
            **super().control_routes(),
            ("GET", "/expected"): self._control_expected,
            ("POST", "/insert"): self._control_insert,
        }

    def coerce_setting(self, name: str, value: Any) -> int:
        return int(value)

    def validate_settings(self) -> None:
        if self.max_limit < 1:
            raise ValueError("max_limit must be >= 1")

    def error_response(self, status: int, message: str) -> Response:
        """Thulium's error body: ``{"errors": [{"code": <int>, "message": "..."}]}``."""
        return Response.json({"errors": [{"code": status, "message": message}]}, status)

    def describe(self, base_url: str) -> dict[str, Any]:
        return {
            "api_url": base_url + self.api_path,
            "username": self.username,
            "password": self.password,
            "timezone": self.config.timezone,
        }

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(token.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return bool(sep) and user == self.username and password == self.password

    def _params(self, request: Request, stream: str) -> _Params:
        date_from = request.arg("date_from")
        date_to = request.arg("date_to")
        filters = {
            name: values
            for name in _FILTERS[stream]
            if (values := [v for v in request.query.get(name, []) if v != ""])
        }
        return _Params(
            limit=min(_parse_int("limit", request.arg("limit"), DEFAULT_LIMIT), self.max_limit),
            offset=_parse_int("offset", request.arg("offset"), 0),
            lo=_parse_local("date_from", date_from, False) if date_from else None,
            hi=_parse_local("date_to", date_to, True) if date_to else None,
            include_tags=_truthy(request.arg("include_tags")),
            include_topics=_truthy(request.arg("include_topics")),
            filters=filters,
        )

    def _list(self, request: Request, stream: str) -> Response:
        if not self._authorized(request):
            resp = self.error_response(401, "Unauthorized: invalid username or password")
            resp.headers.append(("WWW-Authenticate", 'Basic realm="Thulium API"'))
            return resp
        try:
            params = self._params(request, stream)
        except _BadParam as exc:
            return self.error_response(400, str(exc))
        now = self.sim_clock.now
        with self.lock:
            if params.offset > 0 and self.insert_while_paging > 0:
                self._insert_for_paging(stream, params)
            items: list[Any] = self._conns if stream == "connections" else self._recs
            keys = self._conn_keys if stream == "connections" else self._rec_keys
            i0 = bisect_left(keys, params.lo * _K) if params.lo is not None else 0
            i1 = bisect_left(keys, (params.hi + 1) * _K) if params.hi is not None else len(keys)
            if now is not None:
                count, page = self._visible_page(stream, i0, i1, now, params)
            elif params.filters:
                matched = [
                    items[i]
                    for i in range(i1 - 1, i0 - 1, -1)
                    if self._matches(items[i], stream, params.filters)
                ]
                count = len(matched)
                page = matched[params.offset : params.offset + params.limit]
            else:
                count = max(0, i1 - i0)
                start = i1 - 1 - params.offset
                stop = max(i0 - 1, start - params.limit)
                page = [items[i] for i in range(start, stop, -1)]
        if stream == "connections":
            tags, topics = params.include_tags, params.include_topics
            result = [self._render_conn(c, tags, topics) for c in page]
        else:
            result = [self._render_rec(r) for r in page]
        if self.loose_types:
            return Response.json(loosen({"count": count, "result": result}))
        return Response.json({"count": count, "result": result})

    def _visible_page(
        self, stream: str, i0: int, i1: int, now: int, params: _Params
    ) -> tuple[int, list[Any]]:
        """``count`` and page over the records of [i0, i1) visible at ``now`` only: the
        same answer as without a clock over a store holding just those records."""
        items: list[Any] = self._conns if stream == "connections" else self._recs
        visible_at = self.conn_visible_at if stream == "connections" else self.rec_visible_at
        visible = self.visible_index.get(stream, items, i0, i1, now=now, visible_at=visible_at)
        if params.filters:
            matched = [
                items[i]
                for i in reversed(visible)
                if self._matches(items[i], stream, params.filters)
            ]
            return len(matched), matched[params.offset : params.offset + params.limit]
        count = len(visible)
        start = count - 1 - params.offset
        stop = max(-1, start - params.limit)
        return count, [items[visible[k]] for k in range(start, stop, -1)]

    def _matches(self, item: Any, stream: str, filters: dict[str, list[str]]) -> bool:
        """Equality filters of the docs (rarely used; a linear scan of the date range)."""
        record = (
            self._render_conn(item, True, False)
            if stream == "connections"
            else self._render_rec(item)
        )
        for name, values in filters.items():
            if name in ("tags", "tags[]"):
                if not set(values) & set(record.get("tags", [])):
                    return False
            elif str(record.get(name, "")) not in values:
                return False
        return True

    # -- mutation helpers ----------------------------------------------------------

    def insert_connections(
        self,
        n: int,
        at_utc_range: UtcRange | None = None,
        answered: bool = False,
    ) -> list[dict[str, Any]]:
        """Late arrivals: ``n`` new connections (and their recordings) with call start
        uniformly in ``at_utc_range`` (default: the last hour of the last period).
        Returns their API dicts (with tags and topic)."""
        start, stop = late_arrival_range(self.periods, at_utc_range)
        with self.lock:
            rng = self._insert_rng
            mode = "date" if answered else "plain"
            conns = [
                self._make_conn(rng, self._seconds_step(rng.randrange(start, stop)), mode)
                for _ in range(n)
            ]
            self._store(conns)
        return [self._render_conn(c, True, True) for c in conns]

    def _insert_for_paging(self, stream: str, params: _Params) -> None:
        """Insert records inside the last 30 minutes of the requested local range, no
        older than its newest record: they sort first and push every later page down."""
        keys = self._conn_keys if stream == "connections" else self._rec_keys
        lo, hi = newest_insert_range(
            keys, params.lo, params.hi, self.clock.local(max(e for _, e in self.periods)) - 1
        )
        rng = self._insert_rng
        conns: list[_Conn] = []
        attempts = 0
        while len(conns) < self.insert_while_paging and attempts < 100 * self.insert_while_paging:
            attempts += 1
            local = rng.randint(lo, hi)
            if not self.with_seconds:
                local -= local % 60
                if local < lo:
                    continue
            utc = self.clock.first_occurrence_utc(local)
            if self.clock.local(utc) != local:
                continue  # a wall time the clock skips
            if stream == "connections":
                conns.append(self._make_conn(rng, utc, "plain"))
            else:
                conn = self._make_conn(rng, utc, "created")
                if not lo <= self.clock.local(conn.recordings[0]) <= hi:
                    continue
                conns.append(conn)
        self._store(conns)

    # -- expectations for tests ----------------------------------------------------

    def _expected_iso(self, local: int) -> str:
        """What a correct client emits for this local string (first occurrence)."""
        return iso_utc(self.clock.first_occurrence_utc(local))

    def expected(
        self,
        stream: str,
        include_tags: bool = True,
        include_topics: bool = True,
        as_of: Instant = None,
    ) -> list[dict[str, Any]]:
        """Every stored record, newest first, with its key, local string, true UTC and
        the UTC a correct client emits (``expected_fields`` covers every date field), and
        ``visible_at`` (ISO UTC: served from then on under a simulated clock).

        Every record is listed whatever the clock (filter on ``visible_at``). ``as_of``
        (the providers share it) asks for the version served at that instant; a Thulium
        record has one version, so here it changes nothing."""
        parse_instant(as_of)
        if stream not in STREAMS:
            raise ValueError(f"unknown Thulium stream {stream!r}; expected one of {STREAMS}")
        with self.lock:
            items: list[Any] = list(self._conns if stream == "connections" else self._recs)
        out: list[dict[str, Any]] = []
        iso_cache: dict[int, str] = {}

        def iso(local: int) -> str:
            value = iso_cache.get(local)
            if value is None:
                value = iso_cache[local] = self._expected_iso(local)
            return value

        with gc_paused():
            for item in reversed(items):
                out.append(self._expected_row(stream, item, iso, include_tags, include_topics))
        return out

    def _expected_row(
        self,
        stream: str,
        item: Any,
        iso: Callable[[int], str],
        include_tags: bool,
        include_topics: bool,
    ) -> dict[str, Any]:
        """One row of :meth:`expected`."""
        if stream == "connections":
            record = self._render_conn(item, include_tags, include_topics)
            fields = {"date": iso(item.local)}
            return {
                "key": (record["connection_id"],),
                "local": record["date"],
                "true_utc": iso_utc(item.utc),
                "expected_utc": fields["date"],
                "expected_fields": fields,
                "visible_at": iso_utc(self.conn_visible_at(item)),
                "record": record,
            }
        record = self._render_rec(item)
        fields = {"date": iso(item.conn.local), "created_at": iso(item.local)}
        return {
            "key": (record["connection_id"], record["filename"]),
            "local": record["created_at"],
            "true_utc": iso_utc(item.created),
            "expected_utc": fields["created_at"],
            "expected_fields": fields,
            "visible_at": iso_utc(self.rec_visible_at(item)),
            "record": record,
        }

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {"connections": len(self._conns), "recordings": len(self._recs)}

    # -- control endpoints ---------------------------------------------------------

    def _control_expected(self, request: Request) -> Response:
        stream = request.arg("stream", "connections") or "connections"
        tags = request.arg("include_tags")
        topics = request.arg("include_topics")
        rows = self.expected(
            stream,
            include_tags=True if tags is None else _truthy(tags),
            include_topics=True if topics is None else _truthy(topics),
        )
        return expected_response(rows)

    def _control_insert(self, request: Request) -> Response:
        body, n, at_utc = insert_arguments(request)
        return inserted_response(
            self.insert_connections(n, at_utc, answered=bool(body.get("answered", False)))
        )


def _factory(config: Any, seed: int) -> Provider:
    return ThuliumProvider(config, seed)


register_provider("thulium", ThuliumConfig, _factory)

__all__ = ["DEFAULT_PASSWORD", "DEFAULT_USERNAME", "ThuliumConfig", "ThuliumProvider"]

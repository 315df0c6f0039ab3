"""Eltex ECSS-10 emulator: the call-center ARM command ``operator_call_history``.

Served under ``/ecss`` (so ``api_url = emu.url + "/ecss"``) at
``POST {api_url}/{domain}/service/cc/arm/{login,logout,operator_call_history}``, and
over a websocket on its own port (``emu.ecss.ws_url``). Behaves like the vendor doc
(api-docs/operator_call_history.txt) and the contract:

* login with ``client_id``/``api_key``/``phone_number`` (form or query) -> session
  cookie ``ECSS_SESSION``; every data request needs it (403 otherwise);
* request/response XML (``<in><request><filters .../>`` / ``<out><response><history>``),
  or over the websocket the same tree in the ``_name``/``_attributes``/``_content``
  JSON form inside ``01`` + length(10) + request id(4) + command / status(3) frames;
* dates ``YYYY/MM/DD HH:MM:SS`` in the server's LOCAL time, ``from_date`` and
  ``to_date`` both inclusive to the second, records newest first;
* paging by an opaque ``tag`` (base64 of an Erlang term, like the real server):
  present while more records remain, absent on the last page;
* errors: ``<out><error code=".." cmd="..">text</error></out>``, inside an HTTP 200
  for a bad request body (what ECSS does), with 403 for auth; over the websocket the
  frame status carries the code.

Data is generated at true UTC instants from a seed, stored sorted by local time
(sort key + ``bisect``), so a page costs the same with 1,000,000 records.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
import secrets
import time
import xml.etree.ElementTree as ET
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from emulator.base import (
    Delivery,
    Instant,
    Provider,
    ProviderHost,
    Request,
    Response,
    Routes,
    UtcRange,
    expected_response,
    insert_arguments,
    inserted_response,
    iso_utc,
    parse_instant,
    register_provider,
)
from emulator.ecss import etf
from emulator.ecss.websocket import Connection, Handshake, Refusal, WebSocketServer
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

DEFAULT_DOMAIN = "cc.demo"
DEFAULT_CLIENT_ID = "tap-client"
DEFAULT_API_KEY = "ecss-Secret-Key-9"
DEFAULT_PHONE_NUMBER = "102"
COOKIE_NAME = "ECSS_SESSION"
COMMAND = "operator_call_history"
ARM_PATH = "/service/cc/arm"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA = "operator_call_history.xsd"
STREAM = "ecss_operator_call_history"

#: Attribute order of ``call_history`` (the XSD's, then ``release_reason``).
ATTRIBUTES: tuple[str, ...] = (
    "call_ref",
    "start_time",
    "answer_time",
    "release_time",
    "duration",
    "total_duration",
    "waiting_duration",
    "talk_duration",
    "queue_id",
    "direction",
    "display_name",
    "digits",
    "call_record",
    "remote_display_name",
    "remote_digits",
    "remote_agent_id",
    "release_reason",
)
#: Child lists of ``call_history``: (element, child element). ``url_list`` is always
#: present (maybe empty); the others only when the call has them.
LISTS: tuple[tuple[str, str], ...] = (
    ("url_list", "url"),
    ("ss_list", "ss"),
    ("success_faxes", "url"),
    ("failed_faxes", "url"),
)

#: Sort key = local seconds * _K + seq; seq stays below _K.
_K = KEY_SCALE
_EPOCH = datetime(1970, 1, 1)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DATE_RE = re.compile(r"^(\d{4})/(\d{2})/(\d{2}) (\d{2}):(\d{2}):(\d{2})$")
_HEADER_RE = re.compile(rb"^01(\d{10})(\d{4})([A-Za-z_][A-Za-z0-9_]*)(\r?\n)?")
_SHORT_P = 4_294_967_291  # prime: call_ref = bijection of seq, never a collision
_LONG_P = 2**61 - 1

#: The operator's display name for a call ("" often, as in the vendor example).
OPERATOR_NAMES: tuple[str, ...] = ("", "", "Иванова Мария", "Maria Ivanova", "Оператор {phone}")
#: Remote party names: Cyrillic (multi-byte UTF-8), Latin, empty, and XML specials.
REMOTE_NAMES: tuple[str, ...] = (
    "",
    "Абонент 1",
    "Петров Пётр",
    "Сидорова Анна",
    "Кузнецов Алексей",
    "Смирнова Ольга",
    "Новосибирск ГТС",
    "John Smith",
    'Фирма "Ромашка" & сыновья',
    "Ёлкин <VIP>",
    "Оператор 105",
    "Служба поддержки",
)
QUEUE_IDS: tuple[str, ...] = ("1", "2", "5", "12", "34")
REASONS: tuple[str, ...] = ("released_by_a", "released_by_b", "released_by_system")
SS_SETS: tuple[tuple[str, ...], ...] = (
    ("hold",),
    ("transfer",),
    ("hold", "transfer"),
    ("conference",),
    ("call_pickup",),
)

Element = tuple[str, dict[str, str], list["Element"] | str | None]


#: Attributes holding whole seconds.
DURATIONS = ("duration", "total_duration", "waiting_duration", "talk_duration")


_DAY_CACHE: dict[int, str] = {}


def _day(day: int) -> str:
    """``YYYY/MM/DD`` of a day number since 1970-01-01 (cached)."""
    ds = _DAY_CACHE.get(day)
    if ds is None:
        ds = _DAY_CACHE[day] = date.fromordinal(_EPOCH_ORDINAL + day).strftime("%Y/%m/%d")
    return ds


def format_local(local: int) -> str:
    """Local wall seconds (naive epoch) -> ``YYYY/MM/DD HH:MM:SS``."""
    day, rem = divmod(local, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, seconds = divmod(rem, 60)
    return f"{_day(day)} {hours:02d}:{minutes:02d}:{seconds:02d}"


def parse_local(value: str) -> int:
    """``YYYY/MM/DD HH:MM:SS`` -> local wall seconds; ``ValueError`` otherwise."""
    m = _DATE_RE.match(value)
    if not m:
        raise ValueError("expected YYYY/MM/DD HH:MM:SS")
    year, month, day, hh, mm, ss = (int(g) for g in m.groups())
    dt = datetime(year, month, day, hh, mm, ss)
    return int((dt - _EPOCH).total_seconds())


# -- XML and JSON forms of one element tree ------------------------------------------


def _esc(value: str) -> str:
    if "&" in value or "<" in value or ">" in value or '"' in value:
        value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        value = value.replace('"', "&quot;")
    return value


def to_xml(elem: Element, out: list[str]) -> None:
    """Append the XML of ``elem`` to ``out`` (attributes in dict order)."""
    name, attrs, content = elem
    out.append("<" + name)
    for key, value in attrs.items():
        out.append(f' {key}="{_esc(value)}"')
    if content is None or content == []:
        out.append("/>")
        return
    out.append(">")
    if isinstance(content, str):
        out.append(_esc(content))
    else:
        for child in content:
            to_xml(child, out)
    out.append(f"</{name}>")


def to_json(elem: Element) -> dict[str, Any]:
    """The vendor's JSON form: ``_name``, ``_attributes`` (if any), ``_content`` (if any:
    a list of elements, or the text as a string)."""
    name, attrs, content = elem
    node: dict[str, Any] = {"_name": name}
    if attrs:
        node["_attributes"] = attrs
    if isinstance(content, str):
        node["_content"] = content
    elif content:
        node["_content"] = [to_json(child) for child in content]
    return node


def xml_document(root: Element) -> bytes:
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    to_xml(root, out)
    return "".join(out).encode()


def error_element(code: int, cmd: str, message: str) -> Element:
    """``<out><error code=".." cmd="..">message</error></out>``."""
    return ("out", {}, [("error", {"code": str(code), "cmd": cmd}, message)])


# -- configuration and records --------------------------------------------------------


@dataclass
class EcssConfig:
    """Seeded data and behaviour of the ECSS emulator (runtime knobs: see SETTINGS)."""

    timezone: str = "Europe/Helsinki"
    calls: int = 2000
    periods: Sequence[tuple[datetime | str, datetime | str]] = DEFAULT_PERIODS
    domain: str = DEFAULT_DOMAIN
    client_id: str = DEFAULT_CLIENT_ID
    api_key: str = DEFAULT_API_KEY
    phone_number: str = DEFAULT_PHONE_NUMBER
    cookie_name: str = COOKIE_NAME
    #: Port of the websocket server (0 = a free one; kept across stop/start).
    ws_port: int = 0
    #: Base of record/fax URLs in ``url_list``/``success_faxes``/``failed_faxes``.
    media_base_url: str = "http://ecss.cc.demo:9990"
    # -- runtime knobs (also settable later: provider.set(...), POST /settings) --
    #: A session is valid this long after its login (None = forever).
    session_ttl_seconds: float | None = None
    #: Bigger ``limit`` values are silently cut to this.
    max_limit: int = 100
    #: On each request carrying a tag, insert this many calls at the head of the window.
    insert_while_paging: int = 0
    #: True = every tagged request answers the SAME tag it got (server bug); N > 0 = the
    #: next N tagged requests do; 0/False = off. "aba" = a tag cycle: a request carrying
    #: tag B answers the tag the client sent before B, so a window of 3+ pages yields the
    #: tags A, B, A (then B, A, ... for a client that does not notice).
    repeat_tag: bool | int | str = False
    #: What a tag's cursor means: "key" (after the last record sent: stable, like the
    #: real server's datetime cursor) or "offset" (a position: inserts shift pages).
    tag_cursor: str = "key"
    #: Newline between a websocket response header and its JSON payload.
    ws_newline: bool = True
    #: Split websocket responses into frames of this many bytes (0 = one frame).
    ws_fragment_bytes: int = 0
    #: The next N websocket responses are malformed (-1 = forever).
    ws_malformed_next: int = 0
    #: The next N websocket requests are answered by closing the socket (-1 = forever).
    ws_drop_next: int = 0
    #: Share of answered calls with a ``url_list`` entry (some have two).
    recorded_share: float = 0.6
    #: Under a simulated clock (``Emulator.set_now``) a call is served from its
    #: ``visible_at``: start + total duration (its release) + a delivery delay uniform
    #: in [0, this] seconds ...
    delivery_delay_max: int = 1200
    #: ... and at most this many seconds after its start_time (true UTC).
    max_visibility_lag: int = 2700


#: Knobs that may change at run time.
SETTINGS: tuple[str, ...] = (
    "session_ttl_seconds",
    "max_limit",
    "insert_while_paging",
    "repeat_tag",
    "tag_cursor",
    "ws_newline",
    "ws_fragment_bytes",
    "ws_malformed_next",
    "ws_drop_next",
)


@dataclass(slots=True, eq=False)
class _Call:
    """One call, compact: strings are rendered only when a page is served."""

    utc: int
    inbound: bool
    waiting: int
    talk: int
    #: duration = max(0, talk - trim): the doc's duration is a second or so below talk.
    trim: int
    queue: int
    display: int
    remote_name: int
    #: 0 mobile (+7...), 1 landline (8383...), 2 internal (3 digits)
    remote_kind: int
    remote_number: int
    remote_agent: int
    reason: int
    call_record: bool
    urls: int
    ss: int
    #: bit 1: a received fax, bit 2: a failed one
    faxes: int
    long_ref: bool
    seq: int = 0
    local: int = 0
    key: int = 0
    call_ref: int = 0


@dataclass
class _Query:
    """One parsed ``filters`` element (either transport)."""

    offset: int
    limit: int
    from_date: str | None
    to_date: str | None
    lo: int | None
    hi: int | None
    direction: str | None
    #: The raw tag sent back by the client, and its decoded cursor.
    tag: str | None = None
    cursor_key: int | None = None
    cursor_pos: int = 0


class EcssError(Exception):
    """A request the server answers with ``<out><error code=..>``."""

    def __init__(self, code: int, message: str, cmd: str = COMMAND) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.cmd = cmd


@dataclass
class _Session:
    created: float
    generation: int


class EcssProvider(Provider):
    """Data store, HTTP routes, websocket transport and test helpers of ECSS."""

    name = "ecss"
    title = "ECSS"
    api_path = "/ecss"
    runtime_settings = SETTINGS

    def __init__(self, config: EcssConfig | None = None, seed: int = 1) -> None:
        super().__init__()
        self.config = config if config is not None else EcssConfig()
        cfg = self.config
        self.seed = seed
        self.domain = cfg.domain
        self.client_id = cfg.client_id
        self.api_key = cfg.api_key
        self.phone_number = cfg.phone_number
        self.cookie_name = cfg.cookie_name
        for knob in SETTINGS:
            setattr(self, knob, getattr(cfg, knob))
        self.session_ttl_seconds: float | None
        self.max_limit: int
        self.insert_while_paging: int
        self.repeat_tag: bool | int | str
        self.tag_cursor: str
        self.ws_newline: bool
        self.ws_fragment_bytes: int
        self.ws_malformed_next: int
        self.ws_drop_next: int
        self.validate_settings()
        self.clock = LocalClock(cfg.timezone)
        self.periods = [(utc_seconds(a), utc_seconds(b)) for a, b in cfg.periods]
        self.ws_port = cfg.ws_port
        self.ws_host = "127.0.0.1"
        self._ws: WebSocketServer | None = None
        self._sessions: dict[str, _Session] = {}
        self._generation = 0
        self._calls: list[_Call] = []
        self._keys: list[int] = []
        self._next_seq = 1
        self._malformed_variant = 0
        #: repeat_tag="aba": tag issued -> the tag its request carried (None: the first page).
        self._tag_parents: dict[str, str | None] = {}
        rng = random.Random(f"{seed}:ecss")
        self._ref_salt = rng.randrange(1, 1_000_000)
        self._insert_rng = random.Random(f"{seed}:ecss:insert")
        self._delivery = Delivery(
            seed, "ecss:calls", cfg.delivery_delay_max, cfg.max_visibility_lag
        )
        with gc_paused():
            self._generate(rng, cfg.calls)

    # -- settings ------------------------------------------------------------------

    def validate_settings(self) -> None:
        if self.tag_cursor not in ("key", "offset"):
            raise ValueError(f"tag_cursor must be 'key' or 'offset', not {self.tag_cursor!r}")
        if int(self.max_limit) < 1:
            raise ValueError("max_limit must be >= 1")
        if isinstance(self.repeat_tag, str) and self.repeat_tag != "aba":
            raise ValueError(
                f"repeat_tag must be a bool, a count or 'aba', not {self.repeat_tag!r}"
            )

    def reset_settings(self) -> None:
        """Runtime knobs back to the config's values."""
        with self.lock:
            for name in SETTINGS:
                setattr(self, name, getattr(self.config, name))

    # -- generation ----------------------------------------------------------------

    def _forced_instants(self, rng: random.Random) -> list[int]:
        """Calls on both sides of every DST transition (both occurrences of the repeated
        autumn hour), and a few that start just before one and end after it."""
        forced: list[int] = []
        for start, end in self.periods:
            for t in self.clock.transitions(start, end):
                for a, b, n in (
                    (t - 3600, t - 300, 4),
                    (t - 300, t, 2),
                    (t - 40, t - 1, 2),
                    (t, t + 300, 3),
                    (t + 300, t + 3600, 4),
                ):
                    lo, hi = max(a, start), min(b, end)
                    forced.extend(rng.randrange(lo, hi) for _ in range(n if hi > lo else 0))
        return forced

    def _generate(self, rng: random.Random, n: int) -> None:
        forced = self._forced_instants(rng)[: max(0, n)]
        instants = forced + PeriodSampler(self.periods).draws(rng.random, max(0, n - len(forced)))
        self._store([self._make_call(rng, ts) for ts in instants])

    def _make_call(self, rng: random.Random, ts: int) -> _Call:
        """One realistic call of the operator. ``int(random() * n)`` draws: fast."""
        rand = rng.random
        inbound = rand() < 0.65
        answered = rand() < 0.78
        if answered:
            waiting = 2 + int(rand() * 25) if inbound else 3 + int(rand() * 15)
            talk = 1 + int(rng.expovariate(1 / 150.0))
            reason = 0 if rand() < 0.45 else (1 if rand() < 0.8 else 2)
        else:
            waiting = 1 + int(rand() * 60)
            talk = 0
            reason = 2 if rand() < 0.7 else 0
        r = rand()
        if r < 0.15:
            remote_kind, remote_number = 2, 100 + int(rand() * 100)
        elif r < 0.7:
            remote_kind, remote_number = 0, 9_000_000_000 + int(rand() * 999_999_999)
        else:
            remote_kind, remote_number = 1, int(rand() * 10_000_000)
        remote_agent = 1 + int(rand() * 60) if remote_kind == 2 and rand() < 0.6 else -1
        recorded = answered and rand() < self.config.recorded_share
        r = rand()
        faxes = (1 if r < 0.02 else 2 if r < 0.035 else 0) if answered else 0
        return _Call(
            utc=ts,
            inbound=inbound,
            waiting=waiting,
            talk=talk,
            trim=1 if talk > 0 and rand() < 0.7 else 0,
            queue=int(rand() * len(QUEUE_IDS)) if inbound and rand() < 0.7 else -1,
            display=int(rand() * len(OPERATOR_NAMES)),
            remote_name=int(rand() * len(REMOTE_NAMES)),
            remote_kind=remote_kind,
            remote_number=remote_number,
            remote_agent=remote_agent,
            reason=reason,
            call_record=answered and rand() < 0.3,
            urls=(2 if rand() < 0.2 else 1) if recorded else 0,
            ss=int(rand() * len(SS_SETS)) if answered and rand() < 0.08 else -1,
            faxes=faxes,
            long_ref=rand() < 0.35,
        )

    def _store(self, calls: list[_Call]) -> None:
        """Assign seq/call_ref in start order and merge into the sorted list."""
        calls.sort(key=lambda c: c.utc)
        local = self.clock.local
        salt = self._ref_salt
        with self.lock:
            for call in calls:
                seq = call.seq = self._next_seq
                self._next_seq += 1
                call.local = local(call.utc)
                call.key = call.local * _K + seq
                if call.long_ref:
                    call.call_ref = 10**18 + (seq + salt) * 11_400_714_819_323_198_485 % _LONG_P
                else:
                    call.call_ref = 100_000_000 + (seq + salt) * 2_654_435_761 % _SHORT_P
            if self._next_seq >= _K:
                raise OverflowError("too many ECSS calls for the sort key")
            merge_sorted(self._calls, self._keys, calls)

    # -- visibility under a simulated clock ----------------------------------------

    def call_visible_at(self, c: _Call) -> int:
        """When a call is first served: it has been released and delivered."""
        return self._delivery.visible_at(c.seq, c.utc, c.utc + c.waiting + c.talk)

    # -- rendering -----------------------------------------------------------------

    def _attributes(self, c: _Call) -> dict[str, str]:
        """Every attribute as the API renders it (strings), in the XSD's order."""
        local = self.clock.local
        answered = c.talk > 0
        if c.remote_kind == 0:
            remote = f"+7{c.remote_number}"
        elif c.remote_kind == 1:
            remote = f"8383{c.remote_number:07d}"
        else:
            remote = str(c.remote_number)
        ref = str(c.call_ref)
        return {
            "call_ref": ref,
            "start_time": format_local(c.local),
            "answer_time": format_local(local(c.utc + c.waiting)) if answered else "",
            "release_time": format_local(local(c.utc + c.waiting + c.talk)),
            "duration": str(max(0, c.talk - c.trim)),
            "total_duration": str(c.waiting + c.talk),
            "waiting_duration": str(c.waiting),
            "talk_duration": str(c.talk),
            "queue_id": QUEUE_IDS[c.queue] if c.queue >= 0 else "",
            "direction": "in" if c.inbound else "out",
            "display_name": OPERATOR_NAMES[c.display].format(phone=self.phone_number),
            "digits": self.phone_number,
            "call_record": f"{ref}_{self.phone_number}.wav" if c.call_record else "",
            "remote_display_name": REMOTE_NAMES[c.remote_name],
            "remote_digits": remote,
            "remote_agent_id": str(c.remote_agent) if c.remote_agent >= 0 else "",
            "release_reason": REASONS[c.reason],
        }

    def _lists(self, c: _Call) -> dict[str, list[str]]:
        """The child lists: ``url_list`` always, the others only when present."""
        day = _day(c.local // 86400)
        ref = c.call_ref
        base = self.config.media_base_url
        urls = [f"{base}/records/{day}/{ref}.wav", f"{base}/records/{day}/{ref}_2.wav"]
        lists: dict[str, list[str]] = {"url_list": urls[: c.urls]}
        if c.ss >= 0:
            lists["ss_list"] = list(SS_SETS[c.ss])
        if c.faxes & 1:
            lists["success_faxes"] = [f"{base}/faxes/{day}/{ref}.tif"]
        if c.faxes & 2:
            lists["failed_faxes"] = [f"{base}/faxes/{day}/{ref}_failed.tif"]
        return lists

    def record(self, c: _Call) -> dict[str, Any]:
        """Raw attributes plus the lists (what ``expected()`` and inserts return)."""
        row: dict[str, Any] = self._attributes(c)
        row.update(self._lists(c))
        return row

    def _element(self, c: _Call) -> Element:
        attributes = self._attributes(c)
        if self.loose_types:
            # every attribute is text already: a loose server writes whole numbers as
            # decimals ("45.0"), which still read as whole seconds
            for name in DURATIONS:
                attributes[name] += ".0"
        lists = self._lists(c)
        children: list[Element] = [
            (name, {}, [(child, {}, value) for value in lists[name]])
            for name, child in LISTS
            if name in lists
        ]
        return ("call_history", attributes, children)

    def _response_element(self, calls: list[_Call], tag: str | None) -> Element:
        history: Element = (
            "history",
            {"tag": tag} if tag is not None else {},
            [self._element(c) for c in calls],
        )
        now = self.sim_clock.now
        stamp = format_local(self.clock.local(int(time.time()) if now is None else now))
        return (
            "out",
            {"xmlns:xs": XSI, "xs:noNamespaceSchemaLocation": SCHEMA},
            [("response", {"timestamp": stamp}, [history])],
        )

    # -- sessions ------------------------------------------------------------------

    def login(self, client_id: str | None, api_key: str | None, phone: str | None) -> str:
        """A new session id; ``EcssError(403)`` on wrong credentials."""
        if not (client_id and api_key and phone):
            missing = [
                name
                for name, value in (
                    ("client_id", client_id),
                    ("api_key", api_key),
                    ("phone_number", phone),
                )
                if not value
            ]
            raise EcssError(403, f"Authorization failed: missing {', '.join(missing)}", "login")
        if (client_id, api_key, phone) != (self.client_id, self.api_key, self.phone_number):
            raise EcssError(
                403, "Authorization failed: invalid client_id, api_key or phone_number", "login"
            )
        sid = secrets.token_hex(16)
        with self.lock:
            self._sessions[sid] = _Session(time.monotonic(), self._generation)
        return sid

    def session_valid(self, sid: str | None) -> bool:
        if not sid:
            return False
        with self.lock:
            session = self._sessions.get(sid)
            if session is None or session.generation != self._generation:
                return False
            ttl = self.session_ttl_seconds
            if ttl is not None and time.monotonic() - session.created >= float(ttl):
                return False
        return True

    def expire_sessions(self) -> int:
        """Every current session becomes invalid (a 403 on its next request)."""
        with self.lock:
            count = len(self._sessions)
            self._generation += 1
            self._sessions.clear()
        return count

    def logout(self, sid: str | None) -> None:
        with self.lock:
            self._sessions.pop(sid or "", None)

    # -- queries and paging --------------------------------------------------------

    def _int_attr(self, attrs: dict[str, str], name: str, default: int | None) -> int:
        raw = attrs.get(name)
        if raw is None or raw == "":
            if default is None:
                raise EcssError(400, f"Invalid filters: attribute {name} is required")
            return default
        try:
            return int(str(raw).strip())
        except ValueError:
            raise EcssError(400, f"Invalid filters: {name}='{raw}' is not an integer") from None

    def _query(self, attrs: dict[str, str]) -> _Query:
        """Filters -> query; a tag is decoded and checked against the filters."""
        attrs = {k: str(v) for k, v in attrs.items()}
        offset = self._int_attr(attrs, "offset", 0)
        limit = self._int_attr(attrs, "limit", 50)
        if offset < 0:
            raise EcssError(400, f"Invalid filters: offset={offset} must not be negative")
        if limit < 1:
            raise EcssError(400, f"Invalid filters: limit={limit} must be positive")
        limit = min(limit, int(self.max_limit))
        direction = attrs.get("direction") or None
        if direction not in (None, "in", "out"):
            raise EcssError(400, f"Invalid filters: direction='{direction}' (in or out)")
        from_date = attrs.get("from_date") or None
        to_date = attrs.get("to_date") or None
        query = _Query(offset, limit, from_date, to_date, None, None, direction)
        tag = attrs.get("tag") or None
        if tag is not None:
            self._apply_tag(query, tag)
        for name in ("from_date", "to_date"):
            value = getattr(query, name)
            if value is None:
                continue
            try:
                local = parse_local(value)
            except ValueError as exc:
                raise EcssError(
                    400, f"Invalid date format: {name}='{value}' ({exc} in server local time)"
                ) from None
            setattr(query, "lo" if name == "from_date" else "hi", local)
        return query

    def _make_tag(self, query: _Query, last: _Call, pos: int) -> str:
        local = datetime(1970, 1, 1) + timedelta(seconds=last.local)
        filters = [
            (etf.Atom(name), value.encode())
            for name, value in (
                ("from_date", query.from_date),
                ("to_date", query.to_date),
                ("direction", query.direction),
            )
            if value is not None
        ]
        filters.append((etf.Atom("cc_agent_id"), self.phone_number.encode()))
        term = (
            etf.Atom("tag"),
            etf.Atom("history"),
            (
                etf.Atom("cursor"),
                (
                    (local.year, local.month, local.day),
                    (local.hour, local.minute, local.second),
                ),
                last.seq,
                pos,
            ),
            filters,
        )
        return base64.b64encode(etf.encode(term)).decode()

    def _apply_tag(self, query: _Query, tag: str) -> None:
        """Decode a tag into the query's cursor; 400 when garbled or not for these filters."""
        try:
            term = etf.decode(base64.b64decode(tag.encode(), validate=True))
            head, kind, cursor, filters = term
            if (head, kind) != ("tag", "history") or cursor[0] != "cursor":
                raise ValueError("not a history tag")
            _, ((year, month, day), (hh, mm, ss)), seq, pos = cursor
            local = int((datetime(year, month, day, hh, mm, ss) - _EPOCH).total_seconds())
            values = {str(name): value.decode() for name, value in filters}
            if not (isinstance(seq, int) and isinstance(pos, int) and seq > 0 and pos >= 0):
                raise ValueError("bad cursor")
        except (ValueError, TypeError, AttributeError, binascii.Error, UnicodeError):
            raise EcssError(400, f"Invalid tag '{tag[:60]}': unknown or corrupted") from None
        if values.get("cc_agent_id") != self.phone_number:
            raise EcssError(400, "Invalid tag: issued for another operator")
        for name in ("from_date", "to_date", "direction"):
            sent = getattr(query, name)
            if sent is None:
                setattr(query, name, values.get(name))
            elif sent != values.get(name):
                raise EcssError(
                    400,
                    f"Invalid tag: it was issued for {name}='{values.get(name, '')}', not '{sent}'",
                )
        query.tag = tag
        query.cursor_key = local * _K + seq
        query.cursor_pos = pos

    def _take_count(self, name: str) -> bool:
        """Consume one unit of a count knob (True/-1 never run out)."""
        value = getattr(self, name)
        if value is True:
            return True
        value = int(value)
        if value == 0:
            return False
        if value > 0:
            setattr(self, name, value - 1)
        return True

    def page(self, query: _Query) -> tuple[list[_Call], str | None]:
        """The calls of one page (newest first) and the tag for the next one, if any.
        Under a simulated clock only the calls visible then count (offsets, tags and
        "more" included)."""
        now = self.sim_clock.now
        with self.lock:
            if query.tag is not None and self.insert_while_paging > 0:
                self._insert_for_paging(query)
            keys = self._keys
            i0 = bisect_left(keys, query.lo * _K) if query.lo is not None else 0
            i1 = bisect_left(keys, (query.hi + 1) * _K) if query.hi is not None else len(keys)
            start = i1 - 1
            skip = query.offset
            if query.cursor_key is not None:
                if self.tag_cursor == "key":
                    j = bisect_left(keys, query.cursor_key)
                    if j >= len(keys) or keys[j] != query.cursor_key or not i0 <= j < i1:
                        raise EcssError(400, "Invalid tag: its cursor is not in this window")
                    start = j - 1
                else:
                    skip += query.cursor_pos
            calls = self._calls
            if now is not None:
                visible = self.visible_index.get(
                    STREAM, calls, i0, i1, now=now, visible_at=self.call_visible_at
                )
                page, more = self._visible_slice(calls, visible, start, skip, query)
            elif query.direction is None:
                first = start - skip
                stop = max(i0 - 1, first - query.limit)
                page = [calls[i] for i in range(first, stop, -1)]
                more = stop > i0 - 1
            else:
                inbound = query.direction == "in"
                matching = (
                    calls[i] for i in range(start, i0 - 1, -1) if calls[i].inbound is inbound
                )
                page, more = self._take(matching, skip, query.limit)
            tag: str | None = None
            if more and page:
                pos = query.cursor_pos + query.offset + len(page)
                tag = self._make_tag(query, page[-1], pos)
            if self.repeat_tag == "aba":
                tag = self._tag_cycle(query.tag, tag)
            elif query.tag is not None and self._take_count("repeat_tag"):
                tag = query.tag
        return page, tag

    @staticmethod
    def _take(calls: Iterator[_Call], skip: int, limit: int) -> tuple[list[_Call], bool]:
        """Skip ``skip`` calls, take up to ``limit``; and whether more remain."""
        page: list[_Call] = []
        for n, call in enumerate(calls):
            if n < skip:
                continue
            if len(page) == limit:
                return page, True
            page.append(call)
        return page, False

    def _visible_slice(
        self, calls: list[_Call], visible: list[int], start: int, skip: int, query: _Query
    ) -> tuple[list[_Call], bool]:
        """:meth:`page` over the visible positions (ascending) up to ``start``, newest
        first: the same slicing as without a clock over a store of just those calls."""
        top = bisect_right(visible, start)
        if query.direction is None:
            first = top - 1 - skip
            stop = max(-1, first - query.limit)
            return [calls[visible[k]] for k in range(first, stop, -1)], stop > -1
        inbound = query.direction == "in"
        matching = (
            calls[visible[k]]
            for k in range(top - 1, -1, -1)
            if calls[visible[k]].inbound is inbound
        )
        return self._take(matching, skip, query.limit)

    def _tag_cycle(self, sent: str | None, fresh: str | None) -> str | None:
        """``repeat_tag="aba"``: answer the tag that came before ``sent`` (A for a request
        carrying B); otherwise ``fresh``, remembering which tag it followed."""
        parent = self._tag_parents.get(sent) if sent is not None else None
        if parent is not None:
            return parent
        if fresh is not None:
            if len(self._tag_parents) > 100_000:
                self._tag_parents.clear()
            self._tag_parents[fresh] = sent
        return fresh

    def _insert_for_paging(self, query: _Query) -> None:
        """New calls in the last 30 minutes of the window, no older than its newest call:
        they sort first (newest-first order) and land before every cursor."""
        keys = self._keys
        lo, hi = newest_insert_range(
            keys, query.lo, query.hi, self.clock.local(max(e for _, e in self.periods)) - 1
        )
        rng = self._insert_rng
        calls: list[_Call] = []
        attempts = 0
        while len(calls) < self.insert_while_paging and attempts < 100 * self.insert_while_paging:
            attempts += 1
            local = rng.randint(lo, hi)
            utc = self.clock.first_occurrence_utc(local)
            if self.clock.local(utc) != local:
                continue  # a wall time the clock skips
            call = self._make_call(rng, utc)
            if query.direction is not None:
                call.inbound = query.direction == "in"
            calls.append(call)
        self._store(calls)

    # -- HTTP ----------------------------------------------------------------------

    def routes(self) -> Routes:
        base = f"/{self.domain}{ARM_PATH}"
        return {
            ("POST", f"{base}/login"): self._http_login,
            ("POST", f"{base}/logout"): self._http_logout,
            ("POST", f"{base}/{COMMAND}"): self._http_history,
        }

    def control_routes(self) -> Routes:
        return {
            **super().control_routes(),
            ("GET", "/expected"): self._control_expected,
            ("POST", "/insert"): self._control_insert,
            ("POST", "/expire_sessions"): self._control_expire,
        }

    def error_response(self, status: int, message: str) -> Response:
        """ECSS's error body, ``<out><error code=".." cmd="..">text</error></out>``."""
        return self._xml(error_element(status, "http", message), status)

    @staticmethod
    def _xml(root: Element, status: int = 200) -> Response:
        return Response(status, xml_document(root), "text/xml; charset=utf-8")

    def describe(self, base_url: str) -> dict[str, Any]:
        return {
            "api_url": base_url + self.api_path,
            "domain": self.domain,
            "client_id": self.client_id,
            "api_key": self.api_key,
            "phone_number": self.phone_number,
            "ws_url": self.ws_url,
            "timezone": self.config.timezone,
        }

    def _http_login(self, request: Request) -> Response:
        given = {k: v[-1] for k, v in request.query.items() if v}
        ctype = (request.headers.get("Content-Type") or "").lower()
        if request.body.strip() and "xml" not in ctype and "json" not in ctype:
            try:
                form = parse_qs(request.body.decode(), keep_blank_values=True)
            except UnicodeDecodeError:
                form = {}
            given.update({k: v[-1] for k, v in form.items() if v})
        try:
            sid = self.login(
                given.get("client_id"), given.get("api_key"), given.get("phone_number")
            )
        except EcssError as exc:
            return self._xml(error_element(exc.code, exc.cmd, exc.message), 403)
        resp = self._xml(
            ("out", {}, [("response", {"cmd": "login", "phone_number": self.phone_number}, None)])
        )
        resp.headers.append(("Set-Cookie", f"{self.cookie_name}={sid}; Path=/"))
        return resp

    def _http_logout(self, request: Request) -> Response:
        self.logout(request.cookies.get(self.cookie_name))
        resp = self._xml(("out", {}, [("response", {"cmd": "logout"}, None)]))
        resp.headers.append(("Set-Cookie", f"{self.cookie_name}=; Path=/; Max-Age=0"))
        return resp

    def _forbidden(self, cmd: str) -> EcssError:
        return EcssError(403, "Access denied: no valid session (log in first)", cmd)

    def _http_history(self, request: Request) -> Response:
        if not self.session_valid(request.cookies.get(self.cookie_name)):
            exc = self._forbidden(COMMAND)
            return self._xml(error_element(exc.code, exc.cmd, exc.message), 403)
        try:
            query = self._query(self._xml_filters(request.body))
            calls, tag = self.page(query)
        except EcssError as exc:  # ECSS answers request errors inside a 200
            return self._xml(error_element(exc.code, exc.cmd, exc.message))
        return self._xml(self._response_element(calls, tag))

    @staticmethod
    def _xml_filters(body: bytes) -> dict[str, str]:
        if not body.strip():
            raise EcssError(400, "Malformed request: empty body, <in> XML expected")
        try:
            root = ET.fromstring(body)
        except ET.ParseError as exc:
            raise EcssError(400, f"Malformed XML request: {exc}") from None
        filters = root.find("./request/filters") if root.tag == "in" else None
        if filters is None:
            raise EcssError(
                400, "Invalid request: expected <in><request><filters .../></request></in>"
            )
        return dict(filters.attrib)

    # -- websocket -----------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        return f"ws://{self.ws_host}:{self.ws_port}"

    def on_start(self, emulator: ProviderHost) -> None:
        super().on_start(emulator)
        if self._ws is not None:
            return
        self.ws_host = emulator.host
        self._ws = WebSocketServer(
            (emulator.host, self.ws_port), self._ws_handshake, self._ws_message
        )
        self.ws_port = self._ws.port
        self._ws.start()

    def on_stop(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            ws.stop()

    def _ws_handshake(self, handshake: Handshake) -> Refusal | None:
        sid = handshake.cookies.get(self.cookie_name)
        if not self.session_valid(sid):
            exc = self._forbidden("websocket")
            body = xml_document(error_element(exc.code, exc.cmd, exc.message))
            return 403, "text/xml; charset=utf-8", body
        handshake.context = sid
        return None

    @staticmethod
    def frame(request_id: str, status: int, payload: str, newline: bool = True) -> str:
        """A response message: ``01`` + UTF-8 byte length (10) + id (4) + status (3)."""
        size = len(payload.encode())
        return f"01{size:010d}{request_id}{status:03d}{chr(10) if newline else ''}{payload}"

    def _ws_message(self, conn: Connection, text: str) -> None:
        started = time.time()
        raw = text.encode()
        m = _HEADER_RE.match(raw)
        request_id = m.group(2).decode() if m else "0000"
        command = m.group(3).decode() if m else ""
        log: dict[str, Any] = {
            "method": "WS",
            "path": f"{self.api_path}/ws/{command or '?'}",
            "query": {"request_id": request_id},
            "status": None,
            "provider": self.name,
            "fault": None,
            "ts": started,
        }
        emulator = self.emulator
        decision = emulator.faults.decide(log["path"]) if emulator is not None else None
        kind = decision.kind if decision is not None else None
        with self.lock:
            if self._take_count("ws_drop_next"):
                kind = "drop"
            elif self._take_count("ws_malformed_next"):
                kind = "malformed"
        log["fault"] = kind
        if decision is not None and decision.latency_s:
            time.sleep(decision.latency_s)
        if kind == "drop":
            self._log(log)
            conn.abort()
            return
        if kind == "slow" and decision is not None:
            time.sleep(decision.slow_s)
        if kind == "rate_limit":
            status, root = 429, error_element(429, command, "Too Many Requests: rate limit")
        elif kind == "unavailable":
            status, root = 503, error_element(503, command, "Service Unavailable")
        else:
            status, root = self._ws_answer(conn, m, raw, command)
        payload = json.dumps([to_json(root)], ensure_ascii=False, separators=(",", ":"))
        message = self.frame(request_id, status, payload, bool(self.ws_newline))
        log["status"] = status
        self._log(log)
        if kind == "malformed":
            conn.send_text(self._malformed(message))
        elif kind == "truncate":
            conn.send_text(message[: len(message) // 2])
            conn.abort()
        else:
            conn.send_text(message, int(self.ws_fragment_bytes))

    def _malformed(self, message: str) -> str:
        """Alternately: a header whose length is wrong, or a garbage header."""
        with self.lock:
            variant = self._malformed_variant
            self._malformed_variant += 1
        if variant % 2 == 0:
            size = int(message[2:12]) + 7
            return f"01{size:010d}{message[12:]}"
        return "<html>502 Bad Gateway</html>" + message[19:]

    def _ws_answer(
        self, conn: Connection, m: re.Match[bytes] | None, raw: bytes, command: str
    ) -> tuple[int, Element]:
        try:
            if m is None:
                raise EcssError(
                    400,
                    "Malformed frame: expected 01 + length(10 digits) + request id(4 digits)"
                    " + command name",
                    command or "unknown",
                )
            declared = int(m.group(1))
            payload = raw[m.end() :]
            if len(payload) != declared:
                raise EcssError(
                    400,
                    f"Malformed frame: header says {declared} payload bytes, got {len(payload)}",
                )
            if command != COMMAND:
                raise EcssError(404, f"Unknown command '{command}'", command)
            if not self.session_valid(conn.handshake.context):
                raise self._forbidden(command)
            query = self._query(self._json_filters(payload))
            calls, tag = self.page(query)
        except EcssError as exc:
            return exc.code, error_element(exc.code, exc.cmd, exc.message)
        return 200, self._response_element(calls, tag)

    @staticmethod
    def _json_filters(payload: bytes) -> dict[str, str]:
        try:
            doc = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise EcssError(400, f"Malformed JSON payload: {exc}") from None
        node: Any = doc[0] if isinstance(doc, list) and len(doc) == 1 else doc
        for name in ("in", "request", "filters"):
            if not isinstance(node, dict) or node.get("_name") != name:
                raise EcssError(
                    400,
                    'Invalid request: expected [{"_name": "in", "_content": [{"_name":'
                    ' "request", "_content": [{"_name": "filters", ...}]}]}]',
                )
            if name == "filters":
                break
            content = node.get("_content")
            node = content[0] if isinstance(content, list) and content else None
        attrs = node.get("_attributes") or {}
        if not isinstance(attrs, dict):
            raise EcssError(400, "Invalid request: filters _attributes must be an object")
        return {str(k): "" if v is None else str(v) for k, v in attrs.items()}

    def _log(self, entry: dict[str, Any]) -> None:
        if self.emulator is not None:
            self.emulator.log_request(entry)

    # -- mutation helpers ----------------------------------------------------------

    def insert_calls(self, n: int, at_utc_range: UtcRange | None = None) -> list[dict[str, Any]]:
        """Late arrivals: ``n`` new calls starting uniformly in ``at_utc_range`` (default:
        the last hour of the last period). Returns their records (see :meth:`record`)."""
        start, stop = late_arrival_range(self.periods, at_utc_range)
        with self.lock:
            rng = self._insert_rng
            calls = [self._make_call(rng, rng.randrange(start, stop)) for _ in range(n)]
            self._store(calls)
        return [self.record(c) for c in calls]

    # -- expectations for tests ----------------------------------------------------

    def expected(self, stream: str = STREAM, as_of: Instant = None) -> list[dict[str, Any]]:
        """Every stored call, newest first: ``key`` (call_ref,), ``local`` start string,
        ``true_utc``, ``expected_utc`` and ``expected_fields`` (start/answer/release time
        as a correct client emits them: first occurrence of a repeated local time, None
        when empty), ``record`` (raw attributes + lists) and ``visible_at`` (ISO UTC:
        served from then on under a simulated clock).

        Every call is listed whatever the clock (filter on ``visible_at``). ``as_of``
        (the providers share it) asks for the version served at that instant; a call has
        one version, so here it changes nothing."""
        parse_instant(as_of)
        if stream not in (STREAM, COMMAND):
            raise ValueError(f"unknown ECSS stream {stream!r}; expected {STREAM!r}")
        with self.lock:
            calls = list(self._calls)
        clock = self.clock
        offset = clock.offset

        def first_utc(local: int) -> int:
            """First occurrence of a local wall time: the smaller of the instants that
            show it (transitions are months apart, so +-14 h brackets every offset)."""
            found = [
                u
                for u in {local - offset(local - 50400), local - offset(local + 50400)}
                if clock.local(u) == local
            ]
            return min(found) if found else clock.first_occurrence_utc(local)

        out: list[dict[str, Any]] = []
        with gc_paused():
            for c in reversed(calls):
                record = self.record(c)
                start = iso_utc(first_utc(c.local))
                release = iso_utc(first_utc(clock.local(c.utc + c.waiting + c.talk)))
                answer = iso_utc(first_utc(clock.local(c.utc + c.waiting))) if c.talk else None
                out.append(
                    {
                        "key": (record["call_ref"],),
                        "local": record["start_time"],
                        "true_utc": iso_utc(c.utc),
                        "expected_utc": start,
                        "expected_fields": {
                            "start_time": start,
                            "answer_time": answer,
                            "release_time": release,
                        },
                        "visible_at": iso_utc(self.call_visible_at(c)),
                        "record": record,
                    }
                )
        return out

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {"calls": len(self._calls), "sessions": len(self._sessions)}

    # -- control endpoints ---------------------------------------------------------

    def _control_expected(self, request: Request) -> Response:
        return expected_response(self.expected())

    def _control_insert(self, request: Request) -> Response:
        _, n, at_utc = insert_arguments(request)
        return inserted_response(self.insert_calls(n, at_utc))

    def _control_expire(self, request: Request) -> Response:
        return Response.json({"expired": self.expire_sessions()})


def _factory(config: Any, seed: int) -> Provider:
    return EcssProvider(config, seed)


register_provider("ecss", EcssConfig, _factory)

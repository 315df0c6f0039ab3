"""``ecss_operator_call_history``: the operator's call history, paged by an opaque tag.

Each window is asked for with ``from_date``/``to_date`` in the server's local time
(``ecss.timezone``), both inclusive to the second: the wall-clock range that covers the
window exactly (``LocalClock.wall_range``). The first request has ``offset`` 0 and
``limit``; each next one sends back the previous page's ``tag`` (``TagPaginator``).
"""

from __future__ import annotations

import threading
import typing as t
from functools import cached_property

from tap_callcenter.client import CallcenterStream
from tap_callcenter.ecss.transport import EcssTransport, HttpTransport, WebsocketTransport
from tap_callcenter.ecss.xml import (
    DURATION_ATTRIBUTES,
    OPTIONAL_ATTRIBUTES,
    TIME_ATTRIBUTES,
    EcssErrorAnswer,
    Page,
    parse_xml,
    read_answer,
)
from tap_callcenter.engine import WINDOW_PARAMS
from tap_callcenter.pagination import RepeatedTagError, TagPaginator, payload_of
from tap_callcenter.timeconv import LocalClock

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    import requests
    from singer_sdk.helpers.types import Context

    from tap_callcenter.windows import Window

ECSS_TIME_FORMAT = "%Y/%m/%d %H:%M:%S"


class OperatorCallHistoryStream(CallcenterStream):
    """Calls of the operator, newest first, by call start."""

    name = "ecss_operator_call_history"
    provider = "ecss"
    stamps_wall_clock = True
    path = "/operator_call_history"
    primary_keys = ("call_ref",)
    replication_key = "start_time"
    body_format = "XML"
    auth_hint = "Check the settings ecss.client_id, ecss.api_key and ecss.phone_number"
    empty_as_null_fields = OPTIONAL_ATTRIBUTES
    time_fields = TIME_ATTRIBUTES
    integer_fields = DURATION_ATTRIBUTES

    @property
    def concurrency(self) -> int:
        """Windows read at once: ``max_concurrency``, at most ``ecss.sessions``. The tag
        is a per-window cursor, so windows overlap only with a session (and a websocket)
        each, and only as many as the server allows (1 unless configured)."""
        return min(super().concurrency, int(self.provider_config["sessions"]))

    @property
    def url_base(self) -> str:
        """``{api_url}/{domain}/service/cc/arm``: login and commands live under it."""
        config = self.provider_config
        return f"{str(config['api_url']).rstrip('/')}/{config['domain']}/service/cc/arm"

    @cached_property
    def clock(self) -> LocalClock:
        """The server's wall clock (``ecss.timezone``, required)."""
        return LocalClock(str(self.provider_config["timezone"]))

    @property
    def transport(self) -> EcssTransport:
        """HTTP or websocket, as ``ecss.transport`` says; one per thread, each with its
        own session (logged in on first use, renewed once when refused) and websocket.
        Sequential runs have one thread, so one session, as before."""
        local = self.__dict__.setdefault("_thread_transports", threading.local())
        transport: EcssTransport | None = getattr(local, "transport", None)
        if transport is None:
            if self.provider_config["transport"] == "websocket":
                transport = WebsocketTransport(self)
            else:
                transport = HttpTransport(self)
            local.transport = transport
        return transport

    def window_params(self, window: Window, field: str) -> dict[str, t.Any]:
        """First-page filters of a window: inclusive local bounds, offset 0, limit."""
        bounds = self.clock.wall_range(window.start, window.end)
        if bounds is None:  # the engine sends no request for such a window
            msg = f"window {window} has no wall-clock time in {self.clock.zone}"
            raise ValueError(msg)
        lo, hi = bounds
        return {
            "offset": "0",
            "limit": str(self.provider_config["page_size"]),
            "from_date": lo.strftime(ECSS_TIME_FORMAT),
            "to_date": hi.strftime(ECSS_TIME_FORMAT),
        }

    def request_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Every page of one window, following the tag."""
        first = (context or {})[WINDOW_PARAMS]
        paginator = TagPaginator()
        fetch = self.request_decorator(self._fetch_page)
        while not paginator.finished:
            filters = dict(first)
            if paginator.current_value:
                filters["tag"] = paginator.current_value
            response = fetch(filters, context)
            page: Page = payload_of(response)
            records = self.transform_page(page.records, self.transport.describe(filters))
            self.check_page_is_new(records, self.transport.describe(filters))
            yield from records
            try:
                paginator.advance(response)
            except RepeatedTagError as exc:
                raise self.fail(
                    f"the server sent a paging tag it had already sent in this window "
                    f"({str(exc)[:60]}…); stopping instead of looping",
                    self.transport.describe(filters),
                ) from None

    def _fetch_page(self, filters: dict[str, str], context: Context | None) -> requests.Response:
        return self.transport.fetch(filters)

    def describe_attempt(self, args: tuple[t.Any, ...]) -> str | None:
        """Retry log and final errors name the command and its filters."""
        return self.transport.describe(args[0]) if args else None

    # ------------------------------------------------------------- responses

    def decode_body(self, response: requests.Response) -> t.Any:
        """XML -> Page; an ``<error>`` answer is fatal with its code and text."""
        try:
            return read_answer(parse_xml(response.content))
        except EcssErrorAnswer as exc:
            raise self.fail(f"the server answered with an error: {exc}", response.request) from None

    def api_error_message(self, response: requests.Response) -> str:
        """The ``<error>`` code and text when the body has one."""
        try:
            read_answer(parse_xml(response.content))
        except EcssErrorAnswer as exc:
            return str(exc)
        except ValueError:
            pass
        return super().api_error_message(response)

"""Thulium: ``connections`` and ``recordings`` (JSON over HTTP basic auth).

The API takes and returns local wall-clock times (``thulium.timezone``) at minute
precision, with BOTH ``date_from`` and ``date_to`` inclusive. Each window is asked for
with the wall-clock range that covers it (``LocalClock.wall_range``), floored to the
minute; the engine then keeps only records that fall in the window, so a record on a
boundary minute belongs to exactly one window. Pages are ``limit``/``offset`` and end
at the reported ``count`` (see ``CountOffsetPaginator``), newest first.
"""

from __future__ import annotations

import contextlib
import typing as t
from functools import cached_property

from requests.auth import HTTPBasicAuth
from singer_sdk import typing as th

from tap_callcenter.client import CallcenterStream
from tap_callcenter.coerce import optional_int
from tap_callcenter.concurrency import map_in_order
from tap_callcenter.engine import WINDOW, WINDOW_PARAMS
from tap_callcenter.pagination import CountOffsetPaginator, payload_of
from tap_callcenter.provider import Provider, timezone_errors
from tap_callcenter.timeconv import LocalClock

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    import requests
    from singer_sdk.helpers.types import Context

    from tap_callcenter.windows import Window

PAGE_SIZE = 100
_WALL_FORMAT = "%Y-%m-%d %H:%M"


class ThuliumStream(CallcenterStream):
    """Shared Thulium behaviour: auth, wall-clock windows, errors, count paging."""

    provider = "thulium"
    stamps_wall_clock = True
    auth_hint = "Check the settings thulium.username and thulium.password"
    time_fields: t.ClassVar[tuple[str, ...]] = ("date",)
    integer_fields: t.ClassVar[tuple[str, ...]] = ("duration", "billsec")

    @property
    def url_base(self) -> str:
        return str(self.provider_config["api_url"]).rstrip("/")

    @cached_property
    def clock(self) -> LocalClock:
        """Wall clock of the Thulium system (``thulium.timezone``)."""
        return LocalClock(str(self.provider_config["timezone"]))

    @property
    def authenticator(self) -> HTTPBasicAuth:
        return HTTPBasicAuth(
            str(self.provider_config["username"]), str(self.provider_config["password"])
        )

    def get_new_paginator(self) -> CountOffsetPaginator:
        return CountOffsetPaginator(records_key="result", count_key="count")

    def request_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """A window's pages; once the first page gives a plausible total, the others
        are fetched ``max_concurrency`` at a time (and still emitted in order).

        Offsets step by the size of the first page (the server may clamp ``limit``).
        Parallel pages are only consistent while the result does not change: with calls
        inserted while paging (the live window), a page fetched early and one fetched
        late see differently shifted lists and could leave a gap between them. So every
        page must report the first page's total and be as long as planned; if one does
        not, the window is read again sequentially from offset 0 (``CountOffsetPaginator``,
        where inserts only ever cause repeats, which the engine drops). A total that is
        missing, or smaller than the first page, is not planned on: the window is paged
        sequentially, to the first short page. Pages are planned lazily, so memory never
        depends on the count either.
        """
        if self.concurrency <= 1:
            self.read_window_again()
            yield from super().request_records(context)
            return
        records, total = self._fetch_page(context, 0)
        step = len(records)
        if total is None or total < step:
            if total is not None:
                self.logger.info(
                    "%s: implausible count %d for a first page of %d record(s) in %s; "
                    "paging sequentially",
                    self.name,
                    total,
                    step,
                    (context or {}).get(WINDOW),
                )
            self.read_window_again()
            yield from super().request_records(context)
            return
        self.note_api_total(total)
        self.check_page_is_new(records, f"GET {self.path} at offset 0")
        yield from records
        if not step or step >= total:
            return
        planned = range(step, total, step)  # lazy: never a list sized by the count
        pages = map_in_order(
            lambda at: self._fetch_page(context, at), planned, self.concurrency, self.submit_page
        )
        with contextlib.closing(pages):
            for at, (page, page_total) in zip(planned, pages, strict=True):
                if page_total != total or len(page) != min(step, total - at):
                    break
                self.check_page_is_new(page, f"GET {self.path} at offset {at}")
                yield from page
            else:
                return
        self.logger.info(
            "%s: the result changed while paging %s; reading the window again in order",
            self.name,
            (context or {}).get(WINDOW),
        )
        self.read_window_again()
        yield from super().request_records(context)

    def _fetch_page(
        self, context: Context | None, offset: int
    ) -> tuple[list[dict[str, t.Any]], int | None]:
        """One page at ``offset`` through the retried request: (records, count or None)."""
        prepared = self.build_prepared_request(
            method="GET",
            url=self.get_url(context),
            params=self.get_url_params(context, offset),
            headers=self.http_headers,
        )
        response = self.request_decorator(self._request)(prepared, context)
        payload = payload_of(response)
        return self.transform_page(payload["result"], prepared), optional_int(payload.get("count"))

    def parse_response(self, response: requests.Response) -> Iterable[dict[str, t.Any]]:
        """A page of the sequential path; its ``count`` is noted for reconciliation."""
        total = optional_int(payload_of(response).get("count"))
        if isinstance(total, int):
            self.note_api_total(total)
        return super().parse_response(response)

    #: Query parameters of every request besides the window and the page.
    extra_params: t.ClassVar[dict[str, str]] = {}

    def window_params(self, window: Window, field: str) -> dict[str, t.Any]:
        """Inclusive minute bounds covering the window in Thulium's wall clock (the API
        filters on the stream's key: a call's ``date``, a recording's ``created_at``)."""
        bounds = self.clock.wall_range(window.start, window.end)
        if bounds is None:  # the engine sends no request for such a window
            msg = f"window {window} has no wall-clock time in {self.clock.zone}"
            raise ValueError(msg)
        lo, hi = bounds
        # Flooring both to the minute widens the range: the server's minute bounds are
        # inclusive, so date_to "12:34" still covers 12:34:59.
        return {"date_from": lo.strftime(_WALL_FORMAT), "date_to": hi.strftime(_WALL_FORMAT)}

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        return {
            "limit": PAGE_SIZE,
            "offset": next_page_token or 0,
            **(context or {})[WINDOW_PARAMS],
            **self.extra_params,
        }

    # ------------------------------------------------------------- responses

    def api_error_message(self, response: requests.Response) -> str:
        """Thulium reports failures as an ``errors`` list; fall back to the body."""
        try:
            body = response.json()
        except ValueError:
            return super().api_error_message(response)
        return errors_text(body) or super().api_error_message(response)

    def decode_body(self, response: requests.Response) -> t.Any:
        payload = super().decode_body(response)
        if not payload.get("errors") and not isinstance(payload.get("result"), list):
            msg = "it has no 'result' list"
            raise ValueError(msg)
        if not isinstance(optional_int(payload.get("count", 0)), int):
            msg = f"its 'count' is not a number: {payload.get('count')!r}"
            raise ValueError(msg)
        return payload

    def check_payload(self, payload: t.Any, response: requests.Response) -> None:
        if payload.get("errors"):
            raise self.fail(
                f"the API answered with errors: {errors_text(payload)}", response.request
            )

    def page_records(self, payload: t.Any) -> Iterable[dict[str, t.Any]]:
        return t.cast("list[dict[str, t.Any]]", payload["result"])


def errors_text(body: t.Any) -> str:
    """Flatten Thulium's ``errors`` (strings, or objects with code/message) to text."""
    if not isinstance(body, dict):
        return ""
    errors = body.get("errors")
    if not errors:
        return ""
    items = errors if isinstance(errors, list) else [errors]
    parts = []
    for item in items:
        if isinstance(item, dict):
            message = item.get("message") or item.get("error") or item
            code = item.get("code")
            parts.append(f"{message} (code {code})" if code is not None else str(message))
        else:
            parts.append(str(item))
    return "; ".join(parts)


class ConnectionsStream(ThuliumStream):
    """Calls: one record per connection, by call start (``date``)."""

    name = "thulium_connections"
    path = "/connections"
    primary_keys = ("connection_id",)
    replication_key = "date"
    # ids that may come as empty strings (-> null) with the durations
    integer_fields = ("duration", "billsec", "customer_id", "outbound_id", "queue_id", "topic_id")
    #: "" means no topic (a topic is a name from a list, never empty).
    empty_as_null_fields = ("topic",)
    extra_params: t.ClassVar[dict[str, str]] = {"include_tags": "true", "include_topics": "true"}


class RecordingsStream(ThuliumStream):
    """Recording files, by creation time (``created_at``); a connection may have several."""

    name = "thulium_recordings"
    path = "/recordings"
    primary_keys = ("connection_id", "filename")
    replication_key = "created_at"
    time_fields = ("date", "created_at")


PROVIDER = Provider(
    name="thulium",
    description="Thulium: streams thulium_connections and thulium_recordings.",
    settings=(
        th.Property(
            "api_url",
            th.StringType,
            required=True,
            description="API base URL, e.g. https://<system>.thulium.com/api",
        ),
        th.Property("username", th.StringType, required=True, description="API user."),
        th.Property(
            "password",
            th.StringType,
            required=True,
            secret=True,
            description="API user's password.",
        ),
        th.Property(
            "timezone",
            th.StringType,
            default="Europe/Warsaw",
            description="IANA time zone of the Thulium system's wall clock.",
        ),
    ),
    streams=(ConnectionsStream, RecordingsStream),
    check=lambda block: timezone_errors("thulium", block),
)

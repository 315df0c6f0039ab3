"""Conpeek: ``cdr_dialog`` and ``voice_campaign_request_summary`` (JSON, UTC).

Each window is asked for with a ``filter`` on the replication key, ``gte`` the window's
start and ``lt`` its end (UTC, ``YYYY-MM-DD HH:mm:ss``), so windows never overlap on the
server side. Pages are ``limit``/``offset`` without a total (see ``ShortPagePaginator``).

A campaign request summary is created OPEN and closed later; a sync keyed on
``created_date`` alone would never see the closure. With ``conpeek.sync_closures``
(default on) the summaries stream makes a second pass per run over ``closed_date``
windows, with its own bookmark in the same stream state, and re-emits summaries closed
since the last run (loaders that upsert by ``id`` then hold the closed version).
"""

from __future__ import annotations

import datetime as dt
import json
import typing as t
from urllib.parse import parse_qs, urlsplit

from singer_sdk import typing as th
from singer_sdk.authenticators import APIKeyAuthenticator

from tap_callcenter.client import CallcenterStream
from tap_callcenter.engine import WINDOW_PARAMS
from tap_callcenter.pagination import ShortPagePaginator
from tap_callcenter.provider import Provider
from tap_callcenter.timeconv import format_utc

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import requests
    from singer_sdk.helpers.types import Context

    from tap_callcenter.windows import Window

_FILTER_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def encode_filter(conditions: Sequence[tuple[str, str | None, t.Any]]) -> str:
    """Conpeek's ``filter`` value: a compact JSON list of ``{property, operator, value}``.

    ``operator`` None leaves the key out (the API then means equality). The HTTP layer
    URL-encodes the result like any other query parameter.
    """
    items = []
    for prop, operator, value in conditions:
        item: dict[str, t.Any] = {"property": prop}
        if operator is not None:
            item["operator"] = operator
        item["value"] = value
        items.append(item)
    return json.dumps(items, separators=(",", ":"), ensure_ascii=False)


def window_filter(field: str, window: Window) -> str:
    """``field >= start AND field < end`` in the API's UTC format, which has whole
    seconds: the start is floored and the end rounded up, so the filter covers the
    window even when its bounds have fractions of a second (a ``start_date`` of
    ``…00.500Z``, a fractional ``window_days``); the engine's in-window filter then
    drops the neighbours."""
    start = window.start.replace(microsecond=0)
    end = window.end.replace(microsecond=0)
    if end < window.end:
        end += dt.timedelta(seconds=1)
    return encode_filter(
        [
            (field, "gte", start.strftime(_FILTER_TIME_FORMAT)),
            (field, "lt", end.strftime(_FILTER_TIME_FORMAT)),
        ]
    )


def api_message(body: t.Any) -> str:
    """The API's own words in a JSON error body, whatever key it uses."""
    if isinstance(body, dict):
        for key in ("message", "error", "errors", "detail", "msg"):
            if body.get(key):
                value = body[key]
                return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return ""


class ConpeekStream(CallcenterStream):
    """Shared Conpeek behaviour: raw-key auth, UTC filters, offset paging."""

    provider = "conpeek"
    auth_hint = "Check the setting conpeek.api_key"
    page_size: t.ClassVar[int]

    @property
    def url_base(self) -> str:
        return str(self.provider_config["api_url"]).rstrip("/")

    @property
    def authenticator(self) -> APIKeyAuthenticator:
        """``Authorization: <api_key>``, the raw key without a scheme."""
        return APIKeyAuthenticator(
            key="Authorization", value=str(self.provider_config["api_key"]), location="header"
        )

    def get_new_paginator(self) -> ShortPagePaginator:
        return ShortPagePaginator(records_key="data")

    def window_params(self, window: Window, field: str) -> dict[str, t.Any]:
        """``filter``: ``field`` from the window's start (inclusive) to its end."""
        return {"filter": window_filter(field, window)}

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        return {
            "limit": self.page_size,
            "offset": next_page_token or 0,
            **(context or {})[WINDOW_PARAMS],
        }

    def decode_body(self, response: requests.Response) -> t.Any:
        payload = super().decode_body(response)
        if not isinstance(payload.get("data"), list):
            msg = "it has no 'data' list"
            raise ValueError(msg)
        return payload

    def api_error_message(self, response: requests.Response) -> str:
        """The API's message; for a 400 also the filter that was refused."""
        try:
            message = api_message(response.json())
        except ValueError:
            message = ""
        message = message or super().api_error_message(response)
        if response.status_code == 400 and response.request is not None:
            sent = parse_qs(urlsplit(response.request.url or "").query).get("filter")
            if sent:
                message += f" (filter sent: {sent[0]})"
        return message

    def page_records(self, payload: t.Any) -> Iterable[dict[str, t.Any]]:
        return t.cast("list[dict[str, t.Any]]", payload["data"])


class CdrDialogStream(ConpeekStream):
    """Call-detail records: one per dialog (call leg), by start time."""

    name = "conpeek_cdr_dialog"
    path = "/cdr_dialog"
    primary_keys = ("dialog_uuid",)
    replication_key = "start_time"
    page_size = 500
    time_fields = ("start_time", "answer_time", "hangup_time")
    integer_fields = ("ringing_time", "talking_time", "holding_time", "waiting_time")
    boolean_fields = ("machine_detected",)
    #: Optional ids, URLs and display texts: "" means absent. (Ids are text: the docs
    #: do not fix their type, and every id converts to text without loss.)
    empty_as_null_fields = (
        "call_uuid",
        "project_id",
        "tenant_user_id",
        "operator_call_id",
        "call_request_agent_id",
        "recording_url",
        "caller_display",
        "callee_display",
    )


#: State key of the summaries' second bookmark (closures, by ``closed_date``).
CLOSURES_BOOKMARK = "closed_date_bookmark"
#: State key of the earliest ``created_date`` the stream has synced: closures of
#: summaries created before it were never emitted, and are not re-emitted either.
CREATED_FLOOR = "created_date_floor"


class VoiceCampaignRequestSummaryStream(ConpeekStream):
    """Campaign request summaries by creation, plus a pass for closures."""

    name = "conpeek_voice_campaign_request_summary"
    path = "/voice_campaign_request_summary"
    primary_keys = ("id",)
    replication_key = "created_date"
    page_size = 100
    time_fields = ("created_date", "closed_date", "last_try_date")
    integer_fields = ("tries", "max_tries")
    #: Optional ids and the close reason: "" means absent (ids are text, as above).
    empty_as_null_fields = ("case_id", "project_id", "voice_campaign_id", "close_reason")

    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Summaries created in the sync range, then those closed since the last run.

        The created-date pass reads every summary of its range in its current state, so
        a closure happening before the pass began is already in what it emits. The
        closures pass adds the summaries created before that range (and not before the
        earliest date the stream ever synced) that were closed since the closures
        bookmark. That bookmark begins where the created-date pass of the first run
        began reading (its end: the time the sync started), so a first run or a
        resumed backfill makes no closures requests it does not need, and nothing
        closed since is missed.
        """
        start = self.sync_start()
        windows = self.sync_windows(start)
        closures_from = self.closures_start()
        floor = self.created_floor(start)
        enabled = bool(self.provider_config["sync_closures"])
        if enabled and self.bookmark(CLOSURES_BOOKMARK) is None:
            # kept in the state from the first STATE on, so an interrupted run resumes it
            origin = self.bookmark() or self.settings.end_date
            self.stream_state[CLOSURES_BOOKMARK] = format_utc(origin)
        yield from self.sync_pass(windows)
        if enabled and closures_from is not None and windows:
            created_from = format_utc(windows[0].start)

            def created_before_this_run(record: dict[str, t.Any]) -> bool:
                created = record.get("created_date")
                return created is not None and floor <= created < created_from

            yield from self.sync_pass(
                self.sync_windows(closures_from, CLOSURES_BOOKMARK),
                "closed_date",
                CLOSURES_BOOKMARK,
                keep=created_before_this_run,
            )
        self.report.log(self.logger, self.name)

    def closures_start(self) -> dt.datetime | None:
        """Where the closures pass begins (its bookmark, else the created-date bookmark,
        minus the lookback), or None on a first run: its created-date pass reads every
        summary as it is now. (In FULL_TABLE mode the pass still runs, for summaries
        created before ``start_date`` and not before the floor.)"""
        origin = self.bookmark(CLOSURES_BOOKMARK) or self.bookmark()
        return None if origin is None else origin - self.settings.lookback

    def created_floor(self, start: dt.datetime) -> str:
        """The earliest ``created_date`` the stream has synced, as a UTC ISO string:
        this run's start for a stream without a bookmark (remembered in the state), the
        remembered one after that ("" for a state from before it was remembered)."""
        state = self.stream_state
        if state.get(CREATED_FLOOR) is None and (self.full_table or self.bookmark() is None):
            state[CREATED_FLOOR] = format_utc(start)
        return str(state.get(CREATED_FLOOR) or "")


PROVIDER = Provider(
    name="conpeek",
    description="Conpeek: streams conpeek_cdr_dialog and conpeek_voice_campaign_request_summary.",
    settings=(
        th.Property(
            "api_url",
            th.StringType,
            required=True,
            description="Conpeek API base URL (the cdr_dialog endpoint is {api_url}/cdr_dialog).",
        ),
        th.Property(
            "api_key",
            th.StringType,
            required=True,
            secret=True,
            description="API key, sent as the raw Authorization header.",
        ),
        th.Property(
            "sync_closures",
            th.BooleanType,
            default=True,
            description=(
                "Also re-read campaign request summaries closed since the last run "
                "(by closed_date), so their closure reaches the warehouse."
            ),
        ),
    ),
    streams=(CdrDialogStream, VoiceCampaignRequestSummaryStream),
)

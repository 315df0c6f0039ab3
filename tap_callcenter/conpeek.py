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

import json
import typing as t
from urllib.parse import parse_qs, urlsplit

from singer_sdk.authenticators import APIKeyAuthenticator

from tap_callcenter.client import CallcenterStream
from tap_callcenter.pagination import ShortPagePaginator
from tap_callcenter.timeconv import format_utc
from tap_callcenter.windows import Window

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import requests
    from singer_sdk.helpers.types import Context

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
    """``field >= start AND field < end`` in the API's UTC format."""
    return encode_filter(
        [
            (field, "gte", window.start.strftime(_FILTER_TIME_FORMAT)),
            (field, "lt", window.end.strftime(_FILTER_TIME_FORMAT)),
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

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        window = Window.from_context(dict(context or {}))
        field = str((context or {}).get("field") or self.replication_key)
        return {
            "limit": self.page_size,
            "offset": next_page_token or 0,
            "filter": window_filter(field, window),
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
    integer_fields = (
        "ringing_time",
        "talking_time",
        "holding_time",
        "waiting_time",
        "project_id",
        "tenant_user_id",
    )
    boolean_fields = ("machine_detected",)


#: State key of the summaries' second bookmark (closures, by ``closed_date``).
CLOSURES_BOOKMARK = "closed_date_bookmark"


class VoiceCampaignRequestSummaryStream(ConpeekStream):
    """Campaign request summaries by creation, plus a pass for closures."""

    name = "conpeek_voice_campaign_request_summary"
    path = "/voice_campaign_request_summary"
    primary_keys = ("id",)
    replication_key = "created_date"
    page_size = 100
    time_fields = ("created_date", "closed_date", "last_try_date")
    integer_fields = ("id", "project_id", "tries", "max_tries")

    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Summaries created in the sync range, then those closed since the last run."""
        created_windows = self.sync_windows()
        yield from self.sync_pass(created_windows)
        if not self.provider_config.get("sync_closures", True) or not created_windows:
            return
        # Summaries created inside this run's range were just read in their current
        # state; the closure pass adds those created earlier (not before start_date)
        # and closed since the last run.
        earliest = format_utc(self.settings.start_date)
        created_from = format_utc(created_windows[0].start)
        closures = self.sync_pass(
            self.sync_windows(CLOSURES_BOOKMARK), "closed_date", CLOSURES_BOOKMARK
        )
        for record in closures:
            if earliest <= (record.get("created_date") or "") < created_from:
                yield record

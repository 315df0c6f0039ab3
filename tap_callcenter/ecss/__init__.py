"""Eltex ECSS-10 call-center module: ``operator_call_history`` over HTTP or websocket."""

from __future__ import annotations

import typing as t

from singer_sdk import typing as th

from tap_callcenter.ecss.stream import OperatorCallHistoryStream
from tap_callcenter.provider import Provider, timezone_errors

if t.TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["PROVIDER", "OperatorCallHistoryStream"]


def ecss_errors(block: Mapping[str, t.Any]) -> list[str]:
    """A zone that exists, and a websocket URL when the websocket is the transport."""
    errors = timezone_errors("ecss", block)
    if block.get("transport") == "websocket" and not block.get("ws_url"):
        errors.append("setting 'ecss.ws_url' is required when 'ecss.transport' is 'websocket'")
    return errors


PROVIDER = Provider(
    name="ecss",
    description="Eltex ECSS-10 call-center module: stream ecss_operator_call_history.",
    settings=(
        th.Property(
            "api_url",
            th.StringType,
            required=True,
            description="HTTP base of the ECSS API, e.g. http://<host>:8086",
        ),
        th.Property("domain", th.StringType, required=True, description="ECSS virtual PBX domain."),
        th.Property("client_id", th.StringType, required=True, description="API client id."),
        th.Property(
            "api_key",
            th.StringType,
            required=True,
            secret=True,
            description="API key for the login.",
        ),
        th.Property(
            "phone_number",
            th.StringType,
            required=True,
            description="The operator's phone number whose call history is read.",
        ),
        th.Property(
            "transport",
            th.StringType(allowed_values=["http", "websocket"]),
            default="http",
            description="http (XML over HTTP) or websocket (the framed JSON protocol).",
        ),
        th.Property(
            "ws_url",
            th.StringType,
            description="Websocket URL, e.g. ws://<host>:8091 (required for websocket).",
        ),
        th.Property(
            "timezone",
            th.StringType,
            required=True,
            description=(
                "IANA time zone of the ECSS server's clock (required: a wrong guess "
                "would silently shift every call)."
            ),
        ),
        th.Property(
            "sessions",
            th.IntegerType(minimum=1, maximum=64),
            default=1,
            description=(
                "Sessions logged in at once: with more than 1, up to that many windows "
                "(at most max_concurrency) are read at the same time, each over its own "
                "session and websocket. Only for servers that allow several sessions of "
                "one client."
            ),
        ),
        th.Property(
            "page_size",
            th.IntegerType(minimum=1, maximum=10000),
            default=100,
            description="Records asked for per page (the server may give fewer).",
        ),
    ),
    streams=(OperatorCallHistoryStream,),
    check=ecss_errors,
)

"""tap-callcenter: settings, stream discovery and the command-line entry point."""

from __future__ import annotations

import logging
import sys
import typing as t

from jsonschema import Draft7Validator
from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.configuration._dict_config import parse_environment_config
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers._classproperty import classproperty

from tap_callcenter import conpeek, ecss, thulium
from tap_callcenter.errors import (
    CallcenterError,
    collect_secrets,
    install_log_redaction,
    redactor,
)
from tap_callcenter.settings import (
    SyncSettings,
    coerce_number_strings,
    semantic_errors,
    unknown_key_errors,
    utc_now,
)

_SECRET = {"secret": True}


def _provider_block(name: str, description: str, *properties: th.Property) -> th.Property:
    """A provider's settings: present means enabled; unknown keys inside are errors."""
    return th.Property(
        name, th.ObjectType(*properties, additional_properties=False), description=description
    )


CONFIG_SCHEMA = th.PropertiesList(
    th.Property(
        "start_date",
        th.DateTimeType,
        description="Where a stream with no state begins (ISO 8601). Default: 30 days ago.",
    ),
    th.Property(
        "end_date",
        th.DateTimeType,
        description="Exclusive upper bound of the sync (ISO 8601). Default: now at sync start.",
    ),
    th.Property(
        "lookback_minutes",
        th.IntegerType,
        default=60,
        description=(
            "An incremental run restarts this far before the bookmark: a call record appears "
            "when the call ends but is keyed by its start."
        ),
    ),
    th.Property(
        "window_days",
        th.NumberType,
        default=1,
        description="Size of the date windows; the bookmark advances after each window.",
    ),
    th.Property(
        "request_timeout",
        th.NumberType,
        default=60,
        description="Seconds to wait for a response before retrying the request.",
    ),
    th.Property(
        "max_tries",
        th.IntegerType,
        default=6,
        description="Attempts per request on 429, 5xx, timeouts and dropped connections.",
    ),
    th.Property(
        "backoff_factor",
        th.NumberType,
        default=1.0,
        description="First retry wait in seconds; doubles each retry (Retry-After wins).",
    ),
    th.Property(
        "max_concurrency",
        th.IntegerType,
        default=8,
        description=(
            "Requests in flight per stream: later windows (and Thulium pages) are fetched "
            "while earlier ones are emitted, in order. 1 = strictly sequential."
        ),
    ),
    th.Property(
        "backoff_max_wait",
        th.NumberType,
        default=60.0,
        description="Longest wait between two tries, in seconds (unless Retry-After asks more).",
    ),
    _provider_block(
        "conpeek",
        "Conpeek: streams conpeek_cdr_dialog and conpeek_voice_campaign_request_summary.",
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
    _provider_block(
        "thulium",
        "Thulium: streams thulium_connections and thulium_recordings.",
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
    _provider_block(
        "ecss",
        "Eltex ECSS-10 call-center module: stream ecss_operator_call_history.",
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
            "page_size",
            th.IntegerType,
            default=100,
            description="Records asked for per page (the server may give fewer).",
        ),
    ),
).to_dict()
CONFIG_SCHEMA["additionalProperties"] = False  # a typo must not silently disable a provider

#: Streams of each provider, discovered only when its config block is present.
PROVIDER_STREAMS: dict[str, list[type[Stream]]] = {
    "conpeek": [conpeek.CdrDialogStream, conpeek.VoiceCampaignRequestSummaryStream],
    "thulium": [thulium.ConnectionsStream, thulium.RecordingsStream],
    "ecss": [ecss.OperatorCallHistoryStream],
}


class TapCallcenter(Tap):
    """Call-detail records, recordings and campaign summaries from call-center APIs."""

    name = "tap-callcenter"
    package_name = "tap-callcenter"
    config_jsonschema = CONFIG_SCHEMA
    #: The SDK's msgspec writer: same Singer messages, serialized several times faster.
    message_writer_class = MsgSpecWriter

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        self.settings: SyncSettings
        super().__init__(*args, **kwargs)

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Schema validation, then unknown keys and meaning (dates, zones, providers).

        Always strict, also for ``--discover`` (which the SDK runs unvalidated): a typo
        must not silently hide a provider's streams.
        """
        coerce_number_strings(self._config, self.config_jsonschema)
        config = dict(self.config)
        redactor.add(collect_secrets(config))
        install_log_redaction()
        schema = self.config_jsonschema
        self.append_builtin_config(schema)
        errors = unknown_key_errors(config, schema)
        for error in Draft7Validator(schema).iter_errors(config):
            if error.validator != "additionalProperties":  # reported above, with a guess
                where = ".".join(str(part) for part in error.path)
                errors.append(f"{where}: {error.message}" if where else error.message)
        errors += semantic_errors(config)
        errors = [redactor.redact(e) for e in errors]
        if errors:
            raise ConfigValidationError("Invalid configuration", errors=errors)
        self.settings = SyncSettings.from_config(config, utc_now())
        return errors

    @classproperty
    def _env_var_config(cls) -> dict[str, t.Any]:
        """``--config ENV``: the SDK reads top-level settings (``TAP_CALLCENTER_START_DATE``);
        provider settings come from ``TAP_CALLCENTER_<PROVIDER>_<KEY>`` as in Meltano
        (``TAP_CALLCENTER_THULIUM_PASSWORD``), merged over a whole-block JSON variable."""
        schema = cls.config_jsonschema
        cls.append_builtin_config(schema)
        prefix = cls._env_var_prefix
        config = parse_environment_config(schema, prefix)
        for provider in PROVIDER_STREAMS:
            block_schema = schema["properties"][provider]
            nested = parse_environment_config(block_schema, f"{prefix}{provider.upper()}_")
            if nested:
                config[provider] = {**(config.get(provider) or {}), **nested}
        return config

    def discover_streams(self) -> list[Stream]:
        """Streams of the configured providers only."""
        return [
            stream_class(tap=self)
            for provider, classes in PROVIDER_STREAMS.items()
            if isinstance(self.config.get(provider), dict)
            for stream_class in classes
        ]


def main() -> None:
    """Console entry point: the SDK's CLI, with user-facing errors printed cleanly."""
    logger = logging.getLogger("tap-callcenter")
    try:
        TapCallcenter.cli()
    except ConfigValidationError as exc:
        for error in exc.errors:
            logger.error("Invalid configuration: %s", error)
        sys.exit(1)
    except CallcenterError as exc:
        logger.error("%s", exc)
        sys.exit(1)


if __name__ == "__main__":
    main()

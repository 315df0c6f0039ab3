"""Typed run settings, parsed once from the validated config.

The JSON schema in :mod:`tap_callcenter.tap` checks shapes and types; this module checks
meaning (a date that parses, a time zone that exists, an end after the start) and turns
the config into values the streams use directly.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from tap_callcenter.timeconv import UTC, UnknownTimezoneError, load_zone, parse_utc

PROVIDERS = ("conpeek", "thulium", "ecss")
DEFAULT_START_DAYS = 30

#: Tests only: the tap's "now" (ISO 8601), so a simulated-clock test can run the tap
#: against an emulator whose time it controls. Never set it in production.
TEST_NOW_VARIABLE = "TAP_CALLCENTER_TEST_NOW"


@dataclass(frozen=True)
class SyncSettings:
    """What every stream needs to plan its windows and its HTTP calls."""

    #: When the sync started: no window ends and no bookmark lies after it.
    now: dt.datetime
    #: Where a stream with no bookmark begins (``start_date`` or its default).
    start_date: dt.datetime
    #: Exclusive end of every window: the earlier of ``end_date`` and ``now``.
    end_date: dt.datetime
    lookback: dt.timedelta
    window: dt.timedelta
    request_timeout: float
    max_tries: int
    backoff_factor: float
    backoff_max_wait: float
    max_concurrency: int

    @classmethod
    def from_config(cls, config: Mapping, now: dt.datetime) -> SyncSettings:
        """Build from a config that already passed :func:`semantic_errors`."""
        start = config.get("start_date")
        end = config.get("end_date")
        return cls(
            now=now,
            start_date=parse_utc(start) if start else now - dt.timedelta(days=DEFAULT_START_DAYS),
            end_date=min(parse_utc(end), now) if end else now,
            lookback=dt.timedelta(minutes=_number(config, "lookback_minutes", 60)),
            window=dt.timedelta(days=_number(config, "window_days", 1)),
            request_timeout=_number(config, "request_timeout", 60),
            max_tries=int(_number(config, "max_tries", 6)),
            backoff_factor=_number(config, "backoff_factor", 1.0),
            backoff_max_wait=_number(config, "backoff_max_wait", 60.0),
            max_concurrency=int(_number(config, "max_concurrency", 8)),
        )


def _number(config: Mapping, key: str, default: float) -> float:
    """A numeric setting (already range-checked by the schema); null means the default."""
    value = config.get(key)
    return default if value is None else float(value)


def utc_now() -> dt.datetime:
    """Now, in UTC, to the second (the default ``end_date``), or the test override."""
    override = os.environ.get(TEST_NOW_VARIABLE)
    if override:
        return parse_utc(override)
    return dt.datetime.now(UTC).replace(microsecond=0)


def coerce_number_strings(config: dict, schema: Mapping) -> None:
    """Numbers given as strings (environment variables, Meltano's string settings)
    become numbers where the schema wants a number; anything else is left for the
    validator to report."""
    properties = schema.get("properties") or {}
    for key, value in list(config.items()):
        spec = properties.get(key) or {}
        types = spec.get("type") or []
        types = [types] if isinstance(types, str) else types
        if isinstance(value, dict) and "properties" in spec:
            coerce_number_strings(value, spec)
        elif isinstance(value, str) and ("integer" in types or "number" in types):
            try:
                number = float(value.strip())
            except ValueError:
                continue
            config[key] = int(number) if number.is_integer() and "integer" in types else number


def unknown_key_errors(config: Mapping, schema: Mapping, path: str = "") -> list[str]:
    """Keys the schema does not declare, with a 'did you mean' suggestion."""
    errors: list[str] = []
    properties = schema.get("properties") or {}
    for key, value in config.items():
        name = f"{path}{key}"
        if key not in properties:
            if schema.get("additionalProperties", True) is False:
                guess = difflib.get_close_matches(key, list(properties), n=1)
                hint = (
                    f"; did you mean '{path}{guess[0]}'?"
                    if guess
                    else f"; known settings here: {', '.join(sorted(properties))}"
                )
                errors.append(f"unknown setting {name!r}{hint}")
            continue
        if isinstance(value, Mapping) and "properties" in properties[key]:
            errors.extend(unknown_key_errors(value, properties[key], f"{name}."))
    return errors


def semantic_errors(config: Mapping) -> list[str]:
    """Problems JSON schema cannot see: unparseable dates, unknown zones, empty ranges."""
    errors: list[str] = []
    dates: dict[str, dt.datetime] = {}
    for key in ("start_date", "end_date"):
        value = config.get(key)
        if value is None:
            continue
        try:
            dates[key] = parse_utc(str(value))
        except ValueError:
            errors.append(
                f"setting {key!r} is not an ISO 8601 date-time: {value!r} "
                "(example: 2024-01-01T00:00:00Z)"
            )
    if "start_date" in dates and "end_date" in dates and dates["end_date"] <= dates["start_date"]:
        errors.append("setting 'end_date' must be later than 'start_date'")
    for provider in ("thulium", "ecss"):
        block = config.get(provider)
        if isinstance(block, Mapping) and block.get("timezone") is not None:
            try:
                load_zone(str(block["timezone"]))
            except UnknownTimezoneError as exc:
                errors.append(f"setting '{provider}.timezone': {exc}")
    ecss = config.get("ecss")
    if (
        isinstance(ecss, Mapping)
        and ecss.get("transport") == "websocket"
        and not ecss.get("ws_url")
    ):
        errors.append("setting 'ecss.ws_url' is required when 'ecss.transport' is 'websocket'")
    if not any(isinstance(config.get(p), Mapping) for p in PROVIDERS):
        errors.append(
            "no provider configured: add at least one of the blocks 'conpeek', 'thulium' or 'ecss'"
        )
    return errors

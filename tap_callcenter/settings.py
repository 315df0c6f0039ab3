"""Typed run settings, parsed once from the validated config.

The JSON schema in :mod:`tap_callcenter.tap` checks shapes and types; this module checks
meaning (a date that parses, a time zone that exists, an end after the start) and turns
the config into values the streams use directly.
"""

from __future__ import annotations

import datetime as dt
import difflib
import ipaddress
import os
import typing as t
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from singer_sdk import typing as th

from tap_callcenter.provider import defaults_of
from tap_callcenter.timeconv import UTC, parse_utc

if t.TYPE_CHECKING:
    from collections.abc import Sequence

    from tap_callcenter.provider import Provider

DEFAULT_START_DAYS = 30
#: Largest accepted lookback (a week) and window (ten years): bigger values are typos
#: (and a window of 1e12 days does not fit a date).
MAX_LOOKBACK_MINUTES = 7 * 24 * 60
MAX_WINDOW_DAYS = 3660

#: Settings for every provider (the provider blocks come from the provider modules).
GENERAL_SETTINGS: tuple[th.Property, ...] = (
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
        th.IntegerType(minimum=0, maximum=MAX_LOOKBACK_MINUTES),
        default=60,
        description=(
            "An incremental run restarts this far before the bookmark: a call record appears "
            "when the call ends but is keyed by its start."
        ),
    ),
    th.Property(
        "window_days",
        th.NumberType(exclusive_minimum=0, maximum=MAX_WINDOW_DAYS),
        default=1,
        description="Size of the date windows; the bookmark advances after each window.",
    ),
    th.Property(
        "request_timeout",
        th.NumberType(exclusive_minimum=0, maximum=3600),
        default=60,
        description="Seconds to wait for a response before retrying the request.",
    ),
    th.Property(
        "max_tries",
        th.IntegerType(minimum=1, maximum=100),
        default=6,
        description="Attempts per request on 429, 5xx, timeouts and dropped connections.",
    ),
    th.Property(
        "backoff_factor",
        th.NumberType(minimum=0, maximum=3600),
        default=1.0,
        description="First retry wait in seconds; doubles each retry (Retry-After wins).",
    ),
    th.Property(
        "max_concurrency",
        th.IntegerType(minimum=1, maximum=64),
        default=8,
        description=(
            "Requests in flight per stream: later windows (and Thulium pages) are fetched "
            "while earlier ones are emitted, in order. 1 = strictly sequential."
        ),
    ),
    th.Property(
        "backoff_max_wait",
        th.NumberType(minimum=0, maximum=3600),
        default=60.0,
        description="Longest wait between two tries, in seconds (unless Retry-After asks more).",
    ),
    th.Property(
        "max_response_mib",
        th.NumberType(exclusive_minimum=0, maximum=4096),
        default=64,
        description=(
            "Largest answer accepted, in MiB after decompression (an HTTP body or one "
            "websocket message); a bigger one stops the sync with an error naming this."
        ),
    ),
    th.Property(
        "ca_bundle",
        th.StringType,
        description=(
            "PEM file of the CAs that sign the servers' certificates (a private CA). "
            "Default: REQUESTS_CA_BUNDLE or SSL_CERT_FILE if set, else the bundled CAs."
        ),
    ),
)

#: Defaults of the general settings, read from their declarations above.
DEFAULTS = defaults_of(th.PropertiesList(*GENERAL_SETTINGS).to_dict())

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
    #: Largest decoded answer, in bytes (``max_response_mib``).
    max_response_bytes: int
    #: The ``ca_bundle`` setting (None: the environment's, or the bundled CAs).
    ca_bundle: str | None

    @classmethod
    def from_config(cls, config: Mapping, now: dt.datetime) -> SyncSettings:
        """Build from a config that already passed :func:`semantic_errors`."""
        start = config.get("start_date")
        end = config.get("end_date")
        return cls(
            now=now,
            start_date=parse_utc(start) if start else now - dt.timedelta(days=DEFAULT_START_DAYS),
            end_date=min(parse_utc(end), now) if end else now,
            lookback=dt.timedelta(minutes=_number(config, "lookback_minutes")),
            window=dt.timedelta(days=_number(config, "window_days")),
            request_timeout=_number(config, "request_timeout"),
            max_tries=int(_number(config, "max_tries")),
            backoff_factor=_number(config, "backoff_factor"),
            backoff_max_wait=_number(config, "backoff_max_wait"),
            max_concurrency=int(_number(config, "max_concurrency")),
            max_response_bytes=int(_number(config, "max_response_mib") * 1024 * 1024),
            ca_bundle=config.get("ca_bundle") or None,
        )


def _number(config: Mapping, key: str) -> float:
    """A numeric setting (already range-checked by the schema); null means the default."""
    value = config.get(key)
    return float(DEFAULTS[key] if value is None else value)


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


def semantic_errors(config: Mapping, providers: Sequence[Provider]) -> list[str]:
    """Problems JSON schema cannot see: unparseable dates, empty ranges, and each
    configured provider's own checks (zones that exist, settings that need others)."""
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
    bundle = config.get("ca_bundle")
    if bundle and not os.path.isfile(str(bundle)):
        errors.append(f"setting 'ca_bundle': no file at {bundle!r}")
    configured = [p for p in providers if isinstance(config.get(p.name), Mapping)]
    for provider in configured:
        errors.extend(provider.check(config[provider.name]))
    if not configured:
        names = [f"'{p.name}'" for p in providers]
        errors.append(
            f"no provider configured: add at least one of the blocks "
            f"{', '.join(names[:-1])} or {names[-1]}"
        )
    return errors


#: Host names that never leave the machine.
_LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_warnings(config: Mapping, providers: Sequence[Provider]) -> list[str]:
    """One line per URL setting that would send credentials unencrypted (``http://`` or
    ``ws://``) to a host that is not this machine."""
    lines = []
    for provider in providers:
        block = config.get(provider.name)
        if not isinstance(block, Mapping):
            continue
        for key in ("api_url", "ws_url"):
            parts = urlsplit(str(block.get(key) or ""))
            if parts.scheme in ("http", "ws") and not _is_loopback(parts.hostname or ""):
                lines.append(
                    f"setting '{provider.name}.{key}' is {parts.scheme}://{parts.hostname}: "
                    "credentials and call records cross the network unencrypted; use "
                    f"{parts.scheme}s:// unless the network is trusted"
                )
    return lines

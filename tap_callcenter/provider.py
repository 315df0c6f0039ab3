"""What a provider module declares: its config block and its streams.

Each provider module (``conpeek``, ``thulium``, ``ecss``) exports one :class:`Provider`;
``tap.py`` builds the config schema and the stream list from them, and everything else
(defaults, which settings are secrets, the environment variables read by
``--config ENV``) is derived from that one declaration. Adding a provider means
writing its module and naming its ``PROVIDER`` in ``tap.PROVIDERS``.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from singer_sdk import typing as th

from tap_callcenter.timeconv import UnknownTimezoneError, load_zone

if t.TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from singer_sdk import Stream


def no_checks(block: Mapping[str, t.Any]) -> list[str]:
    """A provider whose settings the schema checks completely."""
    return []


@dataclass(frozen=True)
class Provider:
    """A call-center platform: present in the config means enabled."""

    #: The config block's key and the prefix of its stream names (``thulium``).
    name: str
    #: One line for the config reference.
    description: str
    #: The block's settings (``th.Property``; ``secret=True`` for credentials).
    settings: tuple[th.Property, ...]
    #: Stream classes, discovered when the block is present.
    streams: tuple[type[Stream], ...]
    #: Meaning checks the JSON schema cannot make (error lines, setting named).
    check: Callable[[Mapping[str, t.Any]], list[str]] = field(default=no_checks)

    def config_block(self) -> th.Property:
        """The block's schema; unknown keys inside it are errors (a typo must not pass
        for a setting the tap ignores)."""
        return th.Property(
            self.name,
            th.ObjectType(*self.settings, additional_properties=False),
            description=self.description,
        )


def timezone_errors(provider: str, block: Mapping[str, t.Any]) -> list[str]:
    """``<provider>.timezone`` must name an IANA zone."""
    zone = block.get("timezone")
    if zone is None:
        return []
    try:
        load_zone(str(zone))
    except UnknownTimezoneError as exc:
        return [f"setting '{provider}.timezone': {exc}"]
    return []


def defaults_of(schema: Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The declared defaults of a JSON schema object's properties."""
    return {
        name: spec["default"]
        for name, spec in (schema.get("properties") or {}).items()
        if "default" in spec
    }


def with_defaults(block: Mapping[str, t.Any], schema: Mapping[str, t.Any]) -> dict[str, t.Any]:
    """A config block with its schema's defaults where a setting is absent or null."""
    given = {key: value for key, value in block.items() if value is not None}
    return {**defaults_of(schema), **given}


def secret_keys(schema: Mapping[str, t.Any]) -> frozenset[str]:
    """Names of the settings a schema marks ``secret``, at any depth."""
    found: set[str] = set()
    for name, spec in (schema.get("properties") or {}).items():
        if spec.get("secret"):
            found.add(name)
        found |= secret_keys(spec)
    return frozenset(found)

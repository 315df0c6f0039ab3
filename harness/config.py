"""Tap configs for an emulator, built from what ``Emulator.describe()`` says about it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emulator import Emulator

#: The settings of each provider's config block, as ``describe()`` names them.
PROVIDER_SETTINGS: dict[str, tuple[str, ...]] = {
    "thulium": ("api_url", "username", "password", "timezone"),
    "conpeek": ("api_url", "api_key"),
    "ecss": ("api_url", "domain", "client_id", "api_key", "phone_number", "ws_url", "timezone"),
}
PROVIDERS = tuple(PROVIDER_SETTINGS)


def tap_config(
    emulator: Emulator | Mapping[str, Any], *providers: str, **settings: Any
) -> dict[str, Any]:
    """A tap config with a block for each of ``providers`` (all three when none named).

    ``emulator`` is a running :class:`Emulator` or what its ``describe()`` returned (an
    emulator in another process prints it). ``settings`` are top-level settings, except
    that a dict under a provider's name is merged into that provider's block
    (``ecss={"transport": "websocket"}``)."""
    described = emulator.describe() if isinstance(emulator, Emulator) else emulator
    config: dict[str, Any] = {}
    for provider in providers or PROVIDERS:
        info = described[provider]
        config[provider] = {name: info[name] for name in PROVIDER_SETTINGS[provider]}
    for name, value in settings.items():
        if name in PROVIDER_SETTINGS and isinstance(value, Mapping) and name in config:
            config[name].update(value)
        else:
            config[name] = value
    return config

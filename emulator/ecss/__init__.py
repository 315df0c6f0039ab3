"""Eltex ECSS-10 provider: ``operator_call_history`` over HTTP (XML) and websocket (JSON).

Importing this package registers the provider (see :mod:`emulator.ecss.provider`).
"""

from emulator.ecss.provider import (
    ATTRIBUTES,
    COMMAND,
    COOKIE_NAME,
    DEFAULT_API_KEY,
    DEFAULT_CLIENT_ID,
    DEFAULT_DOMAIN,
    DEFAULT_PHONE_NUMBER,
    LISTS,
    SETTINGS,
    EcssConfig,
    EcssError,
    EcssProvider,
    format_local,
    parse_local,
)

__all__ = [
    "ATTRIBUTES",
    "COMMAND",
    "COOKIE_NAME",
    "DEFAULT_API_KEY",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_DOMAIN",
    "DEFAULT_PHONE_NUMBER",
    "LISTS",
    "SETTINGS",
    "EcssConfig",
    "EcssError",
    "EcssProvider",
    "format_local",
    "parse_local",
]

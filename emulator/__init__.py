"""Emulator of the call-center APIs: Thulium and Conpeek (HTTP/JSON), Eltex ECSS-10
(XML over HTTP, and a websocket).

Importing a provider module registers it; add new providers to the import list below.
"""

from emulator import thulium
from emulator.base import Provider, Request, Response, SimClock, register_provider
from emulator.conpeek import ConpeekConfig, ConpeekProvider
from emulator.ecss import EcssConfig, EcssProvider
from emulator.faults import FaultConfig, FaultInjector
from emulator.server import Emulator
from emulator.thulium import ThuliumConfig, ThuliumProvider

__all__ = [
    "ConpeekConfig",
    "ConpeekProvider",
    "EcssConfig",
    "EcssProvider",
    "Emulator",
    "FaultConfig",
    "FaultInjector",
    "Provider",
    "Request",
    "Response",
    "SimClock",
    "ThuliumConfig",
    "ThuliumProvider",
    "register_provider",
    "thulium",
]

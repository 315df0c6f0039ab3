"""Run the emulator as a process: ``python -m emulator --port 8765 --seed 1``.

Prints ONE JSON line (url and per-provider connection details) once listening, then
serves until SIGINT/SIGTERM and exits 0. Faults can be changed at run time through
``POST /_emulator/faults``.
"""

from __future__ import annotations

import argparse
import gc
import json
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from emulator.base import parse_instant
from emulator.conpeek import ConpeekConfig
from emulator.ecss import SETTINGS as ECSS_SETTINGS
from emulator.ecss import EcssConfig
from emulator.faults import FaultConfig
from emulator.server import Emulator
from emulator.thulium import DEFAULT_PASSWORD, DEFAULT_USERNAME, ThuliumConfig


def _knob(text: str) -> tuple[str, Any]:
    """``name=value`` with a JSON value when it parses as one (numbers, null, lists)."""
    name, sep, raw = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected knob=value, got {text!r}")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return name.strip(), value


def _period(text: str) -> tuple[str, str]:
    start, sep, end = text.partition("/")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected START/END (ISO UTC), got {text!r}")
    return start.strip(), end.strip()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--now",
        default=None,
        metavar="ISO",
        help="start the simulated clock here (ISO 8601 with Z or an offset): data appears "
        "as it would be delivered by then; default: no clock, all data visible",
    )
    parser.add_argument(
        "--loose-types",
        action="store_true",
        help="serve loosely typed values on every stream: numbers and ids as strings, "
        'booleans as 0/1, "" for absent values (ECSS: whole seconds as "45.0")',
    )
    thulium = parser.add_argument_group("thulium")
    thulium.add_argument("--thulium-connections", type=int, default=5000)
    thulium.add_argument("--thulium-timezone", default="Europe/Warsaw")
    thulium.add_argument("--thulium-username", default=DEFAULT_USERNAME)
    thulium.add_argument("--thulium-password", default=DEFAULT_PASSWORD)
    thulium.add_argument(
        "--thulium-with-seconds", action="store_true", help='render dates as "YYYY-MM-DD HH:MM:SS"'
    )
    thulium.add_argument("--thulium-insert-while-paging", type=int, default=0)
    thulium.add_argument("--thulium-max-limit", type=int, default=ThuliumConfig.max_limit)
    thulium.add_argument(
        "--thulium-period",
        type=_period,
        action="append",
        default=None,
        metavar="START/END",
        help="UTC period of generated data, repeatable "
        "(default: both 2024 DST edges of Europe/Warsaw)",
    )
    conpeek = parser.add_argument_group("conpeek")
    conpeek.add_argument("--conpeek-dialogs", type=int, default=5000)
    conpeek.add_argument("--conpeek-summaries", type=int, default=1000)
    conpeek.add_argument("--conpeek-api-key", default=ConpeekConfig.api_key)
    conpeek.add_argument("--conpeek-max-limit-dialogs", type=int, default=500)
    conpeek.add_argument("--conpeek-max-limit-summaries", type=int, default=100)
    conpeek.add_argument("--conpeek-insert-while-paging", type=int, default=0)
    conpeek.add_argument(
        "--conpeek-period",
        type=_period,
        action="append",
        default=None,
        metavar="START/END",
        help="UTC period of generated data, repeatable (default: the Thulium periods)",
    )
    ecss = parser.add_argument_group("ecss")
    ecss.add_argument("--ecss-calls", type=int, default=5000)
    ecss.add_argument("--ecss-timezone", default=EcssConfig.timezone)
    ecss.add_argument("--ecss-domain", default=EcssConfig.domain)
    ecss.add_argument("--ecss-client-id", default=EcssConfig.client_id)
    ecss.add_argument("--ecss-api-key", default=EcssConfig.api_key)
    ecss.add_argument("--ecss-phone-number", default=EcssConfig.phone_number)
    ecss.add_argument("--ecss-ws-port", type=int, default=0, help="0 picks a free port")
    ecss.add_argument("--ecss-session-ttl-seconds", type=float, default=None)
    ecss.add_argument("--ecss-max-limit", type=int, default=EcssConfig.max_limit)
    ecss.add_argument("--ecss-insert-while-paging", type=int, default=0)
    ecss.add_argument("--ecss-tag-cursor", choices=("key", "offset"), default="key")
    ecss.add_argument(
        "--ecss-period",
        type=_period,
        action="append",
        default=None,
        metavar="START/END",
        help="UTC period of generated data, repeatable (default: both 2024 DST edges, as Thulium)",
    )
    ecss.add_argument(
        "--ecss-setting",
        type=_knob,
        action="append",
        default=[],
        metavar="KNOB=VALUE",
        help=f"any other ECSS runtime knob ({', '.join(ECSS_SETTINGS)})",
    )
    faults = parser.add_argument_group("faults")
    faults.add_argument("--latency-ms", type=float, default=0.0)
    faults.add_argument("--rate-limit-every", type=int, default=0)
    faults.add_argument("--retry-after-seconds", type=int, default=1)
    faults.add_argument("--drop-every", type=int, default=0)
    faults.add_argument("--random-rate", type=float, default=0.0)
    faults.add_argument("--random-seed", type=int, default=None)
    faults.add_argument(
        "--fault",
        type=_knob,
        action="append",
        default=[],
        metavar="KNOB=VALUE",
        help="any other fault knob, e.g. --fault unavailable_every=7",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    fault_config = FaultConfig()
    try:
        fault_config.set(
            latency_ms=args.latency_ms,
            rate_limit_every=args.rate_limit_every,
            retry_after_seconds=args.retry_after_seconds,
            drop_every=args.drop_every,
            random_rate=args.random_rate,
            random_seed=args.random_seed,
            **dict(args.fault),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    thulium = ThuliumConfig(
        timezone=args.thulium_timezone,
        connections=args.thulium_connections,
        with_seconds=args.thulium_with_seconds,
        username=args.thulium_username,
        password=args.thulium_password,
        insert_while_paging=args.thulium_insert_while_paging,
        max_limit=args.thulium_max_limit,
    )
    if args.thulium_period:
        thulium.periods = list(args.thulium_period)
    conpeek = ConpeekConfig(
        dialogs=args.conpeek_dialogs,
        summaries=args.conpeek_summaries,
        api_key=args.conpeek_api_key,
        max_limit_dialogs=args.conpeek_max_limit_dialogs,
        max_limit_summaries=args.conpeek_max_limit_summaries,
        insert_while_paging=args.conpeek_insert_while_paging,
    )
    if args.conpeek_period:
        conpeek.periods = list(args.conpeek_period)
    ecss = EcssConfig(
        timezone=args.ecss_timezone,
        calls=args.ecss_calls,
        domain=args.ecss_domain,
        client_id=args.ecss_client_id,
        api_key=args.ecss_api_key,
        phone_number=args.ecss_phone_number,
        ws_port=args.ecss_ws_port,
        session_ttl_seconds=args.ecss_session_ttl_seconds,
        max_limit=args.ecss_max_limit,
        insert_while_paging=args.ecss_insert_while_paging,
        tag_cursor=args.ecss_tag_cursor,
    )
    if args.ecss_period:
        ecss.periods = list(args.ecss_period)
    for name, value in args.ecss_setting:
        if name not in ECSS_SETTINGS:
            print(f"error: unknown ECSS setting {name!r}", file=sys.stderr)
            return 2
        setattr(ecss, name, value)
    try:
        now = parse_instant(args.now)
    except (TypeError, ValueError) as exc:
        print(f"error: --now: {exc}", file=sys.stderr)
        return 2
    emulator = Emulator(
        seed=args.seed,
        port=args.port,
        host=args.host,
        faults=fault_config,
        now=now,
        loose_types=args.loose_types,
        thulium=thulium,
        conpeek=conpeek,
        ecss=ecss,
    )
    # The data lives as long as the process: keep the cyclic GC from rescanning it.
    gc.freeze()
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    emulator.start()
    try:
        print(json.dumps(emulator.describe(), ensure_ascii=False), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The one test harness of tap-callcenter: shared by tests/, scripts/ and benchmarks/.

Runs the real tap as a subprocess (every RECORD checked against its SCHEMA; the tap's
own wall time and peak RSS measured), builds its configs from ``Emulator.describe()``,
narrows its catalogs, and says what a run must emit. Not part of the wheel.
"""

from harness.catalog import discover, full_table, select_only
from harness.config import PROVIDERS, tap_config
from harness.expected import emitted_key, expected_in_range, utc
from harness.tap import TAP_COMMAND, TapRun, parse_messages, run_tap, run_tap_until_killed

__all__ = [
    "PROVIDERS",
    "TAP_COMMAND",
    "TapRun",
    "discover",
    "emitted_key",
    "expected_in_range",
    "full_table",
    "parse_messages",
    "run_tap",
    "run_tap_until_killed",
    "select_only",
    "tap_config",
    "utc",
]

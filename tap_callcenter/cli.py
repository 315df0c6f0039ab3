"""The ``tap-callcenter`` command (and ``python -m tap_callcenter``).

Start-up is paid on every scheduled run, and most of it is importing the Singer SDK
and its dependencies. Those imports run with the cycle collector paused (they build
hundreds of thousands of objects and no cycle worth collecting), and what they built is
then frozen out of later collections, which would otherwise walk it again and again
while records flow. Measured (docs/benchmarks.md): ``--about`` 0.39 -> 0.29 s, a run of
120,000 records 0.2 s less CPU.
"""

from __future__ import annotations

import gc


def main() -> None:
    """Import the tap with the collector paused, freeze what was imported, run it."""
    gc.disable()
    try:
        from tap_callcenter.tap import main as run_tap  # noqa: PLC0415 (timed here)
    finally:
        gc.freeze()
        gc.enable()
    run_tap()

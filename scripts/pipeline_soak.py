"""Run the pipeline-life state machine long, with random (not derandomized) examples.

    python scripts/pipeline_soak.py --examples 30 --steps 25

Prints what the lives saw: runs (completed, SIGKILLed, SIGTERMed), records emitted,
record/closure checks made, days of simulated clock, and the wall time. Exits non-zero
on the first broken invariant (hypothesis prints the shrunk sequence of steps).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=30)
    parser.add_argument("--steps", type=int, default=25)
    args = parser.parse_args()
    os.environ["PIPELINE_LIFE_EXAMPLES"] = str(args.examples)
    os.environ["PIPELINE_LIFE_STEPS"] = str(args.steps)
    os.environ["PIPELINE_LIFE_RANDOM"] = "1"
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    from tests import test_pipeline_life as life  # noqa: PLC0415 - after the settings

    began = time.monotonic()
    failed = False
    try:
        life.PipelineLife.TestCase().runTest()
    except Exception as exc:  # the shrunk failing sequence is printed by hypothesis
        print(f"FAILED: {exc}", file=sys.stderr)
        failed = True
    f = life.FIGURES
    print(
        f"examples {args.examples} x up to {args.steps} steps: {f.runs} runs "
        f"({f.completed} completed, {f.killed} SIGKILLed, {f.terminated} SIGTERMed), "
        f"{f.records:,} records emitted, {f.checked:,} record checks, "
        f"{f.closures_checked:,} closure checks, {f.clock_days:,.1f} simulated days, "
        f"{time.monotonic() - began:,.0f} s"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

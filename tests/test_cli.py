"""The command's start-up tuning of the cycle collector leaves it collecting: a run
that makes reference cycles (tracebacks, closed connections) keeps them bounded.

The speed it buys is a benchmark figure (docs/benchmarks.md), not a test."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

#: Cycles made after start-up (300,000 objects, each alive only through its cycle).
CYCLES = 150_000
#: Most cyclic garbage allowed to pile up before the collector frees it, in objects
#: (2x the young generation's threshold, ``cli.YOUNG_GENERATION``, and 2 spare). Written
#: out, not read from ``cli``: raising the threshold must fail this test (memory).
MOST_GARBAGE = 100_002

#: Runs the real command (``--about``), then makes ``CYCLES`` reference cycles and
#: reports what the collector did with them.
SCRIPT = textwrap.dedent(
    """
    import gc, json, sys
    from tap_callcenter import cli

    cycles = int(sys.argv[1])
    sys.argv = ["tap-callcenter", "--about", "--format", "json"]
    try:
        cli.main()
    except SystemExit:
        pass

    class Node:
        pass

    before = gc.get_stats()[0]["collections"]
    most_alive = 0
    for i in range(cycles):
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle: only the collector frees it
        if i % 1000 == 0:
            most_alive = max(most_alive, sum(type(o) is Node for o in gc.get_objects()))
    print(json.dumps({
        "enabled": gc.isenabled(),
        "young_collections": gc.get_stats()[0]["collections"] - before,
        "most_alive": most_alive,
    }))
    """
)


def test_the_command_leaves_the_cycle_collector_collecting() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(CYCLES)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["enabled"], "the collector was left disabled after start-up"
    assert report["young_collections"] >= 2, report
    assert report["most_alive"] <= MOST_GARBAGE, report

"""Command line of the reliability fault matrix (:mod:`harness.fault_matrix`).

Usage (from the repository root, in the project's virtualenv)::

    python scripts/fault_matrix.py                      # full matrix, markdown table
    python scripts/fault_matrix.py --json matrix.json   # also every cell's details
    python scripts/fault_matrix.py --rows thulium_connections --columns 503,drop
    python scripts/fault_matrix.py --workers 3          # cells run in parallel
    python scripts/fault_matrix.py --hostile            # the hostile-server table
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as ``python scripts/fault_matrix.py``
    sys.path.insert(0, str(ROOT))

from harness.fault_matrix import COLUMNS, ROWS, Cell, run_matrix  # noqa: E402
from harness.hostile import cases as hostile  # noqa: E402

DESCRIPTION = "Reliability fault matrix: every stream of tap-callcenter against every fault."


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--json", metavar="FILE", help="also write every cell's details here")
    parser.add_argument(
        "--rows", help="comma-separated rows (default: all): " + ", ".join(s.row for s in ROWS)
    )
    parser.add_argument(
        "--columns",
        help="comma-separated column keys (default: all): " + ", ".join(c.key for c in COLUMNS),
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=min(4, (os.cpu_count() or 2) + 1),
        help="cells run in parallel (each on its own emulator)",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-cell progress on stderr")
    parser.add_argument(
        "--hostile",
        action="store_true",
        help="instead: the hostile-server table (harness/hostile: redirects, slow-loris, "
        "endless bodies, bombs, TLS, parsers), each cell's time and peak RSS measured",
    )
    args = parser.parse_args(argv)
    if args.hostile:
        return hostile_table(args.json)

    def progress(cell: Cell) -> None:
        if not args.quiet:
            print(
                f"  {cell.seconds:6.1f} s  {cell.row} x {cell.column}: {cell.text()}",
                file=sys.stderr,
            )

    matrix = run_matrix(
        args.rows.split(",") if args.rows else None,
        args.columns.split(",") if args.columns else None,
        workers=args.workers,
        progress=progress,
    )
    print(matrix.markdown())
    problems = matrix.problems()
    print(f"\n{len(matrix.cells)} cells in {matrix.seconds:.0f} s; problems: {len(problems)}")
    for problem in problems:
        print(f"- {problem}")
    if args.json:
        Path(args.json).write_text(json.dumps(matrix.to_json(), indent=2, default=str))
    return 1 if problems else 0


def hostile_table(json_path: str | None) -> int:
    """Run every hostile case on every stream it applies to; print the table."""
    results = hostile.run_table()
    print(hostile.markdown(results))
    failed = [cell for cell in results if cell.problems]
    print(f"\n{len(results)} cells; problems: {len(failed)}")
    for cell in failed:
        print(f"- {cell.case.name} on {cell.target.key}: {'; '.join(cell.problems)}")
    if json_path:
        figures = [
            {
                "case": cell.case.name,
                "stream": cell.target.key,
                "exit": cell.run.returncode,
                "seconds": round(cell.run.wall_s, 2),
                "peak_rss_mib": round(cell.run.peak_rss_mib, 1),
                "last_line": cell.run.last_line,
                "problems": cell.problems,
            }
            for cell in results
        ]
        Path(json_path).write_text(json.dumps(figures, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

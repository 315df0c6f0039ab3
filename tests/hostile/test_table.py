"""The fault matrix's hostile table (``scripts/fault_matrix.py --hostile``): rows of cases,
columns of streams, each cell with its measured time and peak RSS."""

from __future__ import annotations

import re

import pytest

from harness.hostile import cases as hostile

pytestmark = pytest.mark.hostile


def test_the_table_shows_every_stream_of_a_case_with_its_measured_figures() -> None:
    results = hostile.run_table("control")
    assert {cell.target.key for cell in results} == set(hostile.TARGETS)
    table = hostile.markdown(results)
    row = next(line for line in table.splitlines() if line.startswith("| well-behaved |"))
    figures = re.findall(r"ok, (\d+\.\d) s, (\d+) MiB", row)
    assert len(figures) == len(hostile.TARGETS), row
    assert all(float(seconds) > 0 and int(mib) > 10 for seconds, mib in figures), row

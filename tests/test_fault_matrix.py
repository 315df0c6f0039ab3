"""The reliability fault matrix (``harness/fault_matrix.py``; its command line is
``scripts/fault_matrix.py``) as part of CI.

Every stream x fault cell runs the real tap against a fresh emulator (see the module's
docstring). Each cell must end with 0 records lost (after a failure: rerun from the last
STATE, faults cleared), no key emitted twice within a run, every date-time as expected,
and the fault must really have fired. The only failure allowed is the expected one: a
repeated ECSS paging tag must stop the tap with a clear error.

The matrix runs once per module, ``workers`` cells at a time (about a minute on 2
cores); selecting single cells (``-k``) runs only those.
"""

from __future__ import annotations

import os
import re

import pytest

from harness.fault_matrix import COLUMNS, ROWS, Matrix, run_matrix

#: A cell takes seconds, the whole matrix about a minute; the first test pays for it.
pytestmark = pytest.mark.timeout(290)

#: Cells that lose records because of a known, reported tap bug, as strict xfails (once
#: the bug is fixed they pass and the entry must go): {(row, column key): reason}.
#: Empty: the spring-gap window bug ("dst-gap") was fixed in timeconv.plan_utc.
KNOWN_BUGS: dict[tuple[str, str], str] = {}

CELLS = [
    (spec.row, column.key)
    for spec in ROWS
    for column in COLUMNS
    if spec.is_ecss or not column.ecss_only
]


def _param(row: str, column: str):
    reason = KNOWN_BUGS.get((row, column))
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(row, column, id=f"{row}-{column}", marks=marks)


@pytest.fixture(scope="module")
def matrix(request) -> Matrix:
    """The matrix, restricted to the cells this session selected."""
    selected = {
        (item.callspec.params["row"], item.callspec.params["column"])
        for item in request.session.items
        if item.module is request.module
        and hasattr(item, "callspec")
        and "row" in item.callspec.params
    }
    workers = int(os.environ.get("FAULT_MATRIX_WORKERS", "0")) or min(4, (os.cpu_count() or 2) + 1)
    return run_matrix(cells=selected or CELLS, workers=workers)


@pytest.mark.parametrize(("row", "column"), [_param(*cell) for cell in CELLS])
def test_cell_loses_nothing_and_fails_only_when_it_should(matrix, row, column) -> None:
    cell = matrix.cell(row, column)
    spec = next(c for c in COLUMNS if c.key == column)
    detail = f"{cell.text()} {cell.notes} {cell.examples}"
    assert cell.fired, f"the fault did not fire, the cell proves nothing: {detail}"
    if spec.expect_failure:
        assert cell.failed, f"expected a clear failure: {detail}"
        assert "tag" in cell.outcome, detail
    else:
        assert not cell.failed, detail
    if cell.rerun is not None:
        assert cell.rerun == "completed", detail
    assert not [n for n in cell.notes if "not honoured" in n], detail
    assert not [n for n in cell.notes if "not checked" in n], detail
    assert not cell.traceback, f"a failure printed a traceback, not one clear line: {detail}"
    assert cell.lost == 0, detail
    assert cell.duplicates == 0, f"a key was emitted twice within one run: {detail}"
    assert cell.wrong_values == 0, f"date-times differ from the emulator's: {detail}"
    assert cell.outside == 0, f"records outside the range the run asked for: {detail}"


#: What the README's table shows, written here rather than read from the matrix itself.
TABLE_ROWS = [
    "thulium_connections",
    "thulium_recordings",
    "conpeek_cdr_dialog",
    "conpeek_voice_campaign_request_summary",
    "ecss_operator_call_history (http)",
    "ecss_operator_call_history (websocket)",
]
TABLE_COLUMNS = [
    "429 storm + Retry-After",
    "503 burst",
    "dropped connection",
    "truncated body",
    "slower than timeout",
    "emulator restart",
    "SIGKILL + resume",
    "inserted while paging",
    "late arrivals (lookback)",
    "DST edges",
    "window edge after spring jump",
    "ECSS session expiry",
    "ECSS repeated tag",
    "malformed ws frame",
]


def test_the_table_has_every_row_and_column(matrix) -> None:
    """The table's header and first column are the ones the README documents, and each
    cell shows that cell's result (what was run, in the selected order)."""
    lines = matrix.markdown().splitlines()

    def split(line: str) -> list[str]:  # on the table's pipes, not on escaped ones
        return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]

    header = split(lines[0])
    titles = [t for t in TABLE_COLUMNS if any(c.title == t for c in matrix.columns)]
    assert header == ["stream", *titles]
    rows = [r for r in TABLE_ROWS if any(s.row == r for s in matrix.rows)]
    body = [split(line) for line in lines[2:]]
    assert [cells[0] for cells in body] == rows
    for cells in body:
        assert len(cells) == len(header)
        for title, text in zip(header[1:], cells[1:], strict=True):
            cell = matrix.cells[(cells[0], title)]
            assert text == cell.text()
            if cell.applicable:
                assert f"{cell.lost} lost" in text

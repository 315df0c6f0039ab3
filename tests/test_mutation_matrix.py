"""The mutation matrix (``scripts/mutation_matrix.py``) as part of CI.

Every row breaks one promised behaviour in a scratch copy of the repository and runs
the tests that should notice; all of them must notice (about 80 s for the whole matrix
on 2 cores: each row runs only its own tests and stops at the first failure). The
matrix test is marked ``mutation`` (deselect with ``-m "not mutation"``); the checks
that every row still applies to the code run always, in a second.
"""

from __future__ import annotations

import pytest

from scripts.mutation_matrix import MUTATIONS, ROOT, baseline, occurrences, problems, run_matrix


def test_every_row_still_applies_to_the_code() -> None:
    """A row whose text no longer occurs exactly once is stale: the code moved on and
    the row must follow it (the matrix would report it too, but only when run)."""
    stale = {m.key: occurrences(m) for m in MUTATIONS if occurrences(m) != 1}
    assert not stale, f"rows whose text to replace does not occur exactly once: {stale}"


def test_rows_are_well_formed() -> None:
    keys = [m.key for m in MUTATIONS]
    assert len(keys) == len(set(keys)), "row keys must be unique"
    for mutation in MUTATIONS:
        assert mutation.old != mutation.new, mutation.key
        assert mutation.tests, mutation.key
        for test in mutation.tests:
            path = test.split("::")[0]
            assert (ROOT / path).exists(), f"{mutation.key}: no such test file {path}"


@pytest.mark.mutation
@pytest.mark.timeout(1200)
def test_every_break_is_caught_by_a_test() -> None:
    base = baseline(MUTATIONS)
    assert base.status == "passed", f"the rows' tests fail unbroken: {base.caught_by} {base.detail}"
    results = run_matrix(workers=1)
    found = problems(results)
    assert not found, "\n".join(found)

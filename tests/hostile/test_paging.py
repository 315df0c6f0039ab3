"""Paging against servers that ignore offset or send an absurd count: bounded requests and memory, no endless loop.

Cases, bounds and checks: see ``harness/hostile/cases.py``.
"""

from __future__ import annotations

import pytest

from harness.hostile.cases import HostileCase, assert_case, cells
from harness.hostile.servers import Target

pytestmark = pytest.mark.hostile


@pytest.mark.parametrize(
    ("case", "target"),
    [pytest.param(c, t, id=f"{c.name}-{t.key}") for c, t in cells("paging")],
)
def test_paging(case: HostileCase, target: Target, tmp_path) -> None:
    assert_case(case, target, tmp_path)

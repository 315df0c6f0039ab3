"""The hostile servers behaving well: the tap succeeds against each (a hostile failure is the tap's, not the server's).

Cases, bounds and checks: see ``harness/hostile/cases.py``.
"""

from __future__ import annotations

import pytest

from harness.hostile.cases import HostileCase, assert_case, cells
from harness.hostile.servers import Target

pytestmark = pytest.mark.hostile


@pytest.mark.parametrize(
    ("case", "target"),
    [pytest.param(c, t, id=f"{c.name}-{t.key}") for c, t in cells("control")],
)
def test_control(case: HostileCase, target: Target, tmp_path) -> None:
    assert_case(case, target, tmp_path)

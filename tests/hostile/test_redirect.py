"""Redirects: never to another origin (no request reaches it), loops named as loops, same-origin ones followed.

Cases, bounds and checks: see ``harness/hostile/cases.py``.
"""

from __future__ import annotations

import pytest

from harness.hostile.cases import HostileCase, assert_case, cells
from harness.hostile.servers import Target

pytestmark = pytest.mark.hostile


@pytest.mark.parametrize(
    ("case", "target"),
    [pytest.param(c, t, id=f"{c.name}-{t.key}") for c, t in cells("redirect")],
)
def test_redirect(case: HostileCase, target: Target, tmp_path) -> None:
    assert_case(case, target, tmp_path)

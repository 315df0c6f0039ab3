"""Answers that attack the parsers: deep JSON nesting, non-UTF-8 websocket frames, XML entities.

Cases, bounds and checks: see ``harness/hostile/cases.py``.
"""

from __future__ import annotations

import pytest

from harness.hostile.cases import HostileCase, assert_case, cells
from harness.hostile.servers import Target

pytestmark = pytest.mark.hostile


@pytest.mark.parametrize(
    ("case", "target"),
    [pytest.param(c, t, id=f"{c.name}-{t.key}") for c, t in cells("parsing")],
)
def test_parsing(case: HostileCase, target: Target, tmp_path) -> None:
    assert_case(case, target, tmp_path)

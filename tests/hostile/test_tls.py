"""TLS with a private CA: an untrusted certificate is a fatal certificate error; ca_bundle, REQUESTS_CA_BUNDLE and SSL_CERT_FILE make it trusted.

Cases, bounds and checks: see ``harness/hostile/cases.py``.
"""

from __future__ import annotations

import pytest

from harness.hostile.cases import HostileCase, assert_case, cells
from harness.hostile.servers import Target

pytestmark = pytest.mark.hostile


@pytest.mark.parametrize(
    ("case", "target"),
    [pytest.param(c, t, id=f"{c.name}-{t.key}") for c, t in cells("tls")],
)
def test_tls(case: HostileCase, target: Target, tmp_path) -> None:
    assert_case(case, target, tmp_path)

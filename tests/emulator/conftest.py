"""Shared fixtures of the emulator tests."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``slow`` marker here (pyproject belongs to the tap author)."""
    config.addinivalue_line("markers", "slow: long-running test (deselect with -m 'not slow')")

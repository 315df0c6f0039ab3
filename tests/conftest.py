"""Shared fixtures: a live emulator on loopback and tap configs pointing at it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from emulator import Emulator, ThuliumConfig
from harness import expected_in_range, tap_config

#: Both daylight-saving edges of Europe/Warsaw in 2024, as the emulator seeds them.
SPRING = ("2024-03-30T00:00:00+00:00", "2024-04-01T00:00:00+00:00")
AUTUMN = ("2024-10-26T00:00:00+00:00", "2024-10-28T00:00:00+00:00")

#: Fast retries so fault tests take seconds; the tap's defaults are gentler.
FAST_HTTP = {"backoff_factor": 0.05, "backoff_max_wait": 1, "max_tries": 5, "request_timeout": 3}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "mutation: runs the mutation matrix (minutes); deselect with -m 'not mutation'",
    )
    config.addinivalue_line(
        "markers",
        "emulator(**settings): the settings of the `emulator` fixture (Emulator's arguments)",
    )


@pytest.fixture
def emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """A fresh, started emulator per test (tests mutate data and faults), built from
    the closest ``@pytest.mark.emulator(...)`` (module or test), else the default:
    Thulium with 6,000 connections."""
    marker = request.node.get_closest_marker("emulator")
    settings = marker.kwargs if marker else {"thulium": ThuliumConfig(connections=6000)}
    emu = Emulator(**{"seed": 7, "port": 0, **settings})
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def thulium_config(emu: Emulator, start: str, end: str, **overrides: object) -> dict:
    """A tap config for the emulator's Thulium between ``start`` and ``end``."""
    settings = {"start_date": start, "end_date": end, "window_days": 0.5, **FAST_HTTP}
    return tap_config(emu, "thulium", **{**settings, **overrides})


def expected_keys(emu: Emulator, stream: str, start: str, end: str, field: str) -> dict:
    """Thulium records the emulator holds whose ``field`` (UTC) is in [start, end)."""
    return expected_in_range(emu.thulium.expected(stream), field, start, end)


@pytest.fixture
def thulium_emulator(emulator: Emulator) -> Emulator:
    """The default emulator (Thulium, 6,000 connections), by its older name."""
    return emulator


def assert_stream_matches(run, stream: str, expected: dict, key_fields: tuple[str, ...]) -> None:
    """The run emitted exactly the expected keys, once each, with the expected date-times.

    Both sides must be non-empty: a test whose period holds no record, or a tap that
    emits nothing, would otherwise "match" and prove nothing.
    """
    assert run.returncode == 0, run.stderr[-3000:]
    assert expected, f"{stream}: the emulator holds no record in the period; the test is void"
    records = run.records[stream]
    assert records, f"{stream}: the run emitted no record"
    keys = [tuple(r[f] for f in key_fields) for r in records]
    dupes = [k for k, n in Counter(keys).items() if n > 1]
    assert not dupes, f"{stream}: duplicated keys {dupes[:5]}"
    missing, extra = set(expected) - set(keys), set(keys) - set(expected)
    assert not missing and not extra, (
        f"{stream}: missing {sorted(missing)[:5]}, unexpected {sorted(extra)[:5]}"
    )
    for record in records:
        for name, value in expected[tuple(record[f] for f in key_fields)][
            "expected_fields"
        ].items():
            assert record.get(name) == value, (stream, name, record, value)


class CollectingStdout:
    """Stands in for ``sys.stdout``: keeps what is written to its binary buffer."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.buffer = self

    def write(self, chunk: bytes | memoryview) -> int:
        self.data += chunk
        return len(chunk)

    def flush(self) -> None:
        pass

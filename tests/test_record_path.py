"""The trimmed per-record path (fastpath.py, WholeMessageWriter.write_record) changes
nothing a user can see: a RECORD is written as the SDK writes it, and stream maps,
flattening and deselected properties still apply (they take the SDK's own path)."""

from __future__ import annotations

import datetime as dt
import json
import sys

import pytest
from singer_sdk.singerlib import RecordMessage

from emulator import Emulator
from harness import run_tap
from harness.catalog import discover, select_only
from tap_callcenter.tap import WholeMessageWriter
from tests.conftest import SPRING, CollectingStdout, thulium_config

START, END = SPRING


def test_a_record_is_written_as_the_sdk_writes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    out = CollectingStdout()
    monkeypatch.setattr(sys, "stdout", out)
    writer = WholeMessageWriter()
    record = {"id": "1", "n": 2, "tags": ["ż"], "nested": {"x": None}}
    for version in (17, None):
        writer.write_record("calls", record, version)
        writer.write_message(
            RecordMessage(
                stream="calls",
                record=record,
                version=version,
                time_extracted=dt.datetime.now(dt.timezone.utc),
            )
        )
    writer.flush()
    lines = [json.loads(line) for line in out.data.decode().splitlines()]
    assert len(lines) == 4
    for ours, sdks in (lines[0:2], lines[2:4]):
        assert list(ours) == list(sdks)  # same keys in the same order
        assert {k: v for k, v in ours.items() if k != "time_extracted"} == {
            k: v for k, v in sdks.items() if k != "time_extracted"
        }
        # the same form (RFC 3339, UTC), read once a second: at most a second apart
        assert ours["time_extracted"].endswith("Z")
        assert ours["time_extracted"][:19] <= sdks["time_extracted"][:19]


def _records(emulator: Emulator, **overrides: object) -> list[dict]:
    config = thulium_config(emulator, START, END, **overrides)
    catalog = select_only(discover(config), "thulium_connections")
    run = run_tap(config, catalog=catalog)
    assert run.returncode == 0, run.stderr[-2000:]
    return [m for m in run.messages if m["type"] == "RECORD"]


@pytest.mark.emulator
def test_stream_maps_and_flattening_still_apply(emulator: Emulator) -> None:
    plain = _records(emulator)
    assert plain and all(m["stream"] == "thulium_connections" for m in plain)
    assert any(isinstance(m["record"].get("rating"), dict) for m in plain), "no nested value"
    mapped = _records(
        emulator,
        stream_maps={
            "thulium_connections": {"__alias__": "calls", "src": None, "origin": "'emulator'"}
        },
        flattening_enabled=True,
        flattening_max_depth=1,
    )
    assert [m["stream"] for m in mapped] == ["calls"] * len(plain)
    for before, after in zip(plain, mapped, strict=True):
        record = after["record"]
        assert "src" not in record and record["origin"] == "emulator"
        rating = before["record"].get("rating")
        if isinstance(rating, dict):  # flattened (the SDK leaves a null as it is)
            assert "rating" not in record
            assert {f"rating__{name}": value for name, value in rating.items()}.items() <= (
                record.items()
            )
        assert record["connection_id"] == before["record"]["connection_id"]


@pytest.mark.emulator
def test_a_deselected_property_is_left_out(emulator: Emulator) -> None:
    config = thulium_config(emulator, START, END)
    catalog = select_only(discover(config), "thulium_connections")
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == ["properties", "dst"]:
                item["metadata"]["selected"] = False
    run = run_tap(config, catalog=catalog)
    assert run.returncode == 0, run.stderr[-2000:]
    records = run.records["thulium_connections"]
    assert records and all("dst" not in r and "src" in r for r in records)

"""Servers that send loosely typed values: every RECORD still fits its SCHEMA.

The emulator's ``loose_types`` mode serves the same data with numbers and ids as strings,
booleans as 0/1 and "" for absent values, on every stream; the tap must emit exactly what
it emits for the strictly typed server. A value that cannot be converted without loss is
null in its field, kept in ``_raw_values`` and named in a WARNING with its count. (Every
run here goes through ``harness``, which checks each RECORD against its SCHEMA.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
import requests

from emulator import ConpeekConfig, EcssConfig, Emulator, ThuliumConfig
from harness import run_tap, tap_config
from harness.loopback import Answer, Seen, http_server
from tap_callcenter.coerce import RAW_VALUES

START, END = "2024-10-26T00:00:00Z", "2024-10-28T00:00:00Z"
KEYS = {
    "thulium_connections": ("connection_id",),
    "thulium_recordings": ("connection_id", "filename"),
    "conpeek_cdr_dialog": ("dialog_uuid",),
    "conpeek_voice_campaign_request_summary": ("id",),
    "ecss_operator_call_history": ("call_ref",),
}


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    emulator = Emulator(
        seed=11,
        port=0,
        thulium=ThuliumConfig(connections=800),
        conpeek=ConpeekConfig(dialogs=800, summaries=300),
        ecss=EcssConfig(calls=400),
    )
    emulator.start()
    yield emulator
    emulator.stop()


def config(emu: Emulator, transport: str = "http") -> dict:
    return tap_config(
        emu, start_date=START, end_date=END, backoff_factor=0.05, ecss={"transport": transport}
    )


def declared(run, stream: str) -> dict[tuple, dict]:
    """The stream's records by key, declared fields only (undeclared ones are kept as
    the server sent them, loosely typed or not)."""
    schema = next(
        m["schema"] for m in run.messages if m["type"] == "SCHEMA" and m["stream"] == stream
    )
    names = set(schema["properties"])
    return {
        tuple(r[k] for k in KEYS[stream]): {k: v for k, v in r.items() if k in names}
        for r in run.records[stream]
    }


@pytest.mark.parametrize("transport", ["http", "websocket"])
def test_loosely_typed_values_give_the_same_records_on_every_stream(emu, transport) -> None:
    emu.set_loose_types(False)
    strict = run_tap(config(emu, transport))
    assert strict.returncode == 0, strict.stderr[-3000:]
    emu.set_loose_types(True)
    try:
        loose = run_tap(config(emu, transport))  # every RECORD checked against its SCHEMA
    finally:
        emu.set_loose_types(False)
    assert loose.returncode == 0, loose.stderr[-3000:]
    assert set(loose.records) == set(KEYS)
    for stream in KEYS:
        expected, got = declared(strict, stream), declared(loose, stream)
        assert expected and got.keys() == expected.keys(), stream
        for key, record in expected.items():
            assert got[key] == record, (stream, key)
    assert "did not fit" not in loose.stderr
    reports = [line for line in loose.stderr.splitlines() if "completeness:" in line]
    assert len(reports) == 5 and all("values_not_fitting=0" in line for line in reports)


def test_the_loose_server_really_sends_loose_types(emu) -> None:
    """The mode is what the test above relies on: strings for numbers and ids, 0/1 for
    booleans, "" for nulls -- checked on the wire."""
    emu.set_loose_types(True)
    try:
        thulium = requests.get(
            f"{emu.thulium_api_url}/connections",
            params={"limit": 100, "date_from": "2024-10-26", "date_to": "2024-10-28"},
            auth=(emu.thulium.config.username, emu.thulium.config.password),
            timeout=10,
        ).json()
        conpeek = requests.get(
            f"{emu.conpeek_api_url}/cdr_dialog",
            params={"limit": 500},
            headers={"Authorization": emu.conpeek.config.api_key},
            timeout=10,
        ).json()["data"]
    finally:
        emu.set_loose_types(False)
    assert isinstance(thulium["count"], str)
    rows = thulium["result"]
    assert all(isinstance(r["duration"], str) for r in rows)
    assert any(r["topic_id"] == "" for r in rows) and any(r["queue_id"].isdigit() for r in rows)
    assert all(r["machine_detected"] in (0, 1, "") for r in conpeek)
    assert {0, 1} <= {r["machine_detected"] for r in conpeek}
    assert all(isinstance(r["project_id"], str) and r["project_id"].isdigit() for r in conpeek)


# ------------------------------------------------------------------ values that do not fit


def odd_thulium(records: list[dict]) -> Callable[[Seen], Answer]:
    """A Thulium-shaped server answering one fixed page of connections."""
    body = json.dumps({"count": len(records), "result": records})
    empty = json.dumps({"count": 0, "result": []})

    def answer(seen: Seen) -> Answer:
        first_page = "/connections" in seen.path and "offset=0" in seen.path
        return 200, "application/json", body if first_page else empty, {}

    return answer


def test_values_that_cannot_be_converted_are_null_kept_raw_and_warned() -> None:
    base = {"date": "2024-03-30 10:00:00", "src": "1", "dst": "2", "disposition": "ANSWERED"}
    records = [
        {**base, "connection_id": 1711792800.5, "duration": "12.5", "queue_id": "q-7"},
        {**base, "connection_id": 1711792801, "duration": "13", "queue_id": "34"},
        {**base, "connection_id": "c3", "duration": "1,5", "rating": "happy", "tags": "x"},
    ]
    with http_server(odd_thulium(records)) as url:
        run = run_tap(
            {
                "start_date": "2024-03-30T00:00:00Z",
                "end_date": "2024-03-31T00:00:00Z",
                "window_days": 1,
                "thulium": {"api_url": url + "/api", "username": "u", "password": "p"},
                "max_tries": 1,
            },
            catalog=None,
        )
    assert run.returncode == 0, run.stderr[-3000:]  # and every RECORD fits its SCHEMA
    got = {r["connection_id"]: r for r in run.records["thulium_connections"]}
    assert set(got) == {"1711792800.5", "1711792801", "c3"}  # keys as text, none lost
    first, second, third = got["1711792800.5"], got["1711792801"], got["c3"]
    assert first["duration"] is None and first["queue_id"] is None
    assert json.loads(first[RAW_VALUES]) == {"duration": "12.5", "queue_id": "q-7"}
    assert second["duration"] == 13 and second["queue_id"] == 34 and RAW_VALUES not in second
    assert json.loads(third[RAW_VALUES]) == {"duration": "1,5", "rating": "happy", "tags": "x"}
    warnings = [line for line in run.stderr.splitlines() if "did not fit" in line]
    assert len(warnings) == 4, warnings
    assert any(
        "thulium_connections: 2 value(s) of field 'duration' did not fit" in line
        for line in warnings
    )
    report = next(line for line in run.stderr.splitlines() if "completeness:" in line)
    assert "values_not_fitting=5" in report

"""Meltano end to end: install, run into JSONL and DuckDB, state, select, stream maps.

Runs the real ``meltano`` (from ``$MELTANO_BIN``, ``.venv-meltano`` or PATH) in a copy of
the project's ``meltano.yml``, with every tap setting from environment variables only.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from emulator import ConpeekConfig, EcssConfig, Emulator, ThuliumConfig
from tests.meltano.helpers import (
    END,
    MIDDLE,
    install_project,
    jsonl_counts,
    meltano,
    meltano_run,
    settings_env,
    tap_records,
)


@pytest.fixture(scope="module")
def emu():
    with Emulator(
        seed=21,
        port=0,
        thulium=ThuliumConfig(connections=1500),
        conpeek=ConpeekConfig(dialogs=1500, summaries=400),
        ecss=EcssConfig(calls=1200),
    ) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A Meltano project: the repo's meltano.yml with the tap installed from this checkout."""
    return install_project(tmp_path_factory.mktemp("meltano-project"))


def direct_counts(emu, end: str = MIDDLE) -> Counter:
    """What the tap itself emits for the same settings (the reference for the loaders)."""
    return Counter({stream: len(records) for stream, records in tap_records(emu, end).items()})


def test_jsonl_run_with_settings_from_the_environment_then_incremental(emu, project) -> None:
    first_dir, second_dir = project / "out-1", project / "out-2"
    meltano_run(
        project,
        "tap-callcenter",
        "target-jsonl",
        env=settings_env(emu, TARGET_JSONL_DESTINATION_PATH=str(first_dir)),
    )
    first = jsonl_counts(first_dir)
    assert Counter({k: len(v) for k, v in first.items()}) == direct_counts(emu)
    assert len(first) == 5

    state = meltano(project, "state", "get", "dev:tap-callcenter-to-target-jsonl", env={})
    assert state.returncode == 0, state.stderr[-2000:]
    bookmarks = json.loads(state.stdout.strip().splitlines()[-1])["singer_state"]["bookmarks"]
    assert bookmarks["thulium_connections"]["replication_key_value"] == "2024-10-27T00:00:00+00:00"

    meltano_run(
        project,
        "tap-callcenter",
        "target-jsonl",
        env=settings_env(
            emu, TAP_CALLCENTER_END_DATE=END, TARGET_JSONL_DESTINATION_PATH=str(second_dir)
        ),
    )
    second = jsonl_counts(second_dir)
    # incremental: starts at the bookmark minus the 60-minute lookback
    dates = [r["date"] for r in second["thulium_connections"]]
    assert dates and min(dates) >= "2024-10-26T23:00:00+00:00"
    assert 0 < len(second["thulium_connections"]) < direct_counts(emu, END)["thulium_connections"]


def test_duckdb_loads_every_row_the_tap_emits(emu, project) -> None:
    meltano_run(
        project,
        "--full-refresh",
        "tap-callcenter",
        "target-duckdb",
        env=settings_env(emu, TARGET_DUCKDB_FILEPATH=str(project / "test.duckdb")),
    )
    python = project / ".meltano/loaders/target-duckdb/venv/bin/python"
    query = (
        "import duckdb, json, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
        "print(json.dumps({t: c.execute(f'select count(*) from main.{t}').fetchone()[0] "
        'for (t,) in c.execute("select table_name from information_schema.tables '
        "where table_schema='main'\").fetchall()}))"
    )
    counted = subprocess.run(
        [str(python), "-c", query, str(project / "test.duckdb")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert Counter(json.loads(counted.stdout)) == direct_counts(emu)


def test_a_stream_selected_off_is_not_extracted(emu, project) -> None:
    out = project / "out-select"
    env = settings_env(
        emu,
        TARGET_JSONL_DESTINATION_PATH=str(out),
        TAP_CALLCENTER__SELECT=json.dumps(["thulium_connections.*", "conpeek_cdr_dialog.*"]),
    )
    result = meltano_run(
        project,
        "--full-refresh",
        "--state-id-suffix",
        "select",
        "tap-callcenter",
        "target-jsonl",
        env=env,
    )
    assert set(jsonl_counts(out)) == {"thulium_connections", "conpeek_cdr_dialog"}
    assert re.search(
        r"Skipping deselected stream 'thulium_recordings'", result.stderr + result.stdout
    )


def test_a_stream_map_hashes_phone_numbers(emu, project) -> None:
    out = project / "out-maps"
    maps = {"thulium_connections": {"src": "md5(src)", "dst": "md5(dst)"}}
    env = settings_env(
        emu, TARGET_JSONL_DESTINATION_PATH=str(out), TAP_CALLCENTER_STREAM_MAPS=json.dumps(maps)
    )
    meltano_run(
        project,
        "--full-refresh",
        "--state-id-suffix",
        "maps",
        "tap-callcenter",
        "target-jsonl",
        env=env,
    )
    rows = jsonl_counts(out)["thulium_connections"]
    assert rows and all(re.fullmatch(r"[0-9a-f]{32}", r["src"]) for r in rows)
    raw = {tuple(i["key"]): i["record"] for i in emu.thulium.expected("connections")}
    sample = rows[0]
    assert sample["src"] == hashlib.md5(raw[(sample["connection_id"],)]["src"].encode()).hexdigest()

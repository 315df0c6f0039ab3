"""Meltano into a real PostgreSQL server with meltanolabs-target-postgres: every distinct
key the tap emits is one row; an incremental run (lookback included) upserts.

The server is started by the test itself (``tests.pg_server``): initdb and pg_ctl in a
temporary folder on a free port; skipped only where no server binaries exist (and never
in CI, which sets ``REQUIRE_POSTGRES=1``).
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator import ConpeekConfig, EcssConfig, Emulator, ThuliumConfig
from tests.meltano.helpers import (
    END,
    MIDDLE,
    install_project,
    meltano_run,
    settings_env,
    tap_records,
)
from tests.pg_server import PostgresServer, postgres_server

SCHEMA = "callcenter"
KEYS = {
    "thulium_connections": ("connection_id",),
    "thulium_recordings": ("connection_id", "filename"),
    "conpeek_cdr_dialog": ("dialog_uuid",),
    "conpeek_voice_campaign_request_summary": ("id",),
    "ecss_operator_call_history": ("call_ref",),
}


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with postgres_server() as running:
        yield running


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(
        seed=31,
        port=0,
        thulium=ThuliumConfig(connections=1000),
        conpeek=ConpeekConfig(dialogs=1000, summaries=300),
        ecss=EcssConfig(calls=800),
    ) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def project(tmp_path_factory, server) -> Path:
    path = tmp_path_factory.mktemp("meltano-postgres")
    return install_project(path, "tap-callcenter", "target-postgres")


def loader_env(server: PostgresServer, **extra: str) -> dict[str, str]:
    return {
        "TARGET_POSTGRES_HOST": server.host,
        "TARGET_POSTGRES_PORT": str(server.port),
        "TARGET_POSTGRES_USER": server.user,
        "TARGET_POSTGRES_DATABASE": server.database,
        # trust authentication ignores it, but the loader refuses to start without one
        "TARGET_POSTGRES_PASSWORD": "unused",
        **extra,
    }


QUERY = """
import json, sys, psycopg
host, port, user, database, schema, keys = sys.argv[1:]
keys = json.loads(keys)
out = {}
with psycopg.connect(host=host, port=int(port), user=user, dbname=database) as con:
    for table, key in keys.items():
        columns = [r[0] for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = %s and table_name = %s", (schema, table))]
        if not columns:
            continue
        rows = con.execute(
            f'select {", ".join(chr(34) + k + chr(34) for k in key)} from "{schema}"."{table}"'
        ).fetchall()
        out[table] = {"columns": columns, "keys": [list(map(str, r)) for r in rows]}
print(json.dumps(out))
"""


def tables(project: Path, server: PostgresServer) -> dict[str, dict]:
    """Per table: its columns and the key of every row (read with the loader's psycopg)."""
    python = project / ".meltano/loaders/target-postgres/venv/bin/python"
    result = subprocess.run(
        [
            str(python), "-c", QUERY, server.host, str(server.port), server.user,
            server.database, SCHEMA, json.dumps(KEYS),
        ],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    return json.loads(result.stdout)


def tap_keys(emu: Emulator, end: str) -> dict[str, set[tuple]]:
    """The distinct keys the tap itself emits for START .. end (the loader's reference)."""
    return {
        stream: {tuple(str(r[k]) for k in KEYS[stream]) for r in records}
        for stream, records in tap_records(emu, end).items()
    }


def test_postgres_holds_one_row_per_key_and_an_incremental_run_upserts(
    emu, server, project
) -> None:
    meltano_run(
        project,
        "tap-callcenter",
        "target-postgres",
        env={**settings_env(emu), **loader_env(server)},
    )
    loaded = tables(project, server)
    expected = tap_keys(emu, MIDDLE)
    assert set(loaded) == set(KEYS)
    for stream, keys in expected.items():
        rows = [tuple(k) for k in loaded[stream]["keys"]]
        assert len(rows) == len(set(rows)) == len(keys), stream
        assert set(rows) == keys, stream
    # the loader keeps declared columns only: an undeclared field has no column
    assert "campaign_name" not in loaded["thulium_connections"]["columns"]
    assert "_raw_values" in loaded["thulium_connections"]["columns"]

    # calls that started before the bookmark arrive late; the next run re-reads the
    # lookback (records already loaded come again) and must upsert, not append
    request = urllib.request.Request(
        f"{emu.url}/_emulator/thulium/insert",
        data=json.dumps(
            {"n": 4, "from": "2024-10-26T23:15:00Z", "to": "2024-10-26T23:45:00Z"}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        late = [r["connection_id"] for r in json.loads(response.read())["records"]]
    in_lookback = [
        row
        for row in emu.thulium.expected("connections")
        if "2024-10-26T23:00:00+00:00" <= row["expected_fields"]["date"] < MIDDLE
        and row["key"][0] not in late
    ]
    assert in_lookback, "the lookback must re-send rows already loaded"
    meltano_run(
        project,
        "tap-callcenter",
        "target-postgres",
        env={**settings_env(emu, TAP_CALLCENTER_END_DATE=END), **loader_env(server)},
    )
    reloaded = tables(project, server)
    expected = tap_keys(emu, END)
    for stream, keys in expected.items():
        rows = [tuple(k) for k in reloaded[stream]["keys"]]
        assert len(rows) == len(set(rows)) == len(keys), f"{stream}: not upserted"
        assert set(rows) == keys, stream
    connections = {k[0] for k in reloaded["thulium_connections"]["keys"]}
    assert set(late) <= connections

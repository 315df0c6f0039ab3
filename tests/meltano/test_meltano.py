"""Meltano end to end: install, run into JSONL and DuckDB, state, select, stream maps.

Runs the real ``meltano`` (from ``$MELTANO_BIN``, ``.venv-meltano`` or PATH) in a copy of
the project's ``meltano.yml``, with every tap setting from environment variables only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from emulator import ConpeekConfig, EcssConfig, Emulator, ThuliumConfig
from harness import run_tap

ROOT = Path(__file__).resolve().parents[2]
START, MIDDLE, END = "2024-10-26T00:00:00Z", "2024-10-27T00:00:00Z", "2024-10-28T00:00:00Z"


def meltano_binary() -> str:
    for candidate in (
        os.environ.get("MELTANO_BIN"),
        str(ROOT / ".venv-meltano/bin/meltano"),
        shutil.which("meltano"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("meltano not found: ./test.sh installs it into .venv-meltano (or set MELTANO_BIN)")


@pytest.fixture(scope="module")
def emu():
    emulator = Emulator(
        seed=21,
        port=0,
        thulium=ThuliumConfig(connections=1500),
        conpeek=ConpeekConfig(dialogs=1500, summaries=400),
        ecss=EcssConfig(calls=1200),
    )
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A Meltano project: the repo's meltano.yml with the tap installed from this checkout."""
    path = tmp_path_factory.mktemp("meltano-project")
    text = (ROOT / "meltano.yml").read_text().replace("pip_url: -e .", f"pip_url: -e {ROOT}")
    (path / "meltano.yml").write_text(text)
    result = meltano(path, "install", env={})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return path


def settings_env(emu, **extra: str) -> dict[str, str]:
    thulium, conpeek, ecss = emu.thulium.config, emu.conpeek.config, emu.ecss.config
    env = {
        "TAP_CALLCENTER_START_DATE": START,
        "TAP_CALLCENTER_END_DATE": MIDDLE,
        "TAP_CALLCENTER_BACKOFF_FACTOR": "0.05",
        "TAP_CALLCENTER_THULIUM_API_URL": emu.thulium_api_url,
        "TAP_CALLCENTER_THULIUM_USERNAME": thulium.username,
        "TAP_CALLCENTER_THULIUM_PASSWORD": thulium.password,
        "TAP_CALLCENTER_CONPEEK_API_URL": emu.conpeek_api_url,
        "TAP_CALLCENTER_CONPEEK_API_KEY": conpeek.api_key,
        "TAP_CALLCENTER_ECSS_API_URL": emu.ecss_api_url,
        "TAP_CALLCENTER_ECSS_DOMAIN": ecss.domain,
        "TAP_CALLCENTER_ECSS_CLIENT_ID": ecss.client_id,
        "TAP_CALLCENTER_ECSS_API_KEY": ecss.api_key,
        "TAP_CALLCENTER_ECSS_PHONE_NUMBER": ecss.phone_number,
        "TAP_CALLCENTER_ECSS_TIMEZONE": ecss.timezone,
    }
    env.update(extra)
    return env


def meltano(project: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TAP_CALLCENTER", "TARGET_"))}
    return subprocess.run(
        [meltano_binary(), *args],
        cwd=project,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def jsonl_counts(directory: Path) -> dict[str, list[dict]]:
    out = {}
    for path in sorted(directory.glob("*.jsonl")):
        out[path.stem] = [json.loads(line) for line in path.read_text().splitlines() if line]
    return out


def direct_counts(emu, end: str = MIDDLE) -> Counter:
    """What the tap itself emits for the same settings (the reference for the loaders)."""
    env = settings_env(emu)
    config = {
        "start_date": START,
        "end_date": end,
        "backoff_factor": 0.05,
        "thulium": {
            "api_url": env["TAP_CALLCENTER_THULIUM_API_URL"],
            "username": env["TAP_CALLCENTER_THULIUM_USERNAME"],
            "password": env["TAP_CALLCENTER_THULIUM_PASSWORD"],
        },
        "conpeek": {
            "api_url": env["TAP_CALLCENTER_CONPEEK_API_URL"],
            "api_key": env["TAP_CALLCENTER_CONPEEK_API_KEY"],
        },
        "ecss": {
            k.lower(): env[f"TAP_CALLCENTER_ECSS_{k}"]
            for k in ("API_URL", "DOMAIN", "CLIENT_ID", "API_KEY", "PHONE_NUMBER", "TIMEZONE")
        },
    }
    run = run_tap(config)
    assert run.returncode == 0, run.stderr[-2000:]
    return Counter({stream: len(records) for stream, records in run.records.items()})


def test_jsonl_run_with_settings_from_the_environment_then_incremental(emu, project) -> None:
    first_dir, second_dir = project / "out-1", project / "out-2"
    result = meltano(
        project,
        "run",
        "tap-callcenter",
        "target-jsonl",
        env=settings_env(emu, TARGET_JSONL_DESTINATION_PATH=str(first_dir)),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    first = jsonl_counts(first_dir)
    assert Counter({k: len(v) for k, v in first.items()}) == direct_counts(emu)
    assert len(first) == 5

    state = meltano(project, "state", "get", "dev:tap-callcenter-to-target-jsonl", env={})
    assert state.returncode == 0, state.stderr[-2000:]
    bookmarks = json.loads(state.stdout.strip().splitlines()[-1])["singer_state"]["bookmarks"]
    assert bookmarks["thulium_connections"]["replication_key_value"] == "2024-10-27T00:00:00+00:00"

    result = meltano(
        project,
        "run",
        "tap-callcenter",
        "target-jsonl",
        env=settings_env(
            emu, TAP_CALLCENTER_END_DATE=END, TARGET_JSONL_DESTINATION_PATH=str(second_dir)
        ),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    second = jsonl_counts(second_dir)
    # incremental: starts at the bookmark minus the 60-minute lookback
    dates = [r["date"] for r in second["thulium_connections"]]
    assert dates and min(dates) >= "2024-10-26T23:00:00+00:00"
    assert 0 < len(second["thulium_connections"]) < direct_counts(emu, END)["thulium_connections"]


def test_duckdb_loads_every_row_the_tap_emits(emu, project) -> None:
    result = meltano(
        project,
        "run",
        "--full-refresh",
        "tap-callcenter",
        "target-duckdb",
        env=settings_env(emu, TARGET_DUCKDB_FILEPATH=str(project / "test.duckdb")),
    )
    assert result.returncode == 0, result.stderr[-3000:]
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
    result = meltano(
        project,
        "run",
        "--full-refresh",
        "--state-id-suffix",
        "select",
        "tap-callcenter",
        "target-jsonl",
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
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
    result = meltano(
        project,
        "run",
        "--full-refresh",
        "--state-id-suffix",
        "maps",
        "tap-callcenter",
        "target-jsonl",
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = jsonl_counts(out)["thulium_connections"]
    assert rows and all(re.fullmatch(r"[0-9a-f]{32}", r["src"]) for r in rows)
    raw = {tuple(i["key"]): i["record"] for i in emu.thulium.expected("connections")}
    sample = rows[0]
    assert sample["src"] == hashlib.md5(raw[(sample["connection_id"],)]["src"].encode()).hexdigest()

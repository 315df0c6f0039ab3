"""The demo behind ./demo.sh: emulator -> Meltano -> DuckDB, full then incremental.

Settings reach the tap only through environment variables (TAP_CALLCENTER_...), as they
would in production. Leaves nothing running. Exits non-zero when what landed is wrong (a
table missing or empty, a late call not picked up), so CI running it catches a broken demo.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DUCKDB_FILE = ROOT / "output" / "demo.duckdb"
DUCKDB_PYTHON = ROOT / ".meltano" / "loaders" / "target-duckdb" / "venv" / "bin" / "python"
STATE_ID = "dev:tap-callcenter-to-target-duckdb"
START, MIDDLE, END = "2024-10-26T00:00:00Z", "2024-10-27T12:00:00Z", "2024-10-28T00:00:00Z"

SHOW_TABLES = """
import duckdb, json, sys
con = duckdb.connect(sys.argv[1], read_only=True)
samples = json.loads(sys.argv[2])
counts = {}
for (table,) in con.execute(
    "select table_name from information_schema.tables where table_schema='main' order by 1"
).fetchall():
    counts[table] = count = con.execute(f'select count(*) from main."{table}"').fetchone()[0]
    print(f"  {table:42} {count:7,d} rows")
for table, columns in samples.items():
    print(f"\\n  {table} (3 newest):")
    rows = con.execute(
        f'select {", ".join(columns)} from main."{table}" order by {columns[1]} desc limit 3'
    ).fetchall()
    for row in rows:
        print("   ", " | ".join(str(v) for v in row))
print("COUNTS " + json.dumps(counts))
"""

FIND_LATE = """
import duckdb, json, sys
con = duckdb.connect(sys.argv[1], read_only=True)
ids = json.loads(sys.argv[2])
rows = con.execute(
    "select connection_id, date from main.thulium_connections where connection_id in "
    f"({', '.join('?' for _ in ids)}) order by date", ids
).fetchall()
print(f"\\n  late calls found by the incremental run (lookback): {len(rows)} of {len(ids)}")
for row in rows:
    print("   ", row[0], row[1])
print("FOUND " + json.dumps(len(rows)))
"""

SAMPLES = {
    "thulium_connections": ["connection_id", "date", "disposition", "duration", "queue_id"],
    "conpeek_cdr_dialog": ["dialog_uuid", "start_time", "end_cause", "talking_time"],
    "ecss_operator_call_history": ["call_ref", "start_time", "direction", "talk_duration"],
}


def start_emulator() -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulator",
            "--port",
            "0",
            "--thulium-connections",
            "6000",
            "--conpeek-dialogs",
            "6000",
            "--conpeek-summaries",
            "1500",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def tap_environment(info: dict) -> dict[str, str]:
    env = {"TAP_CALLCENTER_START_DATE": START}
    for provider, keys in {
        "thulium": ("api_url", "username", "password", "timezone"),
        "conpeek": ("api_url", "api_key"),
        "ecss": ("api_url", "domain", "client_id", "api_key", "phone_number", "ws_url", "timezone"),
    }.items():
        for key in keys:
            env[f"TAP_CALLCENTER_{provider.upper()}_{key.upper()}"] = str(info[provider][key])
    return env


def meltano(binary: str, *args: str, env: dict[str, str], quiet: bool = True) -> None:
    result = subprocess.run(
        [binary, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=quiet,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.stderr.write((result.stdout or "") + (result.stderr or ""))
        raise SystemExit(f"meltano {' '.join(args)} failed")


STREAMS = (
    "conpeek_cdr_dialog",
    "conpeek_voice_campaign_request_summary",
    "ecss_operator_call_history",
    "thulium_connections",
    "thulium_recordings",
)


def duckdb_script(script: str, *args: str) -> str:
    """Run ``script`` with the loader's Python (it has duckdb); print its output but the
    last line, which is ``WORD <json>`` for the caller, and return that JSON."""
    result = subprocess.run(
        [str(DUCKDB_PYTHON), "-c", script, str(DUCKDB_FILE), *args],
        check=True,
        capture_output=True,
        text=True,
    )
    *shown, last = result.stdout.rstrip("\n").split("\n")
    print("\n".join(shown))
    return last.split(" ", 1)[1]


def show(title: str) -> dict[str, int]:
    """Row counts per table (printed, with the newest rows); every stream must have rows."""
    print(f"\n== {title}")
    counts: dict[str, int] = json.loads(duckdb_script(SHOW_TABLES, json.dumps(SAMPLES)))
    empty = [stream for stream in STREAMS if not counts.get(stream)]
    if empty:
        raise SystemExit(f"demo failed: no rows in {', '.join(empty)}")
    return counts


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--meltano", default="meltano")
    binary = parser.parse_args().meltano
    emulator, info = start_emulator()
    try:
        print(
            f"emulator: {info['url']} (Thulium, Conpeek, ECSS; websocket {info['ecss']['ws_url']})"
        )
        env = tap_environment(info)
        print("meltano install tap-callcenter target-duckdb …")
        meltano(binary, "install", "tap-callcenter", "target-duckdb", env=env)
        DUCKDB_FILE.parent.mkdir(exist_ok=True)  # target-duckdb cannot create it
        DUCKDB_FILE.unlink(missing_ok=True)
        meltano(binary, "state", "clear", "--force", STATE_ID, env=env)

        print(f"meltano run tap-callcenter target-duckdb  ({START} .. {MIDDLE})")
        meltano(
            binary,
            "run",
            "tap-callcenter",
            "target-duckdb",
            env={**env, "TAP_CALLCENTER_END_DATE": MIDDLE},
        )
        first = show("after the full sync")

        late = post(
            f"{info['url']}/_emulator/thulium/insert",
            {"n": 5, "from": "2024-10-27T11:15:00Z", "to": "2024-10-27T11:45:00Z"},
        )
        late_ids = [r["connection_id"] for r in late["records"]]
        print(f"\n5 calls that started before the bookmark ({MIDDLE}) arrive late: {late_ids}")
        print(
            f"meltano run tap-callcenter target-duckdb  (incremental, state from Meltano, to {END})"
        )
        meltano(
            binary,
            "run",
            "tap-callcenter",
            "target-duckdb",
            env={**env, "TAP_CALLCENTER_END_DATE": END},
        )
        second = show("after the incremental sync (rows upserted by primary key)")
        found = json.loads(duckdb_script(FIND_LATE, json.dumps(late_ids)))
        if found != len(late_ids) or any(second[s] < first[s] for s in STREAMS):
            raise SystemExit(
                f"demo failed: {found} of {len(late_ids)} late calls landed; rows before "
                f"{first}, after {second}"
            )
        print(f"\nDatabase: {DUCKDB_FILE}  (query it with duckdb; Meltano state id {STATE_ID})")
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)


if __name__ == "__main__":
    main()

"""Demo: start the emulator, run the tap twice (full, then incremental), show results.

Writes Singer messages to output/demo-*.jsonl. Leaves nothing running.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "output"


def start_emulator() -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", "0", "--thulium-connections", "20000"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    return proc, info


def run_tap(config: dict, state: dict | None, out: Path) -> list[dict]:
    OUTPUT.mkdir(exist_ok=True)
    config_path = OUTPUT / "demo-config.json"
    config_path.write_text(json.dumps(config, indent=2))
    args = [sys.executable, "-m", "tap_callcenter.tap", "--config", str(config_path)]
    if state:
        state_path = OUTPUT / "demo-state.json"
        state_path.write_text(json.dumps(state))
        args += ["--state", str(state_path)]
    with out.open("w") as sink:
        subprocess.run(args, stdout=sink, stderr=subprocess.DEVNULL, check=True)
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def summarize(title: str, messages: list[dict]) -> dict | None:
    records = [m for m in messages if m["type"] == "RECORD"]
    states = [m["value"] for m in messages if m["type"] == "STATE"]
    print(f"\n== {title}")
    for stream, count in sorted(Counter(m["stream"] for m in records).items()):
        print(f"  {stream:24} {count:7,d} records")
    samples: dict[str, dict] = {}
    for m in records:
        samples.setdefault(m["stream"], m["record"])
    for stream, record in samples.items():
        shown = {k: record[k] for k in list(record)[:8]}
        print(f"  sample {stream}: {json.dumps(shown, ensure_ascii=False)}")
    last = states[-1] if states else None
    if last:
        for stream, bookmark in last.get("bookmarks", {}).items():
            print(f"  bookmark {stream}: {bookmark.get('replication_key_value')}")
    return last


def main() -> None:
    emulator, info = start_emulator()
    try:
        print(f"emulator listening at {info['url']} (Thulium API {info['thulium']['api_url']})")
        thulium = {k: info["thulium"][k] for k in ("api_url", "username", "password", "timezone")}
        config = {
            "start_date": "2024-03-30T00:00:00Z",
            "end_date": "2024-03-31T12:00:00Z",
            "thulium": thulium,
        }
        state = summarize("full sync", run_tap(config, None, OUTPUT / "demo-full.jsonl"))
        config["end_date"] = "2024-04-01T00:00:00Z"
        summarize(
            "incremental sync from the saved STATE",
            run_tap(config, state, OUTPUT / "demo-incremental.jsonl"),
        )
        print(f"\nSinger output is in {OUTPUT}/demo-*.jsonl")
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)


if __name__ == "__main__":
    main()

"""Output is buffered, and flushed where a target needs it: at every STATE (with every
record before it), and at exit. Read as a target reads: line by line, while the tap runs."""

from __future__ import annotations

import json
import queue
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from singer_sdk.singerlib import RecordMessage, StateMessage

from harness.loopback import Answer, Seen, http_server
from harness.tap import TAP_COMMAND
from tap_callcenter.tap import WholeMessageWriter
from tests.conftest import CollectingStdout

#: The first window's calls (Thulium's wall clock: Europe/Warsaw, UTC+1 in January).
FIRST_WINDOW = [
    {"connection_id": f"c{i}", "date": f"2024-01-10 01:{i:02d}:00", "duration": 5}
    for i in range(20)
]


def test_a_state_reaches_the_target_before_the_tap_waits_on_the_next_window() -> None:
    """The server answers the first window at once and holds the second for 20 s: the
    first STATE, with the records it covers before it, must be readable meanwhile. A
    writer that flushed only at exit (or once a second while records flow) would hold
    it in its buffer for the whole wait."""
    release = threading.Event()

    def answer(seen: Seen) -> Answer:
        first = seen.query.get("date_from", [""])[0].startswith("2024-01-10 01:00")
        if not first:
            release.wait(20)
        body = {"count": len(FIRST_WINDOW) if first else 0, "result": FIRST_WINDOW if first else []}
        return 200, "application/json", json.dumps(body), {}

    with http_server(answer) as url, tempfile.TemporaryDirectory() as tmp:
        config = {
            "start_date": "2024-01-10T00:00:00Z",
            "end_date": "2024-01-10T02:00:00Z",
            "window_days": 1 / 24,
            "max_concurrency": 1,
            "thulium": {"api_url": url, "username": "u", "password": "p-Flush-1"},
        }
        path = Path(tmp) / "config.json"
        path.write_text(json.dumps(config))
        proc = subprocess.Popen(
            [*TAP_COMMAND, "--config", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True
        ).start()
        seen: list[dict] = []
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                try:
                    message = json.loads(lines.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
                seen.append(message)
                if message["type"] == "STATE":
                    break
            still_running = proc.poll() is None
        finally:
            release.set()
            proc.kill()
            proc.wait()
    states = [m for m in seen if m["type"] == "STATE"]
    assert states, f"no STATE within 10 s while the tap waited ({len(seen)} message(s) read)"
    assert still_running
    records = [
        m["record"] for m in seen if m["type"] == "RECORD" and m["stream"] == "thulium_connections"
    ]
    assert {r["connection_id"] for r in records} == {r["connection_id"] for r in FIRST_WINDOW}


class _SmallWrites:
    """An unbuffered stdout that takes at most 7 bytes per write (as a raw pipe may
    when a signal interrupts a large write)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.buffer = self

    def write(self, chunk: bytes | memoryview) -> int:
        taken = bytes(chunk[:7])
        self.data += taken
        return len(taken)

    def flush(self) -> None:
        pass


def test_a_write_that_takes_part_of_the_buffer_loses_nothing(monkeypatch) -> None:
    out = _SmallWrites()
    monkeypatch.setattr("sys.stdout", out)
    writer = WholeMessageWriter()
    records = [{"connection_id": f"c{i}", "note": "ż" * i} for i in range(50)]
    for record in records:
        writer.write_message(RecordMessage(stream="s", record=record))
    writer.write_message(StateMessage(value={"bookmarks": {"s": {"n": 50}}}))
    lines = [json.loads(line) for line in out.data.decode().splitlines()]
    assert [m["record"] for m in lines[:-1]] == records
    assert lines[-1]["value"] == {"bookmarks": {"s": {"n": 50}}}


def test_a_record_is_not_held_back_while_the_tap_waits(monkeypatch) -> None:
    """A slow stream: one record, then nothing (the tap waits on the server). It must
    reach stdout within about a second, without a STATE or another message after it."""
    out = CollectingStdout()
    monkeypatch.setattr("sys.stdout", out)
    writer = WholeMessageWriter()
    writer.write_message(RecordMessage(stream="s", record={"connection_id": "c1"}))
    assert not out.data  # buffered, not written one by one
    waited = time.monotonic()
    while not out.data and time.monotonic() - waited < 10:
        time.sleep(0.05)
    assert [json.loads(line)["record"] for line in out.data.decode().splitlines()] == [
        {"connection_id": "c1"}
    ]

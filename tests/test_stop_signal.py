"""A stop signal ends the tap with 128 + the signal number wherever it lands in the main
thread, with every message on stdout whole. The end-to-end run against a hanging server
is in test_lifecycle; here the signal is sent at the two moments that run hits only by
chance: inside a finalizer (where Python ignores an exception raised by the handler)
and in the middle of a write to stdout."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

#: Builds the real tap (which installs its signal handlers), buffers messages, then
#: sends SIGTERM to itself at the moment named by argv[1] and waits as a run waiting on
#: a server that hangs would. Exits 143 only if the signal ends the process.
SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    from singer_sdk.singerlib import RecordMessage, StateMessage
    from tap_callcenter.tap import TapCallcenter

    moment = sys.argv[1]
    config = {
        "start_date": "2024-01-10T00:00:00Z",
        "thulium": {"api_url": "http://127.0.0.1:9", "username": "u", "password": "p-Stop-1"},
    }
    tap = TapCallcenter(config=config)
    writer = tap.message_writer

    def kill_self():
        os.kill(os.getpid(), signal.SIGTERM)
        busy_until = time.monotonic() + 0.3  # the handler runs here, at the next bytecode,
        while time.monotonic() < busy_until:  # and other threads get their turns
            pass

    class SmallWrites:
        '''stdout that takes 7 bytes per write, and is signalled during the first'''
        def __init__(self):
            self.out, self.buffer, self.calls = sys.__stdout__.buffer, self, 0
        def write(self, chunk):
            self.calls += 1
            taken = self.out.write(bytes(chunk[:7]))
            if self.calls == 1:
                kill_self()
            else:
                time.sleep(0.0005)  # a slow reader: the tap is mostly mid-message
            return taken
        def flush(self):
            self.out.flush()

    class Finalizer:
        def __del__(self):
            kill_self()

    for i in range(30):
        writer.write_message(RecordMessage(stream="s", record={"n": i, "pad": "x" * 50}))
    if moment == "mid-write":  # the run goes on writing while the stop is under way
        sys.stdout = SmallWrites()
        for i in range(30, 3000):
            writer.write_message(StateMessage(value={"bookmarks": {"s": {"n": i - 1}}}))
            writer.write_message(RecordMessage(stream="s", record={"n": i, "pad": "x" * 50}))
    elif moment == "finalizer":
        Finalizer()
    time.sleep(15)
    sys.exit(0)
    """
)


def run_stopped_at(moment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, moment],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_stopped_with_whole_output(run: subprocess.CompletedProcess[str]) -> list[dict]:
    assert run.returncode == 143, run.stderr[-2000:]
    assert "stopped by SIGTERM" in run.stderr
    assert "Traceback" not in run.stderr and "Exception ignored" not in run.stderr
    messages = [json.loads(line) for line in run.stdout.splitlines()]  # each one whole
    records = [m["record"]["n"] for m in messages if m["type"] == "RECORD"]
    assert records == list(range(len(records))), "every record is written once, in order"
    assert len(records) >= 30, "the records buffered when the signal came are written out"
    return messages


def test_a_signal_inside_a_finalizer_still_stops_the_tap() -> None:
    """An exception raised there would be printed as "Exception ignored" and the run
    would carry on (the script would exit 0 after 15 s)."""
    assert_stopped_with_whole_output(run_stopped_at("finalizer"))


def test_a_signal_in_the_middle_of_a_write_waits_for_it_to_end() -> None:
    """The write under way finishes (the STATE and the records before it, each whole,
    once), and the main thread, still writing, writes nothing after the stop's last
    write: stopping in the middle of either would cut a message or write part twice."""
    messages = assert_stopped_with_whole_output(run_stopped_at("mid-write"))
    states = [m["value"]["bookmarks"]["s"]["n"] for m in messages if m["type"] == "STATE"]
    assert states and states[0] == 29, "the STATE being written when the signal came"
    assert len(messages) < 200, "the tap stopped soon after the signal"

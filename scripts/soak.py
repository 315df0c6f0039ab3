"""Soak test: a million Thulium connections through the emulator, with random faults.

Starts the emulator in this process with ``--records`` connections spread over
``--days`` days (in May, no daylight-saving change), turns on random faults
(``random_rate`` of the data requests answered with a 429 + Retry-After, a 503, a
dropped connection, a truncated body or a malformed body), and runs the real tap
(``python -m tap_callcenter``, a subprocess) for ``thulium_connections`` only, as
``--runs`` incremental runs: each syncs to a later ``end_date`` from the previous run's
last STATE, as a scheduler would. A run that fails (retries exhausted) is resumed from
its last STATE, as a scheduler would, up to ``--max-resumes`` times.

The tap's stdout is read line by line and only the primary keys are kept (a set), so
memory stays small on this side. At the end it prints one summary line:

- ``emitted``: distinct connections the tap emitted;
- ``lost``: connections the emulator holds in the range that were never emitted (0);
- ``dup_outside_lookback``: keys emitted again outside what the contract allows (0):
  within one run, or by a later run outside its lookback (``[bookmark - lookback,
  bookmark)``) and outside the one window a run resumed after a failure re-reads;
- ``lookback_reemits`` / ``reread_after_failure``: the allowed repeats, for information;
- wall time, and the peak RSS of the tap process (``VmHWM`` sampled from ``/proc`` every
  0.1 s; the largest over its runs).

Usage (from the repository root, in the project's virtualenv)::

    python scripts/soak.py --records 200000          # a few minutes
    python scripts/soak.py                           # 1,000,000 records
    python scripts/soak.py --fault-rate 0.1 --seed 3 --runs 3 --json soak.json

Exit status 0 when nothing was lost or duplicated outside the lookback, 1 otherwise.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as ``python scripts/soak.py``
    sys.path.insert(0, str(ROOT))

from emulator import Emulator, ThuliumConfig  # noqa: E402
from harness import TAP_COMMAND, discover, select_only, tap_config  # noqa: E402

STREAM = "thulium_connections"
START = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
FAULT_KINDS = ("rate_limit", "unavailable", "drop", "truncate", "malformed")


class _Record(msgspec.Struct):
    """The two fields the soak needs from a connection (the rest is skipped)."""

    connection_id: Any = None
    date: str | None = None


class _Message(msgspec.Struct):
    """A Singer message, decoded only as far as the soak needs."""

    type: str
    stream: str | None = None
    record: _Record | None = None
    value: dict[str, Any] | None = None


_decode = msgspec.json.Decoder(_Message).decode


def iso(instant: dt.datetime) -> str:
    return instant.astimezone(dt.timezone.utc).isoformat()


def parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class RunReport:
    """One run of the tap."""

    end_date: str
    start_bookmark: str | None
    returncode: int
    records: int
    seconds: float
    peak_rss_mb: float
    error: str | None = None


@dataclass
class Totals:
    """What the soak counts across runs."""

    records: int = 0
    emitted: int = 0
    lost: int = 0
    dup_outside_lookback: int = 0
    lookback_reemits: int = 0
    reread_after_failure: int = 0
    resumes: int = 0
    #: A run still failed after ``--max-resumes`` resumes (then records are missing).
    gave_up: bool = False
    faults_applied: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    build_seconds: float = 0.0
    wall_seconds: float = 0.0
    tap_peak_rss_mb: float = 0.0
    runs: list[RunReport] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)


class PeakRss:
    """Samples the high-water RSS (``VmHWM``) of a running process from ``/proc``.

    ``wait4``'s ``ru_maxrss`` cannot be used: Linux counts in it the memory of the
    parent the child was forked from before ``exec`` (here, this process and its
    emulator with a million records). ``VmHWM`` belongs to the tap's own address space;
    the last sample before exit is within ``interval`` of the end of the run."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.path = Path(f"/proc/{pid}/status")
        self.interval = interval
        self.kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> None:
        try:
            text = self.path.read_text()
        except OSError:
            return
        for line in text.splitlines():
            if line.startswith("VmHWM:"):
                self.kib = max(self.kib, int(line.split()[1]))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> float:
        """Stop sampling; the peak in MiB."""
        self.sample()
        self._stop.set()
        self._thread.join(timeout=5)
        return self.kib / 1024


def last_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "| ERROR" in line]
    text = errors[-1].split(" | ", 3)[-1] if errors else (lines[-1] if lines else "")
    return " ".join(text.split())[:300]


class Soak:
    """The emulator, the runs, and the key bookkeeping."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.end = START + dt.timedelta(days=args.days)
        self.lookback = dt.timedelta(minutes=args.lookback_minutes)
        self.window = dt.timedelta(days=args.window_days)
        self.seen: set[Any] = set()
        self.totals = Totals(records=args.records)
        built = time.monotonic()
        self.emu = Emulator(
            seed=args.seed,
            port=0,
            thulium=ThuliumConfig(
                connections=args.records,
                periods=[(iso(START), iso(self.end))],
                timezone="Europe/Warsaw",
            ),
        )
        self.totals.build_seconds = round(time.monotonic() - built, 1)

    def config(self, end: dt.datetime) -> dict[str, Any]:
        return tap_config(
            self.emu,
            "thulium",
            start_date=iso(START),
            end_date=iso(end),
            window_days=self.args.window_days,
            lookback_minutes=self.args.lookback_minutes,
            backoff_factor=0.05,
            backoff_max_wait=2,
            max_tries=self.args.max_tries,
            request_timeout=self.args.request_timeout,
            max_concurrency=self.args.max_concurrency,
        )

    def catalog(self, tmp: Path) -> Path:
        """The tap's catalog with only ``thulium_connections`` selected."""
        out = tmp / "catalog.json"
        out.write_text(json.dumps(select_only(discover(self.config(self.end)), STREAM)))
        return out

    def expected_keys(self) -> set[Any]:
        """Every connection the emulator holds (the sync covers its whole period).

        Read from the provider's compact store: ``expected()`` would render a million
        dicts. Falls back to ``expected()`` if the store's layout changes."""
        conns = getattr(self.emu.thulium, "_conns", None)
        if conns is not None:
            return {c.connection_id for c in conns}
        return {row["key"][0] for row in self.emu.thulium.expected("connections")}

    def run_once(
        self,
        tmp: Path,
        catalog: Path,
        end: dt.datetime,
        state: dict[str, Any] | None,
        previous_failed: bool,
    ) -> tuple[RunReport, dict[str, Any] | None]:
        """One tap run; counts keys as they stream by; returns the report and last STATE."""
        config_path = tmp / "config.json"
        config_path.write_text(json.dumps(self.config(end)))
        args = [*TAP_COMMAND, "--config", str(config_path), "--catalog", str(catalog)]
        bookmark: dt.datetime | None = None
        if state is not None:
            state_path = tmp / "state.json"
            state_path.write_text(json.dumps(state))
            args += ["--state", str(state_path)]
            value = state.get("bookmarks", {}).get(STREAM, {}).get("replication_key_value")
            bookmark = parse(value) if value else None
        err_path = tmp / "stderr.txt"
        run_seen: set[Any] = set()
        last_state = state
        count = 0
        started = time.monotonic()
        with err_path.open("w") as err:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err)
            rss = PeakRss(proc.pid)
            assert proc.stdout is not None
            for line in proc.stdout:
                if not line.strip():
                    continue
                message = _decode(line)
                if message.type == "RECORD" and message.record is not None:
                    if message.stream != STREAM:
                        continue
                    count += 1
                    key = message.record.connection_id
                    if key in run_seen:
                        self._bad(f"{key} twice in one run ({message.record.date})")
                    elif key in self.seen:
                        self._repeat(key, message.record.date, bookmark, previous_failed)
                    run_seen.add(key)
                elif message.type == "STATE" and message.value is not None:
                    last_state = message.value
            proc.stdout.close()
            rss_mb = rss.stop()
            proc.wait()
        self.seen |= run_seen
        report = RunReport(
            end_date=iso(end),
            start_bookmark=iso(bookmark) if bookmark else None,
            returncode=proc.returncode,
            records=count,
            seconds=round(time.monotonic() - started, 1),
            peak_rss_mb=round(rss_mb, 1),
            error=last_error(err_path.read_text()) if proc.returncode else None,
        )
        return report, last_state

    def _bad(self, example: str) -> None:
        self.totals.dup_outside_lookback += 1
        if len(self.totals.examples) < 10:
            self.totals.examples.append(example)

    def _repeat(
        self, key: Any, date: str | None, bookmark: dt.datetime | None, previous_failed: bool
    ) -> None:
        """A key an earlier run emitted: inside the lookback, the window a resumed run
        re-reads, or a contract violation."""
        when = parse(date) if date else None
        # a run resumed without a bookmark re-reads from start_date
        resumed_from = bookmark if bookmark is not None else START
        if when is None:
            self._bad(f"{key} again, without a date")
        elif bookmark is not None and bookmark - self.lookback <= when < bookmark:
            self.totals.lookback_reemits += 1
        elif previous_failed and resumed_from <= when < resumed_from + self.window:
            self.totals.reread_after_failure += 1
        else:
            where = f"bookmark {iso(bookmark)}" if bookmark else "no bookmark"
            self._bad(f"{key} again ({date}), {where}")

    def run(self) -> Totals:
        args = self.args
        started = time.monotonic()
        self.emu.faults.set(
            path_contains="/thulium/api/connections",
            random_rate=args.fault_rate,
            random_seed=args.seed,
            random_kinds=FAULT_KINDS,
            retry_after_seconds=args.retry_after,
        )
        self.emu.start()
        try:
            with tempfile.TemporaryDirectory() as tmp_name:
                tmp = Path(tmp_name)
                catalog = self.catalog(tmp)
                state: dict[str, Any] | None = None
                span = (self.end - START) / args.runs
                for i in range(1, args.runs + 1):
                    end = START + span * i if i < args.runs else self.end
                    failed = False
                    for attempt in range(args.max_resumes + 1):
                        report, state = self.run_once(tmp, catalog, end, state, failed)
                        self.totals.runs.append(report)
                        print(
                            f"  run to {report.end_date}: exit {report.returncode}, "
                            f"{report.records:,} records, {report.seconds} s, "
                            f"tap RSS {report.peak_rss_mb} MB"
                            + (f" — {report.error}" if report.error else ""),
                            file=sys.stderr,
                        )
                        failed = report.returncode != 0
                        if not failed:
                            break
                        if attempt < args.max_resumes:
                            self.totals.resumes += 1
                    if failed:
                        self.totals.gave_up = True
                        break
        finally:
            self.emu.stop()
        totals = self.totals
        expected = self.expected_keys()
        totals.emitted = len(self.seen)
        missing = expected - self.seen
        totals.lost = len(missing)
        totals.examples += [f"lost {key}" for key in sorted(missing, key=str)[:5]]
        totals.faults_applied = dict(self.emu.faults.snapshot()["applied"])
        totals.requests = sum(
            1 for e in self.emu.requests_log if "/thulium/api/connections" in e["path"]
        )
        totals.wall_seconds = round(time.monotonic() - started, 1)
        totals.tap_peak_rss_mb = max((r.peak_rss_mb for r in totals.runs), default=0.0)
        return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Soak the tap with random faults.")
    parser.add_argument("--records", type=int, default=1_000_000, help="connections to serve")
    parser.add_argument("--days", type=int, default=10, help="days the connections spread over")
    parser.add_argument("--fault-rate", type=float, default=0.05, help="share of faulted requests")
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After of a 429 (s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=2, help="incremental runs over the range")
    parser.add_argument("--max-resumes", type=int, default=5, help="resumes of a failed run")
    parser.add_argument("--window-days", type=float, default=1.0)
    parser.add_argument("--lookback-minutes", type=int, default=60)
    parser.add_argument("--max-tries", type=int, default=8)
    parser.add_argument("--request-timeout", type=float, default=10)
    parser.add_argument("--max-concurrency", type=int, default=4)
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.records < 1:
        parser.error("--runs and --records must be positive")

    print(
        f"soak: building {args.records:,} connections over {args.days} days, "
        f"random faults on {args.fault_rate:.0%} of requests …",
        file=sys.stderr,
    )
    totals = Soak(args).run()
    rate = totals.emitted / totals.wall_seconds if totals.wall_seconds else 0.0
    print(
        f"soak: records={totals.records:,} emitted={totals.emitted:,} lost={totals.lost} "
        f"dup_outside_lookback={totals.dup_outside_lookback} "
        f"lookback_reemits={totals.lookback_reemits} "
        f"reread_after_failure={totals.reread_after_failure} "
        f"runs={len(totals.runs)} resumes={totals.resumes}"
        f"{' (gave up: a run still failed)' if totals.gave_up else ''} "
        f"requests={totals.requests:,} "
        f"faults={json.dumps(totals.faults_applied, sort_keys=True)} "
        f"wall={totals.wall_seconds:.1f}s ({rate:,.0f} records/s; emulator built in "
        f"{totals.build_seconds:.0f}s) "
        f"tap_peak_rss={totals.tap_peak_rss_mb:.0f}MB"
    )
    for example in totals.examples:
        print(f"  {example}")
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(totals), indent=2))
    return 0 if totals.lost == 0 and totals.dup_outside_lookback == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

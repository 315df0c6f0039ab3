"""The life of a pipeline: the tap run again and again against a clock that moves.

A stateful property test (hypothesis' ``RuleBasedStateMachine``) drives the real tap as
a subprocess against the emulator of all three APIs under a simulated clock: a call
becomes visible only after it ended plus a delivery delay (at most 45 minutes after its
start), campaign summaries close as time passes, nothing exists in the future. The tap
is told the same "now" (``TAP_CALLCENTER_TEST_NOW``). Between runs the machine moves the
clock (minutes to 45 days, across both daylight-saving edges of Europe/Warsaw, Thulium's
zone, and Europe/Helsinki, ECSS's), changes settings (``start_date`` present, absent or
fractional; ``end_date`` unset, past or future; ``window_days``; ``max_concurrency``;
``lookback_minutes``; the ECSS transport), kills runs with SIGKILL or SIGTERM and resumes
them, and switches a stream to FULL_TABLE for one run. After every step:

- every record visible at a completed run's start whose replication key lies in the
  stream's synced range has been emitted at least once, over the union of runs;
- every campaign summary whose closure was visible then has been emitted closed;
- no record outside the run's range (``start_date`` or bookmark - lookback, to the
  earlier of ``end_date`` and the run's start); no bookmark after its run's start;
- no primary key twice within one run, so repeats across runs lie only in the lookback;
- every RECORD validates against its stream's SCHEMA; a SIGTERM ends with 143 and only
  whole messages.

CI runs a few examples (``PIPELINE_LIFE_EXAMPLES`` / ``PIPELINE_LIFE_STEPS`` raise it;
``scripts/pipeline_soak.py`` runs it long and prints the figures).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
from collections import defaultdict
from dataclasses import dataclass, field

import jsonschema
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from emulator import ConpeekConfig, EcssConfig, Emulator, ThuliumConfig
from harness import (
    TapRun,
    discover,
    emitted_key,
    full_table,
    run_tap,
    run_tap_until_killed,
    tap_config,
)

UTC = dt.timezone.utc
PERIOD = ("2024-02-01T00:00:00Z", "2024-12-20T00:00:00Z")
#: The autumn edge of both zones (EU rule): 02:00-03:00 / 03:00-04:00 local repeat.
AUTUMN_EDGE = dt.datetime(2024, 10, 27, 1, tzinfo=UTC)
#: Clock starts: days before either edge, just before the repeated autumn hour (a
#: scheduled run lands inside it) and before the spring jump, and a quiet day between.
STARTS = (
    "2024-03-29T18:00:00Z",
    "2024-03-31T00:20:00Z",
    "2024-10-25T20:00:00Z",
    "2024-10-27T00:35:00Z",
    "2024-06-10T09:30:00Z",
)
NOW_VARIABLE = "TAP_CALLCENTER_TEST_NOW"


@dataclass(frozen=True)
class Spec:
    provider: str
    api_stream: str
    key_fields: tuple[str, ...]
    replication_key: str
    wall_clock: bool


SPECS = {
    "thulium_connections": Spec("thulium", "connections", ("connection_id",), "date", True),
    "thulium_recordings": Spec(
        "thulium", "recordings", ("connection_id", "filename"), "created_at", True
    ),
    "conpeek_cdr_dialog": Spec("conpeek", "cdr_dialog", ("dialog_uuid",), "start_time", False),
    "conpeek_voice_campaign_request_summary": Spec(
        "conpeek", "voice_campaign_request_summary", ("id",), "created_date", False
    ),
    "ecss_operator_call_history": Spec(
        "ecss", "ecss_operator_call_history", ("call_ref",), "start_time", True
    ),
}
SUMMARIES = "conpeek_voice_campaign_request_summary"


def parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def iso(value: dt.datetime) -> str:
    return value.astimezone(UTC).isoformat()


@dataclass
class Truth:
    """One record as the emulator knows it: key, replication-key value as the tap must
    emit it, when it became visible, and (summaries) its closure."""

    key: tuple
    rk: str
    visible: str
    closed_at: str | None = None
    closed_visible: str | None = None


@dataclass
class Figures:
    """What a life saw (printed by the soak)."""

    runs: int = 0
    completed: int = 0
    killed: int = 0
    terminated: int = 0
    records: int = 0
    checked: int = 0
    closures_checked: int = 0
    clock_days: float = 0.0


FIGURES = Figures()


@dataclass
class Settings:
    start_date: str | None = None
    end_date: str | None = None  # "past" / "future" / None: resolved against now per run
    lookback: int = 60
    window_days: float = 1.0
    concurrency: int = 4
    transport: str = "http"
    full_table: set[str] = field(default_factory=set)


class PipelineLife(RuleBasedStateMachine):
    """One emulator, one tap state, many runs; the model keeps what must hold."""

    def __init__(self) -> None:
        super().__init__()
        self.emu: Emulator | None = None
        self.settings = Settings()
        self.state: dict | None = None
        self.emitted: dict[str, set[tuple]] = defaultdict(set)
        self.closed_seen: dict[object, set[str]] = defaultdict(set)
        self.origin: dict[str, dt.datetime] = {}
        self.truth: dict[str, list[Truth]] = {}
        self.validators: dict[str, jsonschema.protocols.Validator] = {}
        self.last_completed: tuple[dt.datetime, dt.datetime] | None = None
        #: One line per run, shown when an invariant breaks.
        self.history: list[str] = []
        #: Ranges a FULL_TABLE run from a later start_date left unread after a stream's
        #: bookmark: the next incremental runs must read them (checked), and until then
        #: they are not required to be emitted.
        self.owed: dict[str, tuple[dt.datetime, dt.datetime]] = {}

    # ----------------------------------------------------------------- set-up

    @initialize(start=st.sampled_from(STARTS), seed=st.integers(1, 10_000))
    def start_emulator(self, start: str, seed: int) -> None:
        periods = (PERIOD,)
        self.emu = Emulator(
            seed=seed,
            port=0,
            thulium=ThuliumConfig(connections=4000, periods=periods),
            conpeek=ConpeekConfig(dialogs=3000, summaries=2000, periods=periods),
            ecss=EcssConfig(calls=3000, periods=periods, timezone="Europe/Helsinki"),
        )
        self.emu.start()
        self.emu.set_now(start)
        self.truth = self.load_truth()

    def teardown(self) -> None:
        if self.emu is not None:
            self.emu.stop()

    def load_truth(self) -> dict[str, list[Truth]]:
        assert self.emu is not None
        truth: dict[str, list[Truth]] = {}
        for name, spec in SPECS.items():
            rows = self.emu.provider(spec.provider).expected(spec.api_stream)
            truth[name] = [
                Truth(
                    emitted_key(row["key"]),
                    row["expected_fields"][spec.replication_key],
                    row["visible_at"],
                    row.get("closed_at"),
                    row.get("closed_visible_at"),
                )
                for row in rows
            ]
        return truth

    @property
    def now(self) -> dt.datetime:
        assert self.emu is not None and self.emu.now is not None
        return dt.datetime.fromtimestamp(self.emu.now, UTC)

    # ----------------------------------------------------------------- rules

    @rule(minutes=st.one_of(st.integers(1, 240), st.integers(240, 45 * 24 * 60)))
    def advance_clock(self, minutes: int) -> None:
        assert self.emu is not None
        if self.now + dt.timedelta(minutes=minutes) > parse(PERIOD[1]):
            return  # the data ends there
        self.emu.advance(minutes * 60)
        FIGURES.clock_days += minutes / 1440

    @rule(
        start=st.sampled_from([None, "days", "fraction"]),
        end=st.sampled_from([None, None, "past", "future"]),
        lookback=st.sampled_from([60, 90, 180]),
        window_days=st.sampled_from([0.5, 1, 2.5, 0.3]),
        concurrency=st.sampled_from([1, 4, 8]),
        transport=st.sampled_from(["http", "websocket"]),
    )
    def change_settings(
        self,
        start: str | None,
        end: str | None,
        lookback: int,
        window_days: float,
        concurrency: int,
        transport: str,
    ) -> None:
        now = self.now
        if start == "days":
            self.settings.start_date = iso(now - dt.timedelta(days=12))
        elif start == "fraction":
            # half a second after a midnight: with whole-day windows every window ends
            # just after the midnight records the emulator keeps (a whole-second bound)
            midnight = (now - dt.timedelta(days=12)).replace(hour=0, minute=0, second=0)
            self.settings.start_date = midnight.strftime("%Y-%m-%dT%H:%M:%S.500Z")
        else:
            self.settings.start_date = None
        self.settings.end_date = end
        self.settings.lookback = lookback
        self.settings.window_days = window_days
        self.settings.concurrency = concurrency
        self.settings.transport = transport

    @rule(stream=st.sampled_from(sorted(SPECS)))
    def full_table_next_run(self, stream: str) -> None:
        self.settings.full_table.add(stream)

    @rule()
    def run(self) -> None:
        plan = self.plan()
        result = run_tap(plan.config, state=self.state, catalog=plan.catalog, env=plan.env)
        assert result.returncode == 0, result.stderr[-3000:]
        self.check_run(plan, result, completed=True)

    @rule(count=st.integers(2, 5), minutes=st.integers(5, 90))
    def scheduled_runs(self, count: int, minutes: int) -> None:
        """What a schedule does: run, wait a little, run again (late calls arrive in
        between; at an edge the runs straddle the repeated or skipped hour)."""
        for _ in range(count):
            self.advance_clock(minutes)
            self.run()

    @rule(
        days=st.integers(5, 45),
        stream=st.sampled_from([None, *sorted(SPECS)]),
        start=st.sampled_from(["days", "fraction", None]),
    )
    def pause_then_resume(self, days: int, stream: str | None, start: str | None) -> None:
        """A pipeline paused for days, maybe longer than ``start_date`` reaches back,
        resumed (one stream maybe in FULL_TABLE mode for that run)."""
        self.advance_clock(days * 1440)
        self.settings.start_date = None
        if start is not None:
            self.change_settings(start, None, self.settings.lookback, 1, 4, "http")
        if stream is not None:
            self.settings.full_table.add(stream)
        self.run()

    @rule(after=st.integers(1, 12), sig=st.sampled_from([signal.SIGKILL, signal.SIGTERM]))
    def run_and_kill(self, after: int, sig: signal.Signals) -> None:
        plan = self.plan()
        result = run_tap_until_killed(
            plan.config,
            kill_after_states=after,
            state=self.state,
            catalog=plan.catalog,
            sig=sig,
            env=plan.env,
        )
        finished = result.returncode == 0
        if sig == signal.SIGTERM and not finished:
            assert result.returncode == 143, result.stderr[-3000:]
            assert "stopped by SIGTERM" in result.stderr
            FIGURES.terminated += 1
        elif not finished:
            assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
            FIGURES.killed += 1
        self.check_run(plan, result, completed=finished)

    # ----------------------------------------------------------------- one run

    def plan(self) -> RunPlan:
        assert self.emu is not None
        now, s = self.now, self.settings
        end: dt.datetime | None = None
        if s.end_date == "past":
            end = now - dt.timedelta(hours=5)
        elif s.end_date == "future":
            end = now + dt.timedelta(days=2)
        start = parse(s.start_date) if s.start_date else now - dt.timedelta(days=30)
        if end is not None and end <= start:
            end = None
        config = tap_config(
            self.emu,
            lookback_minutes=s.lookback,
            window_days=s.window_days,
            max_concurrency=s.concurrency,
            request_timeout=10,
            max_tries=3,
            backoff_factor=0.05,
            ecss={"transport": s.transport},
        )
        if s.start_date:
            config["start_date"] = s.start_date
        if end is not None:
            config["end_date"] = iso(end)
        full_table, s.full_table = set(s.full_table), set()
        catalog = self.catalog(config, full_table) if full_table else None
        return RunPlan(
            now=now,
            start=start,
            end=min(end, now) if end is not None else now,
            lookback=dt.timedelta(minutes=s.lookback),
            full_table=full_table,
            config=config,
            catalog=catalog,
            env={NOW_VARIABLE: iso(now)},
            state_in=json.loads(json.dumps(self.state or {})),
        )

    @staticmethod
    def catalog(config: dict, streams: set[str]) -> dict:
        return full_table(discover(config), *sorted(streams))

    def check_run(self, plan: RunPlan, result: TapRun, *, completed: bool) -> None:
        bookmarks = {
            name: {k: v for k, v in value.items() if k.endswith(("_value", "bookmark"))}
            for name, value in ((result.last_state or {}).get("bookmarks") or {}).items()
        }
        counts = {name: len(records) for name, records in result.records.items()}
        self.history.append(
            f"now {iso(plan.now)} start {iso(plan.start)} end {iso(plan.end)} "
            f"config { {k: v for k, v in plan.config.items() if not isinstance(v, dict)} } "
            f"full_table {sorted(plan.full_table)} rc {result.returncode} records {counts} "
            f"state out {bookmarks}"
        )
        FIGURES.runs += 1
        FIGURES.completed += completed
        schemas = {m["stream"]: m["schema"] for m in result.messages if m.get("type") == "SCHEMA"}
        for name, schema in schemas.items():
            self.validators.setdefault(name, jsonschema.Draft7Validator(schema))
        per_stream: dict[str, list[dict]] = defaultdict(list)
        for message in result.messages:
            if message.get("type") == "RECORD":
                name, record = message["stream"], message["record"]
                errors = list(self.validators[name].iter_errors(record))
                assert not errors, f"{name}: {errors[0].message} in {record}"
                per_stream[name].append(record)
        for name, records in per_stream.items():
            self.check_records(plan, name, records)
            FIGURES.records += len(records)
        for state in result.states:
            for name, stream_state in (state.get("bookmarks") or {}).items():
                for key in ("replication_key_value", "closed_date_bookmark"):
                    if stream_state.get(key):
                        assert parse(stream_state[key]) <= plan.now, (
                            f"{name}: {key} {stream_state[key]} after the run's start {plan.now}"
                        )
        self.track_owed(plan, result)
        if result.last_state is not None:
            for name in SPECS:
                had = name in (self.state or {}).get("bookmarks", {})
                has = name in result.last_state.get("bookmarks", {})
                if has and not had and name not in self.origin:
                    self.origin[name] = plan.start
            self.state = result.last_state
        if completed:
            self.last_completed = (plan.now, plan.end)

    def track_owed(self, plan: RunPlan, result: TapRun) -> None:
        """A FULL_TABLE run that starts after the bookmark owes the range between them;
        a later incremental run must begin at or before what is still owed."""
        for name in SPECS:
            incoming = plan.state_in.get("bookmarks", {}).get(name, {})
            bookmark = incoming.get("replication_key_value")
            lower = self.lower_bound(plan, name)
            if name in plan.full_table and bookmark and plan.start > parse(bookmark):
                owed_from, owed_to = self.owed.get(name, (parse(bookmark), plan.start))
                self.owed[name] = (owed_from, max(owed_to, plan.start))
                continue
            if name not in self.owed:
                continue
            owed_from, owed_to = self.owed[name]
            assert lower <= owed_from, (
                f"{name}: the range {iso(owed_from)}..{iso(owed_to)} left by FULL_TABLE is "
                f"skipped: this run starts at {iso(lower)}"
            )
            out = ((result.last_state or {}).get("bookmarks") or {}).get(name, {})
            reached = out.get("replication_key_value")
            if reached and parse(reached) >= owed_to:
                del self.owed[name]
            elif reached and parse(reached) > owed_from:
                self.owed[name] = (parse(reached), owed_to)

    def check_records(self, plan: RunPlan, name: str, records: list[dict]) -> None:
        spec = SPECS[name]
        keys = [tuple(r[f] for f in spec.key_fields) for r in records]
        repeated = {k for k in keys if keys.count(k) > 1} if len(set(keys)) < len(keys) else set()
        assert not repeated, f"{name}: emitted twice in one run: {sorted(repeated)[:3]}"
        lower = self.lower_bound(plan, name)
        for record, key in zip(records, keys, strict=True):
            value = record[spec.replication_key]
            if name == SUMMARIES and value is not None and value < iso(lower):
                # the closures pass: a summary created earlier, closed in this run's range
                closed = record.get("closed_date")
                assert closed is not None and closed < iso(plan.end), record
                assert name not in self.origin or value >= iso(self.origin[name]), record
            else:
                assert value is not None and iso(lower) <= value < iso(plan.end), (
                    f"{name}: {value} outside [{iso(lower)}, {iso(plan.end)}) (now {plan.now})"
                )
            self.emitted[name].add(key)
            if name == SUMMARIES and record.get("closed_date"):
                self.closed_seen[key[0]].add(record["closed_date"])

    def lower_bound(self, plan: RunPlan, name: str) -> dt.datetime:
        """Where this run may begin for ``name``: its start (no bookmark, or FULL_TABLE),
        else the incoming bookmark minus the lookback, and an hour more for a wall-clock
        API when that range touches the second occurrence of the repeated hour."""
        stream_state = plan.state_in.get("bookmarks", {}).get(name, {})
        bookmark = stream_state.get("replication_key_value")
        if name in plan.full_table or not bookmark:
            return plan.start
        since = parse(bookmark) - plan.lookback
        touches = since < AUTUMN_EDGE + dt.timedelta(hours=1) and parse(bookmark) > AUTUMN_EDGE
        if SPECS[name].wall_clock and touches:
            since -= dt.timedelta(hours=1)
        return since

    # ----------------------------------------------------------------- invariants

    @invariant()
    def every_visible_record_was_emitted(self) -> None:
        if self.last_completed is None:
            return
        now, end = self.last_completed
        now_iso, end_iso = iso(now), iso(end)
        for name, rows in self.truth.items():
            origin = self.origin.get(name)
            if origin is None:
                continue
            origin_iso = iso(origin)
            # what a FULL_TABLE run left unread, from the reach of the next incremental
            # run (the bookmark minus any lookback, plus a repeated hour)
            owed = ("", "")
            if name in self.owed:
                owed_from, owed_to = self.owed[name]
                owed = (iso(owed_from - dt.timedelta(hours=4)), iso(owed_to))
            missing = [
                row
                for row in rows
                if origin_iso <= row.rk < end_iso
                and row.visible <= now_iso
                and not owed[0] <= row.rk < owed[1]
                and row.key not in self.emitted[name]
            ]
            FIGURES.checked += len(rows)
            assert not missing, (
                f"{name}: {len(missing)} visible record(s) never emitted, e.g. {missing[:2]} "
                f"(origin {origin_iso}, end {end_iso}, now {now_iso}); runs:\n"
                + "\n".join(self.history)
            )

    @invariant()
    def every_visible_closure_was_emitted_closed(self) -> None:
        if self.last_completed is None or SUMMARIES not in self.origin:
            return
        now, end = self.last_completed
        now_iso, end_iso = iso(now), iso(end)
        origin_iso = iso(self.origin[SUMMARIES])
        for row in self.truth[SUMMARIES]:
            if (
                row.closed_at is not None
                and row.closed_at < end_iso
                and row.closed_visible is not None
                and row.closed_visible <= now_iso
                and origin_iso <= row.rk < end_iso
            ):
                FIGURES.closures_checked += 1
                assert row.closed_at in self.closed_seen[row.key[0]], (
                    f"summary {row.key[0]} closed at {row.closed_at} (visible "
                    f"{row.closed_visible}) never emitted closed; now {now_iso}"
                )


@dataclass
class RunPlan:
    now: dt.datetime
    start: dt.datetime
    end: dt.datetime
    lookback: dt.timedelta
    full_table: set[str]
    config: dict
    catalog: dict | None
    env: dict[str, str]
    state_in: dict


#: Lives every CI run plays step by step, besides the random ones: each puts one rule of
#: the README's "A pipeline's life" under load, so breaking that rule fails here for sure.
SCENARIOS: dict[str, tuple[str, list[tuple[str, dict]]]] = {
    "end_date_in_the_future": (
        "2024-10-25T20:00:00Z",
        [
            ("run", {}),
            (
                "change_settings",
                {
                    "start": None,
                    "end": "future",
                    "lookback": 60,
                    "window_days": 1,
                    "concurrency": 4,
                    "transport": "http",
                },
            ),
            ("scheduled_runs", {"count": 3, "minutes": 50}),
        ],
    ),
    "paused_longer_than_start_date_reaches": (
        "2024-06-10T09:30:00Z",
        [
            ("run", {}),
            ("pause_then_resume", {"days": 20, "stream": None, "start": "days"}),
            ("pause_then_resume", {"days": 40, "stream": None, "start": None}),
        ],
    ),
    "full_table_after_a_gap": (
        "2024-06-10T09:30:00Z",
        [
            ("run", {}),
            (
                "pause_then_resume",
                {"days": 20, "stream": "ecss_operator_call_history", "start": "days"},
            ),
            ("pause_then_resume", {"days": 3, "stream": "thulium_connections", "start": "days"}),
            ("scheduled_runs", {"count": 2, "minutes": 30}),
        ],
    ),
    "every_twenty_minutes_through_the_repeated_hour": (
        "2024-10-27T00:00:00Z",
        [
            ("run", {}),
            ("scheduled_runs", {"count": 5, "minutes": 20}),
            ("scheduled_runs", {"count": 3, "minutes": 30}),
        ],
    ),
    "through_the_spring_jump": (
        "2024-03-31T00:20:00Z",
        [("run", {}), ("scheduled_runs", {"count": 4, "minutes": 25})],
    ),
    "fractional_start_on_midnights": (
        "2024-06-10T09:30:00Z",
        [
            (
                "change_settings",
                {
                    "start": "fraction",
                    "end": None,
                    "lookback": 90,
                    "window_days": 1,
                    "concurrency": 1,
                    "transport": "websocket",
                },
            ),
            ("run", {}),
            ("scheduled_runs", {"count": 2, "minutes": 45}),
        ],
    ),
    "killed_and_terminated_mid_run": (
        "2024-10-25T20:00:00Z",
        [
            ("run_and_kill", {"after": 4, "sig": signal.SIGKILL}),
            ("run_and_kill", {"after": 6, "sig": signal.SIGTERM}),
            ("advance_clock", {"minutes": 40}),
            ("run_and_kill", {"after": 9, "sig": signal.SIGKILL}),
            ("run", {}),
            ("advance_clock", {"minutes": 3000}),
            ("run_and_kill", {"after": 3, "sig": signal.SIGTERM}),
            ("run", {}),
        ],
    ),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenario(scenario: str) -> None:
    """One life, step by step, with every invariant checked after each step."""
    start, steps = SCENARIOS[scenario]
    life = PipelineLife()
    try:
        life.start_emulator(start=start, seed=7)
        for step, arguments in steps:
            getattr(life, step)(**arguments)
            life.every_visible_record_was_emitted()
            life.every_visible_closure_was_emitted_closed()
        assert FIGURES.runs
    finally:
        life.teardown()


#: CI: a few derandomized examples; the soak raises these.
EXAMPLES = int(os.environ.get("PIPELINE_LIFE_EXAMPLES", "12"))
STEPS = int(os.environ.get("PIPELINE_LIFE_STEPS", "15"))

PipelineLife.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    derandomize=os.environ.get("PIPELINE_LIFE_RANDOM") != "1",
    suppress_health_check=list(HealthCheck),
    database=None,
    # no shrinking: every step is a subprocess, so shrinking takes far longer than the
    # run, and a failure already prints the whole history of runs
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)

TestPipelineLife = pytest.mark.timeout(1800)(PipelineLife.TestCase)

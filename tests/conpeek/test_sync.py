"""End-to-end Conpeek syncs against the emulator."""

from __future__ import annotations

import pytest

from emulator import ConpeekConfig, Emulator
from harness import expected_in_range, run_tap, tap_config
from tests.conftest import AUTUMN, FAST_HTTP, SPRING, assert_stream_matches

pytestmark = pytest.mark.emulator(seed=11, conpeek=ConpeekConfig(dialogs=4000, summaries=1200))

DIALOGS = ("conpeek_cdr_dialog", "cdr_dialog", "start_time", ("dialog_uuid",))
SUMMARIES = (
    "conpeek_voice_campaign_request_summary",
    "voice_campaign_request_summary",
    "created_date",
    ("id",),
)


@pytest.fixture
def emu(emulator: Emulator) -> Emulator:
    """This module's emulator (``pytestmark``)."""
    return emulator


def conpeek_config(emu, start: str, end: str, **overrides) -> dict:
    settings = {"start_date": start, "end_date": end, "window_days": 0.5, **FAST_HTTP}
    return tap_config(emu, "conpeek", **{**settings, **overrides})


def expected(emu, spec, start, end) -> dict:
    _, api_stream, field, _ = spec
    return expected_in_range(emu.conpeek.expected(api_stream), field, start, end)


@pytest.mark.parametrize("period", [SPRING, AUTUMN], ids=["spring", "autumn"])
def test_full_sync_is_complete_without_duplicates(emu, period) -> None:
    start, end = period
    run = run_tap(conpeek_config(emu, start, end, window_days=0.3))
    for spec in (DIALOGS, SUMMARIES):
        assert_stream_matches(run, spec[0], expected(emu, spec, start, end), spec[3])
    dialogs = run.records["conpeek_cdr_dialog"]
    assert all(isinstance(d["talking_time"], int) for d in dialogs)
    assert any(d["answer_time"] is None for d in dialogs)
    assert any("sip_call_id" in d for d in dialogs), "an undocumented field was dropped"


def test_server_that_caps_limit_below_the_request_loses_nothing(emu) -> None:
    # The cap is read from the provider on every request (its config was copied at
    # construction: setting ``emu.conpeek.config`` here would change nothing).
    emu.conpeek.max_limit_dialogs = 120
    emu.conpeek.max_limit_summaries = 30
    start, end = SPRING
    run = run_tap(conpeek_config(emu, start, end, window_days=1))
    for spec in (DIALOGS, SUMMARIES):
        want = expected(emu, spec, start, end)
        assert_stream_matches(run, spec[0], want, spec[3])
        # the premise: the server really cut pages (500 or 100 asked), so short pages
        # that were not the last came back, and paging went on past them
        cap = 120 if spec is DIALOGS else 30
        requests = [e for e in emu.requests_log if e["path"].endswith("/" + spec[1])]
        assert requests and all(int(e["query"]["limit"]) > cap for e in requests)
        assert len(requests) >= len(want) / cap, (len(requests), len(want))


def test_records_inserted_while_paging_are_not_duplicated(emu) -> None:
    emu.conpeek.insert_while_paging = 2
    start, end = SPRING
    before = {tuple(i["key"]) for i in emu.conpeek.expected("cdr_dialog")}
    run = run_tap(conpeek_config(emu, start, end, window_days=1))
    assert run.returncode == 0, run.stderr[-2000:]
    keys = [r["dialog_uuid"] for r in run.records["conpeek_cdr_dialog"]]
    assert len(keys) == len(set(keys))
    want = {k for k in expected(emu, DIALOGS, start, end) if k in before}
    assert want <= {(k,) for k in keys}


def test_incremental_run_picks_up_late_dialogs_and_closures(emu) -> None:
    start, end = AUTUMN
    middle = "2024-10-27T00:00:00+00:00"
    first = run_tap(conpeek_config(emu, start, middle))
    assert first.returncode == 0, first.stderr[-2000:]
    state = first.last_state
    summary_state = state["bookmarks"]["conpeek_voice_campaign_request_summary"]
    assert summary_state["replication_key_value"] == middle
    assert summary_state["closed_date_bookmark"] == middle

    late = emu.conpeek.insert_dialogs(
        3, at_utc_range=("2024-10-26T23:20:00Z", "2024-10-26T23:40:00Z")
    )
    open_before = [
        i
        for i in emu.conpeek.expected("voice_campaign_request_summary")
        if i["record"]["state"] == "OPEN"
        and i["expected_fields"]["created_date"] < "2024-10-26T20:00"
        and i["expected_fields"]["created_date"] >= start
    ]
    assert open_before
    # summaries created in the first run's range, still OPEN then, close after it
    closed = emu.conpeek.close_summaries(
        3, at_utc="2024-10-27T06:00:00Z", ids=[i["key"][0] for i in open_before[:3]]
    )
    assert len(closed) == 3
    second = run_tap(conpeek_config(emu, start, end), state=state)
    assert second.returncode == 0, second.stderr[-2000:]
    dialog_ids = {r["dialog_uuid"] for r in second.records["conpeek_cdr_dialog"]}
    assert {d["dialog_uuid"] for d in late} <= dialog_ids
    summaries = {r["id"]: r for r in second.records["conpeek_voice_campaign_request_summary"]}
    for summary_id in map(str, closed):  # ids are text in the tap's records
        assert summaries[summary_id]["state"] == "CLOSED"
        assert summaries[summary_id]["closed_date"] == "2024-10-27T06:00:00+00:00"
    # no summary emitted twice in the run
    ids = [r["id"] for r in second.records["conpeek_voice_campaign_request_summary"]]
    assert len(ids) == len(set(ids))


def test_closures_can_be_switched_off(emu) -> None:
    """Off means no closure pass at all: no request filters on ``closed_date``, no
    closure bookmark, and a summary closed since the last run is not re-emitted (the
    same incremental run with closures on does re-emit it, so the setting decides)."""
    start, end = AUTUMN
    middle = "2024-10-27T00:00:00+00:00"
    config = conpeek_config(emu, start, middle)
    config["conpeek"]["sync_closures"] = False
    first = run_tap(config)
    assert first.returncode == 0, first.stderr[-2000:]
    open_before = [
        i["key"][0]
        for i in emu.conpeek.expected("voice_campaign_request_summary")
        if i["record"]["state"] == "OPEN"
        and start <= i["expected_fields"]["created_date"] < "2024-10-26T20:00"
    ]
    closed = emu.conpeek.close_summaries(3, at_utc="2024-10-27T06:00:00Z", ids=open_before[:3])
    assert len(closed) == 3

    def summaries_run(sync_closures: bool):
        config = conpeek_config(emu, start, end)
        config["conpeek"]["sync_closures"] = sync_closures
        before = len(emu.requests_log)
        run = run_tap(config, state=first.last_state)
        assert run.returncode == 0, run.stderr[-2000:]
        filters = [
            e["query"].get("filter", "")
            for e in emu.requests_log[before:]
            if e["path"].endswith("/voice_campaign_request_summary")
        ]
        ids = {r["id"] for r in run.records["conpeek_voice_campaign_request_summary"]}
        return run, filters, ids

    off, filters, ids = summaries_run(False)
    assert filters and not [f for f in filters if "closed_date" in f], filters
    assert "closed_date_bookmark" not in off.last_state["bookmarks"][SUMMARIES[0]]
    assert not {str(c) for c in closed} & ids, "closures were synced although switched off"
    # everything created in the incremental range is still there
    lookback_start = "2024-10-26T23:00:00+00:00"
    want = {k[0] for k in expected(emu, SUMMARIES, lookback_start, end)}
    assert want and want == ids

    _, filters, ids = summaries_run(True)
    assert [f for f in filters if "closed_date" in f]
    assert {str(c) for c in closed} <= ids


def test_wrong_key_is_a_clear_error(emu) -> None:
    config = conpeek_config(emu, *SPRING)
    config["conpeek"]["api_key"] = "Wrong-Key-Value-99"
    run = run_tap(config)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "Wrong-Key-Value-99" not in run.stdout + run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert (
        "conpeek / conpeek_cdr_dialog" in last and "401" in last and "/conpeek/cdr_dialog" in last
    )
    assert "conpeek.api_key" in last


def test_a_400_reports_the_api_message_and_the_filter(emu) -> None:
    # a window start before 1970 cannot be written in the API's format by the server's rules
    config = conpeek_config(emu, "2024-03-30T00:00:00Z", "2024-03-30T06:00:00Z")
    run = run_tap(
        {**config, "start_date": "0999-01-01T00:00:00Z", "end_date": "0999-01-02T00:00:00Z"}
    )
    last = run.stderr.strip().splitlines()[-1]
    assert run.returncode == 1, run.stderr[-2000:]
    assert "HTTP 400" in last and "filter sent" in last and "start_time" in last

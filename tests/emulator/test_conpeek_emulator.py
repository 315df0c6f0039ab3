"""The Conpeek emulator behaves like the documented API, over real HTTP on loopback."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator import ConpeekConfig, Emulator, ThuliumConfig
from emulator.conpeek import DEFAULT_API_KEY

DIALOGS = "cdr_dialog"
SUMMARIES = "voice_campaign_request_summary"
PRIMARY = {DIALOGS: "start_time", SUMMARIES: "created_date"}
KEY = {DIALOGS: "dialog_uuid", SUMMARIES: "id"}
ROOT = Path(__file__).resolve().parents[2]
N_DIALOGS = 3000
N_SUMMARIES = 700
SMALL_THULIUM = ThuliumConfig(connections=10)


def make_emu(seed: int = 3, **conpeek: Any) -> Emulator:
    cfg = ConpeekConfig(**{"dialogs": 400, "summaries": 200, **conpeek})
    return Emulator(seed=seed, conpeek=cfg, thulium=SMALL_THULIUM)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    cfg = ConpeekConfig(dialogs=N_DIALOGS, summaries=N_SUMMARIES)
    with Emulator(seed=11, conpeek=cfg, thulium=SMALL_THULIUM) as server:
        yield server


@pytest.fixture(autouse=True)
def _clean_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "emu" in request.fixturenames:
        request.getfixturevalue("emu").faults.reset()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.headers["Authorization"] = DEFAULT_API_KEY
        yield s


def flt(*items: dict[str, Any]) -> str:
    return json.dumps(list(items))


def window(prop: str, start: str, end: str) -> list[dict[str, Any]]:
    """The filter a tap sends for one window [start, end)."""
    return [
        {"property": prop, "operator": "gte", "value": start},
        {"property": prop, "operator": "lt", "value": end},
    ]


def get(
    s: requests.Session, emu: Emulator, stream: str, filters: list | None = None, **params: Any
) -> requests.Response:
    if filters is not None:
        params["filter"] = json.dumps(filters)
    return s.get(f"{emu.conpeek_api_url}/{stream}", params=params, timeout=10)


def fetch_all(
    s: requests.Session, emu: Emulator, stream: str, filters: list | None = None, limit: int = 500
) -> list[dict]:
    """Page by offset the way a client must: a page shorter than the limit asked for is
    NOT the end (the server may clamp the limit); only an empty page is."""
    out: list[dict] = []
    while True:
        r = get(s, emu, stream, filters, limit=limit, offset=len(out))
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        if not data:
            return out
        out.extend(data)


def expected_records(emu: Emulator, stream: str) -> list[dict]:
    return [row["record"] for row in emu.conpeek.expected(stream)]


# -- connection, auth ---------------------------------------------------------------------


def test_accessors_and_describe(emu: Emulator) -> None:
    assert emu.conpeek_api_url == emu.url + "/conpeek"
    assert emu.api_url("conpeek") == emu.conpeek_api_url
    assert emu.conpeek is emu.provider("conpeek")
    assert emu.describe()["conpeek"] == {
        "api_url": emu.url + "/conpeek",
        "api_key": DEFAULT_API_KEY,
    }


def test_raw_key_without_scheme_is_accepted(emu: Emulator) -> None:
    r = requests.get(
        f"{emu.conpeek_api_url}/{DIALOGS}",
        headers={"Authorization": DEFAULT_API_KEY},
        params={"limit": 1},
        timeout=5,
    )
    assert r.status_code == 200
    assert len(r.json()["data"]) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": f"Bearer {DEFAULT_API_KEY}"},
        {"Authorization": "cpk-wrong"},
        {"X-Api-Key": DEFAULT_API_KEY},
    ],
)
@pytest.mark.parametrize("stream", [DIALOGS, SUMMARIES])
def test_missing_or_wrong_key_answers_401(emu: Emulator, headers, stream) -> None:
    r = requests.get(f"{emu.conpeek_api_url}/{stream}", headers=headers, timeout=5)
    assert r.status_code == 401
    body = r.json()
    assert body["status"] == 401
    assert "Unauthorized" in body["message"]
    assert DEFAULT_API_KEY not in r.text


def test_api_key_is_configurable() -> None:
    with make_emu(api_key="other-key") as emu:
        assert emu.describe()["conpeek"]["api_key"] == "other-key"
        url = f"{emu.conpeek_api_url}/{SUMMARIES}"
        assert requests.get(url, headers={"Authorization": "other-key"}, timeout=5).ok
        bad = requests.get(url, headers={"Authorization": DEFAULT_API_KEY}, timeout=5)
        assert bad.status_code == 401


def test_unknown_path_answers_404_with_conpeek_body(emu, session) -> None:
    r = session.get(f"{emu.conpeek_api_url}/cdr_dialogs", timeout=5)
    assert r.status_code == 404
    assert r.json()["status"] == 404


# -- parameters and filter parsing ----------------------------------------------------------

DATE = "2024-03-30 10:00:00"


@pytest.mark.parametrize(
    ("stream", "raw", "needle"),
    [
        (DIALOGS, "not json", "not valid JSON"),
        (DIALOGS, "", "not valid JSON"),
        (DIALOGS, '{"property": "start_time", "operator": "gte", "value": "x"}', "JSON list"),
        (DIALOGS, "null", "JSON list"),
        (DIALOGS, '["start_time"]', "item 0 is not an object"),
        (DIALOGS, flt({"operator": "gte", "value": DATE}), "has no 'property'"),
        (DIALOGS, flt({"property": "start_time", "operator": "gte"}), "has no 'value'"),
        (DIALOGS, flt({"property": "begin", "operator": "gte", "value": DATE}), "unknown property"),
        (DIALOGS, flt({"property": "created_date", "operator": "gte", "value": DATE}), "unknown"),
        (SUMMARIES, flt({"property": "start_time", "operator": "gte", "value": DATE}), "unknown"),
        (DIALOGS, flt({"property": "start_time", "operator": "eq", "value": DATE}), "not allowed"),
        (DIALOGS, flt({"property": "start_time", "operator": "ge", "value": DATE}), "not allowed"),
        (DIALOGS, flt({"property": "talking_time", "operator": "in", "value": 1}), "not allowed"),
        (DIALOGS, flt({"property": "start_time", "value": DATE}), "requires an operator"),
        (DIALOGS, flt({"property": "start_time", "op": "gte", "value": DATE}), "unknown key"),
        (
            DIALOGS,
            flt({"property": "start_time", "operator": "gte", "value": "2024-03-30T10:00:00"}),
            "YYYY-MM-DD HH:mm:ss",
        ),
        (
            DIALOGS,
            flt({"property": "start_time", "operator": "gte", "value": "2024-03-30"}),
            "YYYY-MM-DD HH:mm:ss",
        ),
        (
            DIALOGS,
            flt({"property": "hangup_time", "operator": "lt", "value": "2024-03-30 10:00"}),
            "YYYY-MM-DD HH:mm:ss",
        ),
        (
            DIALOGS,
            flt({"property": "start_time", "operator": "gte", "value": 1711792800}),
            "YYYY-MM-DD HH:mm:ss",
        ),
        (
            DIALOGS,
            flt({"property": "start_time", "operator": "gte", "value": "2024-02-30 10:00:00"}),
            "not a valid date",
        ),
        (
            SUMMARIES,
            flt({"property": "closed_date", "operator": "gt", "value": "2024-03-30 10:00:00Z"}),
            "YYYY-MM-DD HH:mm:ss",
        ),
        (DIALOGS, flt({"property": "talking_time", "operator": "gt", "value": "60"}), "integer"),
        (DIALOGS, flt({"property": "project_id_list", "value": 11}), "list of integers"),
        (DIALOGS, flt({"property": "project_id_list", "value": ["11"]}), "list of integers"),
        (DIALOGS, flt({"property": "number_list", "value": [48223071234]}), "list of strings"),
        (SUMMARIES, flt({"property": "contact_number_list", "value": "4822"}), "list of strings"),
    ],
)
def test_bad_filter_answers_400_naming_the_problem(emu, session, stream, raw, needle) -> None:
    r = session.get(f"{emu.conpeek_api_url}/{stream}", params={"filter": raw}, timeout=5)
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) == {"status", "message"}
    assert body["status"] == 400
    assert needle in body["message"]


def test_unknown_property_message_lists_the_allowed_ones(emu, session) -> None:
    r = get(session, emu, DIALOGS, [{"property": "begin", "operator": "gte", "value": DATE}])
    message = r.json()["message"]
    assert "'begin'" in message or '"begin"' in message
    assert "start_time" in message and "hangup_time" in message


@pytest.mark.parametrize(
    "params", [{"limit": "abc"}, {"limit": "0"}, {"limit": "-5"}, {"offset": "-1"}, {"offset": "x"}]
)
def test_bad_limit_or_offset_answers_400(emu, session, params) -> None:
    r = session.get(f"{emu.conpeek_api_url}/{DIALOGS}", params=params, timeout=5)
    assert r.status_code == 400
    name = next(iter(params))
    assert name in r.json()["message"]


def test_empty_filter_list_means_no_filter(emu, session) -> None:
    assert (
        get(session, emu, SUMMARIES, [], limit=5).json()
        == get(session, emu, SUMMARIES, limit=5).json()
    )


# -- paging, order, limits --------------------------------------------------------------------


@pytest.mark.parametrize("stream", [DIALOGS, SUMMARIES])
def test_body_is_only_data_no_total(emu, session, stream) -> None:
    body = get(session, emu, stream, limit=3).json()
    assert set(body) == {"data"}
    assert len(body["data"]) == 3


@pytest.mark.parametrize(("stream", "default"), [(DIALOGS, 500), (SUMMARIES, 100)])
def test_default_limit_and_silent_clamp(emu, session, stream, default) -> None:
    assert len(get(session, emu, stream).json()["data"]) == default
    assert len(get(session, emu, stream, limit=5000).json()["data"]) == default
    assert len(get(session, emu, stream, limit=7).json()["data"]) == 7


@pytest.mark.parametrize("stream", [DIALOGS, SUMMARIES])
def test_ascending_order_ties_by_key_and_paging_returns_each_record_once(
    emu, session, stream
) -> None:
    got = fetch_all(session, emu, stream)
    keys = [r[KEY[stream]] for r in got]
    assert len(keys) == len(set(keys))
    assert got == expected_records(emu, stream)
    sort_key = [(r[PRIMARY[stream]], r[KEY[stream]]) for r in got]
    assert sort_key == sorted(sort_key)
    counts = Counter(r[PRIMARY[stream]] for r in got)
    assert max(counts.values()) >= 2  # ties exist (dialer bursts, campaign uploads, midnights)


def test_clamped_limit_does_not_end_paging_early() -> None:
    with make_emu(dialogs=1000, max_limit_dialogs=120) as emu, requests.Session() as s:
        s.headers["Authorization"] = DEFAULT_API_KEY
        first = get(s, emu, DIALOGS, limit=500).json()["data"]
        assert len(first) == 120  # shorter than asked, yet not the last page
        got = fetch_all(s, emu, DIALOGS, limit=500)
        assert len(got) == 1000
        assert len({r["dialog_uuid"] for r in got}) == 1000
        # The knob is live.
        emu.conpeek.max_limit_dialogs = 30
        assert len(get(s, emu, DIALOGS, limit=500).json()["data"]) == 30
        r = requests.post(
            f"{emu.url}/_emulator/conpeek/settings", json={"max_limit_summaries": 10}, timeout=5
        )
        assert r.json()["max_limit_summaries"] == 10
        assert len(get(s, emu, SUMMARIES).json()["data"]) == 10


def test_offset_past_the_end_is_an_empty_page(emu, session) -> None:
    assert get(session, emu, SUMMARIES, offset=10**6).json() == {"data": []}


# -- date windows -----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [DIALOGS, SUMMARIES])
def test_gte_and_lt_combine_into_a_half_open_window(emu, session, stream) -> None:
    prop = PRIMARY[stream]
    days = ["2024-03-30", "2024-03-31", "2024-04-01"]
    pieces = []
    for a, b in itertools.pairwise(days):
        got = fetch_all(session, emu, stream, window(prop, f"{a} 00:00:00", f"{b} 00:00:00"))
        assert all(f"{a} 00:00:00" <= r[prop] < f"{b} 00:00:00" for r in got)
        pieces.append(got)
    # The midnight record is in the day it starts, the one a second before in the day before.
    assert any(r[prop] == "2024-03-31 00:00:00" for r in pieces[1])
    assert any(r[prop] == "2024-03-30 23:59:59" for r in pieces[0])
    everything = [r for r in expected_records(emu, stream) if r[prop] < "2024-04-01 00:00:00"]
    assert pieces[0] + pieces[1] == everything


@pytest.mark.parametrize(
    ("op", "check"),
    [
        ("gt", lambda v, x: v > x),
        ("gte", lambda v, x: v >= x),
        ("lt", lambda v, x: v < x),
        ("lte", lambda v, x: v <= x),
    ],
)
def test_each_date_operator(emu, session, op, check) -> None:
    pivot = "2024-03-31 00:00:00"
    got = fetch_all(
        session, emu, DIALOGS, [{"property": "start_time", "operator": op, "value": pivot}]
    )
    want = [r for r in expected_records(emu, DIALOGS) if check(r["start_time"], pivot)]
    assert got == want


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    start=st.integers(min_value=0, max_value=4 * 86400),
    span=st.integers(min_value=0, max_value=8 * 3600),
    stream=st.sampled_from([DIALOGS, SUMMARIES]),
)
def test_any_window_matches_the_expected_records(emu, start, span, stream) -> None:
    base = dt.datetime(2024, 3, 30)
    a = (base + dt.timedelta(seconds=start)).strftime("%Y-%m-%d %H:%M:%S")
    b = (base + dt.timedelta(seconds=start + span)).strftime("%Y-%m-%d %H:%M:%S")
    prop = PRIMARY[stream]
    with requests.Session() as s:
        s.headers["Authorization"] = DEFAULT_API_KEY
        got = fetch_all(s, emu, stream, window(prop, a, b))
    assert got == [r for r in expected_records(emu, stream) if a <= r[prop] < b]


# -- other filters ---------------------------------------------------------------------------


def _dialog_filters(records: list[dict]) -> list[tuple[dict, Any]]:
    number = records[5]["caller_number"]
    noon = "2024-03-31 12:00:00"
    six = "2024-03-30 06:00:00"
    return [
        (
            {"property": "number_list", "value": [number]},
            lambda r: number in (r["caller_number"], r["callee_number"]),
        ),
        (
            {"property": "project_id_list", "value": [11, 27]},
            lambda r: r["project_id"] in (11, 27),
        ),
        (
            {"property": "dialog_type_list", "value": ["BOT", "SYSTEM"]},
            lambda r: r["dialog_type"] in ("BOT", "SYSTEM"),
        ),
        (
            {"property": "business_direction", "value": "OUTBOUND"},
            lambda r: r["business_direction"] == "OUTBOUND",
        ),
        (
            {"property": "talking_time", "operator": "gt", "value": 60000},
            lambda r: r["talking_time"] > 60000,
        ),
        ({"property": "talking_time", "value": 0}, lambda r: r["talking_time"] == 0),
        (
            {"property": "talking_time", "operator": "lte", "value": 5000},
            lambda r: r["talking_time"] <= 5000,
        ),
        (
            {"property": "tenant_user_id_list", "value": [101, 102]},
            lambda r: r["tenant_user_id"] in (101, 102),
        ),
        (
            {"property": "custom_tag_id_list", "value": [12]},
            lambda r: 12 in r["custom_tag_id_list"],
        ),
        (
            {"property": "call_request_agent_id_list", "value": ["dialer-02"]},
            lambda r: r["call_request_agent_id"] == "dialer-02",
        ),
        (
            {"property": "hangup_time", "operator": "gte", "value": noon},
            lambda r: r["hangup_time"] >= noon,
        ),
        (
            {"property": "hangup_time", "operator": "lt", "value": six},
            lambda r: r["hangup_time"] < six,
        ),
    ]


def test_dialog_filters_select_the_documented_records(emu, session) -> None:
    records = expected_records(emu, DIALOGS)
    for item, pred in _dialog_filters(records):
        want = [r for r in records if pred(r)]
        assert want, item
        assert fetch_all(session, emu, DIALOGS, [item]) == want, item


def test_summary_filters_select_the_documented_records(emu, session) -> None:
    records = expected_records(emu, SUMMARIES)
    contact = records[3]["contact_number"]
    campaign = records[4]["voice_campaign_id"]
    case = records[9]["case_id"]
    april, march31 = "2024-04-01 00:00:00", "2024-03-31 00:00:00"
    cases = [
        (
            {"property": "contact_number_list", "value": [contact]},
            lambda r: r["contact_number"] == contact,
        ),
        (
            {"property": "contact_number", "value": contact},
            lambda r: r["contact_number"] == contact,
        ),
        (
            {"property": "voice_campaign_id_list", "value": [campaign]},
            lambda r: r["voice_campaign_id"] == campaign,
        ),
        ({"property": "project_id_list", "value": [40]}, lambda r: r["project_id"] == 40),
        ({"property": "call_request_id_list", "value": [case]}, lambda r: r["case_id"] == case),
        (
            {"property": "closed_date", "operator": "gte", "value": april},
            lambda r: (r["closed_date"] or "") >= april,
        ),
        (
            {"property": "closed_date", "operator": "lt", "value": march31},
            lambda r: r["closed_date"] is not None and r["closed_date"] < march31,
        ),
    ]
    for item, pred in cases:
        want = [r for r in records if pred(r)]
        assert want, item
        assert fetch_all(session, emu, SUMMARIES, [item]) == want, item


def test_several_filters_combine_with_and(emu, session) -> None:
    filters = [
        *window("start_time", "2024-03-30 06:00:00", "2024-03-31 18:00:00"),
        {"property": "dialog_type_list", "value": ["CONSULTANT"]},
        {"property": "talking_time", "operator": "gte", "value": 30000},
    ]
    want = [
        r
        for r in expected_records(emu, DIALOGS)
        if "2024-03-30 06:00:00" <= r["start_time"] < "2024-03-31 18:00:00"
        and r["dialog_type"] == "CONSULTANT"
        and r["talking_time"] >= 30000
    ]
    assert want
    assert fetch_all(session, emu, DIALOGS, filters, limit=17) == want


# -- records ---------------------------------------------------------------------------------

DIALOG_FIELDS = {
    "dialog_uuid", "call_uuid", "dialog_type", "direction", "business_direction",
    "caller_number", "callee_number", "caller_display", "callee_display", "start_time",
    "answer_time", "hangup_time", "ringing_time", "talking_time", "holding_time", "end_cause",
    "hangup_side", "project_id", "tenant_user_id", "custom_tag_id_list", "operator_call_id",
    "call_request_agent_id", "machine_detected", "recording_url",
}  # fmt: skip
SUMMARY_FIELDS = {
    "id", "name", "contact_number", "case_id", "state", "close_reason", "project_id",
    "voice_campaign_id", "created_date", "closed_date", "tries", "max_tries", "last_try_date",
}  # fmt: skip


def test_dialog_records(emu) -> None:
    rows = emu.conpeek.expected(DIALOGS)
    extra = 0
    for row in rows:
        r = row["record"]
        assert set(r) >= DIALOG_FIELDS
        extra += "sip_call_id" in r
        assert set(r) - DIALOG_FIELDS <= {"sip_call_id"}
        assert str(uuid.UUID(r["dialog_uuid"])) == r["dialog_uuid"]
        assert row["key"] == (r["dialog_uuid"],)
        assert r["direction"] in ("IN", "OUT")
        assert r["business_direction"] in ("INBOUND", "OUTBOUND")
        assert r["hangup_side"] in ("CALLER", "CALLEE", "SYSTEM")
        for name in ("ringing_time", "talking_time", "holding_time", "project_id"):
            assert isinstance(r[name], int)
        assert (r["answer_time"] is None) == (r["talking_time"] == 0)
        start = dt.datetime.strptime(r["start_time"], "%Y-%m-%d %H:%M:%S")
        hangup = dt.datetime.strptime(r["hangup_time"], "%Y-%m-%d %H:%M:%S")
        total_ms = r["ringing_time"] + r["talking_time"] + r["holding_time"]
        assert (hangup - start).total_seconds() == total_ms // 1000  # durations in ms
        fields = row["expected_fields"]
        assert fields["start_time"] == start.replace(tzinfo=dt.timezone.utc).isoformat()
        assert fields["start_time"].endswith("+00:00")
        assert fields["answer_time"] is None or fields["answer_time"].endswith("+00:00")
        assert row["expected_utc"] == fields["start_time"]
    assert 0 < extra < len(rows)
    types = Counter(row["record"]["dialog_type"] for row in rows)
    assert {"CONSULTANT", "EXTERNAL", "BOT", "TENANT_USER", "SYSTEM"} <= set(types)
    calls = Counter(row["record"]["call_uuid"] for row in rows)
    assert max(calls.values()) >= 2  # legs of one call share its call_uuid
    causes = {row["record"]["end_cause"] for row in rows}
    assert {"NORMAL_CLEARING", "NO_ANSWER", "USER_BUSY", "ORIGINATOR_CANCEL"} <= causes
    assert any(row["record"]["recording_url"] for row in rows)
    assert any(row["record"]["machine_detected"] is not None for row in rows)
    assert any(row["record"]["operator_call_id"] for row in rows)


def test_summary_records(emu) -> None:
    rows = emu.conpeek.expected(SUMMARIES)
    states = Counter(row["record"]["state"] for row in rows)
    assert 0.35 < states["CLOSED"] / len(rows) < 0.65
    for row in rows:
        r = row["record"]
        assert set(r) >= SUMMARY_FIELDS
        assert set(r) - SUMMARY_FIELDS <= {"priority"}
        assert row["key"] == (r["id"],)
        if r["state"] == "OPEN":
            assert r["closed_date"] is None and r["close_reason"] is None
            assert r["tries"] < r["max_tries"]
        else:
            assert r["state"] == "CLOSED"
            assert r["closed_date"] > r["created_date"]
            assert r["close_reason"] in ("SUCCESS", "MAX_TRIES", "REJECTED", "CANCELLED")
        assert row["expected_fields"]["closed_date"] == (
            None if r["closed_date"] is None else r["closed_date"].replace(" ", "T") + "+00:00"
        )
    assert any("priority" in row["record"] for row in rows)
    days_later = [
        row for row in rows if row["record"]["closed_date"]
        and row["record"]["closed_date"][:10] > row["record"]["created_date"][:10]
    ]  # fmt: skip
    assert days_later


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b, c = make_emu(seed=5), make_emu(seed=5), make_emu(seed=6)
    for stream in (DIALOGS, SUMMARIES):
        assert a.conpeek.expected(stream) == b.conpeek.expected(stream)
        assert a.conpeek.expected(stream) != c.conpeek.expected(stream)


# -- faults ----------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_conpeek_body(emu, session) -> None:
    emu.faults.set(rate_limit_next=1, retry_after_seconds=2)
    r = get(session, emu, DIALOGS, limit=1)
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "2"
    assert r.json()["status"] == 429
    assert "message" in r.json()
    assert get(session, emu, DIALOGS, limit=1).status_code == 200
    log = emu.requests_log[-1]
    assert log["provider"] == "conpeek" and log["path"] == "/conpeek/cdr_dialog"


# -- data that moves -------------------------------------------------------------------------


def test_close_summaries_changes_state_and_is_visible_by_closed_date() -> None:
    with make_emu() as emu, requests.Session() as s:
        s.headers["Authorization"] = DEFAULT_API_KEY
        at = "2024-04-05 08:00:00"
        since = [
            {"property": "closed_date", "operator": "gte", "value": at},
            {"property": "closed_date", "operator": "lte", "value": at},
        ]
        assert fetch_all(s, emu, SUMMARIES, since) == []
        open_before = emu.conpeek.counts()["open_summaries"]
        ids = emu.conpeek.close_summaries(3, at_utc="2024-04-05T08:00:00Z")
        assert len(ids) == 3
        assert emu.conpeek.counts()["open_summaries"] == open_before - 3
        closed = fetch_all(s, emu, SUMMARIES, since)
        assert [r["id"] for r in closed] == sorted(ids)
        for r in closed:
            assert r["state"] == "CLOSED"
            assert r["closed_date"] == at
            assert r["close_reason"] in ("SUCCESS", "MAX_TRIES", "REJECTED")
        rows = {row["key"][0]: row for row in emu.conpeek.expected(SUMMARIES)}
        assert rows[ids[0]]["expected_fields"]["closed_date"] == "2024-04-05T08:00:00+00:00"
        # Default "now": inside the data period; and the control endpoint.
        r = requests.post(f"{emu.url}/_emulator/conpeek/close", json={"n": 2}, timeout=5)
        more = r.json()["closed"]
        assert len(more) == 2 and not set(more) & set(ids)
        rec = next(x for x in fetch_all(s, emu, SUMMARIES) if x["id"] == more[0])
        assert rec["closed_date"] == "2024-10-27 23:59:00"
        with pytest.raises(ValueError, match="already CLOSED"):
            emu.conpeek.close_summaries(1, ids=[ids[0]])


def test_insert_while_paging_shifts_pages() -> None:
    with (
        make_emu(dialogs=1500, summaries=600, insert_while_paging=4) as emu,
        requests.Session() as s,
    ):
        s.headers["Authorization"] = DEFAULT_API_KEY
        for stream, limit in ((DIALOGS, 100), (SUMMARIES, 50)):
            prop = PRIMARY[stream]
            w = window(prop, "2024-03-30 12:00:00", "2024-03-31 12:00:00")
            page1 = get(s, emu, stream, w, limit=limit).json()["data"]
            page2 = get(s, emu, stream, w, limit=limit, offset=limit).json()["data"]
            ids1 = [r[KEY[stream]] for r in page1]
            ids2 = [r[KEY[stream]] for r in page2]
            assert ids2[:4] == ids1[-4:]  # four new records landed before the offset
            head = get(s, emu, stream, w, limit=4).json()["data"]
            assert all("2024-03-30 12:00:00" <= r[prop] <= "2024-03-30 12:01:00" for r in head)
            assert not {r[KEY[stream]] for r in head} & set(ids1)
        emu.conpeek.insert_while_paging = 0
        before = emu.conpeek.counts()
        get(s, emu, DIALOGS, limit=10, offset=10)
        assert emu.conpeek.counts() == before
        # A client paging the whole window misses records while the data moves.
        emu.conpeek.insert_while_paging = 2
        w = window("start_time", "2024-03-30 00:00:00", "2024-04-01 00:00:00")
        got = fetch_all(s, emu, DIALOGS, w, limit=200)
        assert len({r["dialog_uuid"] for r in got}) < len(got)  # duplicates across pages


def test_late_arrivals_appear_in_an_already_read_window() -> None:
    with make_emu() as emu, requests.Session() as s:
        s.headers["Authorization"] = DEFAULT_API_KEY
        w = window("start_time", "2024-03-30 09:00:00", "2024-03-30 10:00:00")
        before = fetch_all(s, emu, DIALOGS, w)
        added = emu.conpeek.insert_dialogs(
            5, at_utc_range=("2024-03-30T09:00:00Z", "2024-03-30T10:00:00Z")
        )
        assert len(added) == 5
        after = fetch_all(s, emu, DIALOGS, w)
        assert len(after) == len(before) + 5
        assert {r["dialog_uuid"] for r in added} <= {r["dialog_uuid"] for r in after}
        assert all("2024-03-30 09:00:00" <= r["start_time"] < "2024-03-30 10:00:00" for r in added)
        sw = window("created_date", "2024-10-26 09:00:00", "2024-10-26 10:00:00")
        n = len(fetch_all(s, emu, SUMMARIES, sw))
        new = emu.conpeek.insert_summaries(3, ("2024-10-26T09:00:00Z", "2024-10-26T10:00:00Z"))
        assert all(r["state"] == "OPEN" for r in new)
        assert len(fetch_all(s, emu, SUMMARIES, sw)) == n + 3
        body = {
            "stream": SUMMARIES,
            "n": 2,
            "from": "2024-10-26T09:00:00Z",
            "to": "2024-10-26T10:00:00Z",
        }
        r = requests.post(f"{emu.url}/_emulator/conpeek/insert", json=body, timeout=5)
        assert r.json()["inserted"] == 2
        assert len(fetch_all(s, emu, SUMMARIES, sw)) == n + 5


def test_control_endpoints(emu) -> None:
    rows = requests.get(
        f"{emu.url}/_emulator/conpeek/expected", params={"stream": SUMMARIES}, timeout=10
    ).json()
    assert len(rows) == len(emu.conpeek.expected(SUMMARIES))
    assert rows[0]["key"] == [rows[0]["record"]["id"]]
    settings_ = requests.get(f"{emu.url}/_emulator/conpeek/settings", timeout=5).json()
    assert settings_["insert_while_paging"] == 0
    assert settings_[DIALOGS] == N_DIALOGS
    bad = requests.post(f"{emu.url}/_emulator/conpeek/settings", json={"nope": 1}, timeout=5)
    assert bad.status_code == 400
    bad = requests.get(f"{emu.url}/_emulator/conpeek/expected?stream=x", timeout=5)
    assert bad.status_code == 400


# -- process mode and scale ------------------------------------------------------------------


def test_cli_prints_conpeek_connection_details_and_serves() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulator",
            "--port",
            "0",
            "--thulium-connections",
            "10",
            "--conpeek-dialogs",
            "300",
            "--conpeek-summaries",
            "50",
            "--conpeek-api-key",
            "cli-key",
            "--conpeek-max-limit-dialogs",
            "120",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["conpeek"] == {"api_url": info["url"] + "/conpeek", "api_key": "cli-key"}
        headers = {"Authorization": info["conpeek"]["api_key"]}
        url = info["conpeek"]["api_url"]
        body = requests.get(f"{url}/{DIALOGS}", headers=headers, timeout=5).json()
        assert len(body["data"]) == 120
        body = requests.get(f"{url}/{SUMMARIES}", headers=headers, timeout=5).json()
        assert len(body["data"]) == 50
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_many_dialogs_generate_and_serve_fast() -> None:
    started = time.monotonic()
    emu = make_emu(dialogs=200_000, summaries=20_000)
    assert time.monotonic() - started < 10
    assert emu.conpeek.counts()[DIALOGS] == 200_000
    with emu, requests.Session() as s:
        s.headers["Authorization"] = DEFAULT_API_KEY
        w = window("start_time", "2024-03-30 00:00:00", "2024-10-28 00:00:00")
        started = time.monotonic()
        for offset in (0, 500, 100_000, 199_500):
            assert len(get(s, emu, DIALOGS, w, offset=offset).json()["data"]) == 500
        assert get(s, emu, DIALOGS, w, offset=200_000).json() == {"data": []}
        assert time.monotonic() - started < 3

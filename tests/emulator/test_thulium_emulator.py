"""The Thulium emulator behaves like the documented API, over real HTTP on loopback."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator import Emulator, FaultConfig, ThuliumConfig
from emulator.thulium import DEFAULT_PASSWORD, DEFAULT_USERNAME

ROOT = Path(__file__).resolve().parents[2]
AUTH = (DEFAULT_USERNAME, DEFAULT_PASSWORD)
N = 3000


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(seed=7, thulium=ThuliumConfig(connections=N)) as server:
        yield server


@pytest.fixture(autouse=True)
def _clean_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "emu" in request.fixturenames:
        request.getfixturevalue("emu").faults.reset()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.auth = AUTH
        yield s


def get(s: requests.Session, emu: Emulator, stream: str, **params: object) -> requests.Response:
    return s.get(f"{emu.thulium_api_url}/{stream}", params=params, timeout=10)


def fetch_all(s: requests.Session, emu: Emulator, stream: str, **params: object) -> list[dict]:
    """Page to ``count`` the way a client must (limit 100, offset)."""
    out: list[dict] = []
    while True:
        body = get(s, emu, stream, offset=len(out), limit=100, **params).json()
        out.extend(body["result"])
        if not body["result"] or len(out) >= body["count"]:
            return out


def locals_of(emu: Emulator, stream: str) -> list[str]:
    return [item["local"] for item in emu.thulium.expected(stream)]


# -- auth and parameters ---------------------------------------------------------------


@pytest.mark.parametrize("auth", [None, ("api_user", "wrong"), ("nobody", DEFAULT_PASSWORD)])
def test_bad_credentials_answer_401_with_errors_body(emu: Emulator, auth) -> None:
    r = requests.get(f"{emu.thulium_api_url}/connections", auth=auth, timeout=5)
    assert r.status_code == 401
    errors = r.json()["errors"]
    assert isinstance(errors, list)
    assert errors[0]["code"] == 401
    assert errors[0]["message"]
    assert r.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    "params",
    [
        {"date_from": "yesterday"},
        {"date_to": "2024-13-01"},
        {"date_from": "2024-03-30T10:00:00"},
        {"offset": -1},
        {"offset": "ten"},
        {"limit": "abc"},
        {"limit": "1.5"},
    ],
)
def test_bad_parameters_answer_400_with_errors_body(emu, session, params) -> None:
    r = get(session, emu, "connections", **params)
    assert r.status_code == 400
    assert r.json()["errors"][0]["code"] == 400
    assert next(iter(params)) in r.json()["errors"][0]["message"]


def test_unknown_path_answers_404_errors(emu, session) -> None:
    r = session.get(f"{emu.thulium_api_url}/nothing", timeout=5)
    assert r.status_code == 404
    assert r.json()["errors"]


# -- paging, count, order ----------------------------------------------------------------


def test_limit_is_clamped_to_100_and_default_is_100(emu, session) -> None:
    big = get(session, emu, "connections", limit=500).json()
    assert len(big["result"]) == 100
    assert big["count"] == N
    assert len(get(session, emu, "connections").json()["result"]) == 100


def test_count_ignores_limit_and_offset(emu, session) -> None:
    params = {"date_from": "2024-03-30", "date_to": "2024-03-30 12:00"}
    counts = {
        get(session, emu, "connections", limit=limit, offset=offset, **params).json()["count"]
        for limit, offset in [(1, 0), (5, 3), (100, 0), (100, 10_000)]
    }
    assert len(counts) == 1
    assert counts.pop() > 100
    beyond = get(session, emu, "connections", offset=10_000, **params).json()
    assert beyond["result"] == []


def test_newest_first_and_paging_returns_each_record_once(emu, session) -> None:
    params = {"date_from": "2024-03-31", "date_to": "2024-03-31"}
    rows = fetch_all(session, emu, "connections", **params)
    dates = [r["date"] for r in rows]
    assert dates == sorted(dates, reverse=True)
    ids = [r["connection_id"] for r in rows]
    assert len(ids) == len(set(ids))
    assert len(rows) == sum(1 for x in locals_of(emu, "connections") if x.startswith("2024-03-31"))

    recs = fetch_all(session, emu, "recordings", **params)
    created = [r["created_at"] for r in recs]
    assert created == sorted(created, reverse=True)
    assert len({(r["connection_id"], r["filename"]) for r in recs}) == len(recs)


def test_ties_are_ordered_deterministically(emu, session) -> None:
    first = get(session, emu, "connections", date_from="2024-10-26", date_to="2024-10-26").json()
    second = get(session, emu, "connections", date_from="2024-10-26", date_to="2024-10-26").json()
    assert first == second


# -- date bounds ---------------------------------------------------------------------------


def test_minute_bounds_are_inclusive(emu, session) -> None:
    minute = Counter(locals_of(emu, "connections")).most_common(1)[0][0]  # "YYYY-MM-DD HH:MM"
    hit = get(session, emu, "connections", date_from=minute, date_to=minute).json()
    assert hit["count"] == Counter(locals_of(emu, "connections"))[minute] >= 1
    assert {r["date"] for r in hit["result"]} == {minute}


def test_minute_date_to_covers_its_59_seconds() -> None:
    with Emulator(seed=3, thulium=ThuliumConfig(connections=500, with_seconds=True)) as emu:
        rows = [e for e in emu.thulium.expected("connections") if not e["local"].endswith(":00")]
        local = rows[0]["local"]  # "YYYY-MM-DD HH:MM:SS", seconds > 0
        minute = local[:16]
        with requests.Session() as s:
            s.auth = AUTH
            inside = fetch_all(s, emu, "connections", date_from=minute, date_to=minute)
            assert local in {r["date"] for r in inside}
            just_before = local[:17] + f"{int(local[17:]) - 1:02d}"
            excluded = fetch_all(s, emu, "connections", date_from=minute, date_to=just_before)
            assert local not in {r["date"] for r in excluded}
            exact = fetch_all(s, emu, "connections", date_from=local, date_to=local)
            assert local in {r["date"] for r in exact}


def test_date_only_date_to_covers_the_whole_day(emu, session) -> None:
    body = get(session, emu, "connections", date_from="2024-10-26", date_to="2024-10-26").json()
    expected = [x for x in locals_of(emu, "connections") if x.startswith("2024-10-26")]
    assert body["count"] == len(expected)
    assert body["result"][0]["date"] == max(expected)
    assert body["result"][0]["date"] >= "2024-10-26 23:00"


def test_repeated_autumn_hour_matches_both_occurrences(emu, session) -> None:
    rows = fetch_all(
        session, emu, "connections", date_from="2024-10-27 02:00", date_to="2024-10-27 02:59"
    )
    by_id = {tuple(e["key"]): e for e in emu.thulium.expected("connections")}
    first = [
        r
        for r in rows
        if utc(by_id[(r["connection_id"],)]["true_utc"]) < utc("2024-10-27T01:00:00+00:00")
    ]
    second = [r for r in rows if r not in first]
    assert len(first) >= 3
    assert len(second) >= 3
    for r in second:
        e = by_id[(r["connection_id"],)]
        assert utc(e["expected_utc"]) == utc(e["true_utc"]) - dt.timedelta(hours=1)
    for r in first:
        e = by_id[(r["connection_id"],)]
        assert e["expected_utc"] == e["true_utc"]


def test_no_local_time_in_the_spring_gap_and_records_right_after_each_edge(emu) -> None:
    conn_locals = locals_of(emu, "connections")
    assert not [x for x in conn_locals if x.startswith("2024-03-31 02:")]
    assert [x for x in conn_locals if "2024-03-31 03:00" <= x <= "2024-03-31 03:04"]
    assert [x for x in conn_locals if "2024-03-31 01:55" <= x <= "2024-03-31 01:59"]
    after_autumn = [
        e
        for e in emu.thulium.expected("connections")
        if "2024-10-27T01:00:00+00:00" <= e["true_utc"] < "2024-10-27T01:05:00+00:00"
    ]
    assert len(after_autumn) >= 3
    rec_locals = locals_of(emu, "recordings")
    assert not [x for x in rec_locals if x.startswith("2024-03-31 02:")]
    assert [x for x in rec_locals if x.startswith("2024-10-27 02:")]


def test_expected_utc_follows_the_local_string(emu) -> None:
    warsaw = ZoneInfo("Europe/Warsaw")
    rows = emu.thulium.expected("connections")
    edge = [e for e in rows if e["local"].startswith("2024-10-27 02:")]  # the repeated hour
    assert edge
    for e in rows[:200] + edge:
        assert e["record"]["date"] == e["local"]
        # computed here from the local string (first occurrence), not taken from the
        # emulator's own field
        local = dt.datetime.strptime(e["local"], "%Y-%m-%d %H:%M").replace(tzinfo=warsaw)
        assert e["expected_fields"]["date"] == local.astimezone(dt.timezone.utc).isoformat()
    for e in emu.thulium.expected("recordings")[:200]:
        assert e["local"] == e["record"]["created_at"]
        assert set(e["expected_fields"]) == {"date", "created_at"}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    start=st.integers(min_value=0, max_value=4 * 24 * 60),
    span=st.integers(min_value=0, max_value=36 * 60),
    stream=st.sampled_from(["connections", "recordings"]),
)
def test_count_matches_an_inclusive_local_range(emu, start, span, stream) -> None:
    base = dt.datetime(2024, 3, 29, 22, 0) if start % 2 else dt.datetime(2024, 10, 25, 22, 0)
    lo = (base + dt.timedelta(minutes=start)).strftime("%Y-%m-%d %H:%M")
    hi = (base + dt.timedelta(minutes=start + span)).strftime("%Y-%m-%d %H:%M")
    body = requests.get(
        f"{emu.thulium_api_url}/{stream}",
        auth=AUTH,
        timeout=10,
        params={"date_from": lo, "date_to": hi, "limit": 1},
    ).json()
    assert body["count"] == sum(1 for x in locals_of(emu, stream) if lo <= x <= hi)


# -- record shape ----------------------------------------------------------------------------


def test_include_tags_and_topics(emu, session) -> None:
    plain = get(session, emu, "connections").json()["result"]
    assert all("tags" not in r and "topic" not in r for r in plain)
    full = get(session, emu, "connections", include_tags="true", include_topics="true")
    rows = full.json()["result"]
    assert all(isinstance(r["tags"], list) for r in rows)
    assert any(r["tags"] for r in rows)
    assert all("topic" in r for r in rows)
    assert all((r["topic"] is None) == (r["topic_id"] is None) for r in rows)


def test_connection_fields_match_the_docs(emu) -> None:
    rows = [e["record"] for e in emu.thulium.expected("connections")]
    documented = {
        "date",
        "src",
        "dst",
        "disposition",
        "duration",
        "billsec",
        "operator",
        "filename",
        "user",
        "user_login",
        "dst_user",
        "dst_user_login",
        "customer_id",
        "outbound_id",
        "connection_id",
        "type",
        "rating",
        "queue_id",
        "topic_id",
        "tags",
        "disconnected_by",
        "transferred_to",
        "topic",
    }
    assert all(documented <= set(r) for r in rows)
    assert {r["disposition"] for r in rows} == {"BUSY", "FAILED", "ANSWERED", "NO ANSWER"}
    assert {r["type"] for r in rows} == {"INBOUND", "OUTBOUND"}
    assert {r["disconnected_by"] for r in rows} == {"Agent", "Customer"}
    assert all(isinstance(r["duration"], int) and isinstance(r["billsec"], int) for r in rows)
    assert all((r["filename"] != "") == (r["disposition"] == "ANSWERED") for r in rows)
    assert "" in {r["customer_id"] for r in rows}
    assert "" in {r["queue_id"] for r in rows}
    assert any(isinstance(r["outbound_id"], int) for r in rows)
    assert sum(r["outbound_id"] == "" for r in rows) > len(rows) / 2
    assert any(r["rating"] == {"type": "face", "rate": "happy"} for r in rows)
    assert None in {r["topic_id"] for r in rows}
    assert any(r["transferred_to"] for r in rows)
    assert any("campaign_name" in r for r in rows)  # a field the docs do not list
    assert len({r["connection_id"] for r in rows}) == len(rows)


def test_recordings_derive_from_answered_connections(emu) -> None:
    conns = {e["key"][0]: e for e in emu.thulium.expected("connections")}
    recs = emu.thulium.expected("recordings")
    per_connection = Counter(e["key"][0] for e in recs)
    assert set(per_connection.values()) == {1, 2}
    share_two = sum(1 for v in per_connection.values() if v == 2) / len(conns)
    assert 0.05 < share_two < 0.15
    crossing_day = 0
    for e in recs:
        r, c = e["record"], conns[e["key"][0]]
        assert r["disposition"] == "ANSWERED" == c["record"]["disposition"]
        assert set(r) == {
            "date",
            "created_at",
            "src",
            "dst",
            "disposition",
            "duration",
            "billsec",
            "filename",
            "user",
            "connection_id",
            "type",
        }
        assert r["date"] == c["record"]["date"]
        end = utc(c["true_utc"]) + dt.timedelta(seconds=r["duration"])
        assert end <= utc(e["true_utc"]) <= end + dt.timedelta(minutes=11)
        crossing_day += r["created_at"][:10] != r["date"][:10]
    assert crossing_day > 0
    assert len({tuple(e["key"]) for e in recs}) == len(recs)


def test_same_seed_same_data() -> None:
    a = Emulator(seed=5, thulium=ThuliumConfig(connections=300)).thulium.expected("connections")
    b = Emulator(seed=5, thulium=ThuliumConfig(connections=300)).thulium.expected("connections")
    c = Emulator(seed=6, thulium=ThuliumConfig(connections=300)).thulium.expected("connections")
    assert a == b
    assert a != c


# -- faults ----------------------------------------------------------------------------------


def test_rate_limit_next_answers_429_with_retry_after(emu, session) -> None:
    emu.faults.rate_limit_next = 2
    for _ in range(2):
        r = get(session, emu, "connections", limit=1)
        assert r.status_code == 429
        assert r.headers["Retry-After"] == "1"
        assert r.json()["errors"][0]["code"] == 429
    assert get(session, emu, "connections", limit=1).status_code == 200
    assert [e["fault"] for e in emu.requests_log[-3:]] == ["rate_limit", "rate_limit", None]
    assert [e["status"] for e in emu.requests_log[-3:]] == [429, 429, 200]


def test_rate_limit_every_nth_request(emu, session) -> None:
    emu.faults.set(rate_limit_every=3, retry_after_seconds=2)
    codes = [get(session, emu, "connections", limit=1).status_code for _ in range(6)]
    assert codes == [200, 200, 429, 200, 200, 429]


def test_unavailable_answers_503_html(emu, session) -> None:
    emu.faults.unavailable_next = 1
    r = get(session, emu, "recordings", limit=1)
    assert r.status_code == 503
    assert r.headers["Content-Type"].startswith("text/html")
    assert get(session, emu, "recordings", limit=1).status_code == 200


def test_drop_closes_the_connection(emu, session) -> None:
    emu.faults.drop_next = 1
    with pytest.raises(requests.ConnectionError):
        get(session, emu, "connections", limit=1)
    assert get(session, emu, "connections", limit=1).status_code == 200
    assert emu.requests_log[-2]["fault"] == "drop"
    assert emu.requests_log[-2]["status"] is None


def test_drop_every(emu, session) -> None:
    emu.faults.drop_every = 2
    assert get(session, emu, "connections", limit=1).status_code == 200
    with pytest.raises(requests.ConnectionError):
        get(session, emu, "connections", limit=1)


def test_truncate_sends_half_a_body(emu, session) -> None:
    emu.faults.truncate_next = 1
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        get(session, emu, "connections", limit=10).json()
    assert get(session, emu, "connections", limit=10).status_code == 200


def test_malformed_is_200_but_not_json(emu, session) -> None:
    emu.faults.malformed_next = 2
    bodies = [get(session, emu, "connections", limit=5) for _ in range(2)]
    for r in bodies:
        assert r.status_code == 200
        with pytest.raises(ValueError):
            json.loads(r.text)
    assert "502" in bodies[0].text
    assert bodies[1].text.startswith('{"count":')
    assert get(session, emu, "connections", limit=5).json()["count"] == N


def test_slow_exceeds_a_short_client_timeout(emu, session) -> None:
    emu.faults.set(slow_next=1, slow_seconds=1.0)
    with pytest.raises(requests.Timeout):
        session.get(f"{emu.thulium_api_url}/connections", params={"limit": 1}, timeout=0.3)
    assert get(session, emu, "connections", limit=1).status_code == 200


def test_latency_and_path_filter(emu, session) -> None:
    emu.faults.set(latency_ms=150, unavailable_next=-1, path_contains="/recordings")
    # the unfiltered path is not even seen by the fault injector (no timing needed)
    assert get(session, emu, "connections", limit=1).status_code == 200
    assert emu.faults.snapshot()["seen"] == 0
    for _ in range(3):  # -1 = forever
        started = time.monotonic()
        assert get(session, emu, "recordings", limit=1).status_code == 503
        assert time.monotonic() - started >= 0.15  # a lower bound: load only adds to it
    assert emu.faults.snapshot()["seen"] == 3
    emu.faults.reset()
    assert get(session, emu, "recordings", limit=1).status_code == 200


def test_random_faults_are_reproducible(emu) -> None:
    def run() -> list[str | None]:
        emu.faults.reset()
        emu.faults.set(random_rate=0.5, random_seed=42, random_kinds=["rate_limit", "unavailable"])
        return [emu.faults.decide("/thulium/api/connections").kind for _ in range(40)]

    first, second = run(), run()
    assert first == second
    assert {"rate_limit", "unavailable", None} == set(first)


def test_control_endpoints_are_never_faulted(emu, session) -> None:
    emu.faults.set(unavailable_next=-1)
    assert requests.get(f"{emu.url}/_emulator/health", timeout=5).json()["status"] == "ok"
    assert get(session, emu, "connections").status_code == 503
    r = requests.post(f"{emu.url}/_emulator/reset_faults", timeout=5)
    assert r.status_code == 200
    assert get(session, emu, "connections").status_code == 200
    r = requests.post(f"{emu.url}/_emulator/faults", json={"rate_limit_next": 1}, timeout=5)
    assert r.json()["rate_limit_next"] == 1
    assert get(session, emu, "connections").status_code == 429
    bad = requests.post(f"{emu.url}/_emulator/faults", json={"rate_limit_nxt": 1}, timeout=5)
    assert bad.status_code == 400


def test_control_expected_and_requests_log(emu, session) -> None:
    rows = requests.get(
        f"{emu.url}/_emulator/thulium/expected", params={"stream": "recordings"}, timeout=30
    ).json()
    assert rows == json.loads(json.dumps(emu.thulium.expected("recordings")))
    get(session, emu, "connections", limit=3, date_from="2024-03-30")
    log = requests.get(f"{emu.url}/_emulator/requests_log", timeout=5).json()
    assert log[-1]["query"] == {"limit": "3", "date_from": "2024-03-30"}
    assert log[-1]["provider"] == "thulium"
    assert log[-1]["path"] == "/thulium/api/connections"


# -- data that moves ---------------------------------------------------------------------------


def test_insert_while_paging_shifts_pages() -> None:
    cfg = ThuliumConfig(connections=1000, insert_while_paging=5)
    with Emulator(seed=2, thulium=cfg) as emu, requests.Session() as s:
        s.auth = AUTH
        params = {"date_from": "2024-03-30", "date_to": "2024-03-31 23:59"}
        page1 = get(s, emu, "connections", offset=0, **params).json()
        page2 = get(s, emu, "connections", offset=100, **params).json()
        assert page2["count"] == page1["count"] + 5
        ids1 = [r["connection_id"] for r in page1["result"]]
        ids2 = [r["connection_id"] for r in page2["result"]]
        assert ids2[:5] == ids1[-5:]  # shifted by the five new head records
        head = get(s, emu, "connections", offset=0, limit=5, **params).json()["result"]
        assert all("2024-03-31 23:30" <= r["date"] <= "2024-03-31 23:59" for r in head)
        assert not {r["connection_id"] for r in head} & set(ids1)  # the new ones lead

        emu.thulium.insert_while_paging = 0
        recs = get(s, emu, "recordings", offset=0, **params).json()["count"]
        assert get(s, emu, "recordings", offset=100, **params).json()["count"] == recs
        emu.thulium.insert_while_paging = 3
        assert get(s, emu, "recordings", offset=100, **params).json()["count"] == recs + 3


def test_insert_connections_late_arrivals() -> None:
    with Emulator(seed=2, thulium=ThuliumConfig(connections=200)) as emu, requests.Session() as s:
        s.auth = AUTH
        before = get(
            s, emu, "connections", date_from="2024-03-30 10:00", date_to="2024-03-30 10:59"
        ).json()["count"]
        added = emu.thulium.insert_connections(
            4, at_utc_range=("2024-03-30T09:00:00Z", "2024-03-30T09:59:00Z"), answered=True
        )
        assert len(added) == 4
        after = get(
            s, emu, "connections", date_from="2024-03-30 10:00", date_to="2024-03-30 10:59"
        ).json()
        assert after["count"] == before + 4
        assert {r["connection_id"] for r in added} <= {r["connection_id"] for r in after["result"]}
        keys = {e["key"][0] for e in emu.thulium.expected("recordings")}
        assert {r["connection_id"] for r in added} <= keys
        window = {"from": "2024-03-30T09:00:00Z", "to": "2024-03-30T09:59:00Z"}
        r = requests.post(f"{emu.url}/_emulator/thulium/insert", json={"n": 2, **window}, timeout=5)
        assert r.json()["inserted"] == 2


def test_restart_on_the_same_port_keeps_data() -> None:
    emu = Emulator(seed=4, thulium=ThuliumConfig(connections=300)).start()
    try:
        port = emu.port
        with requests.Session() as s:
            s.auth = AUTH
            first = get(s, emu, "connections", limit=20).json()
            emu.stop()
            with pytest.raises(requests.ConnectionError):
                get(s, emu, "connections", limit=20)
            emu.start()
            assert emu.port == port
            assert get(s, emu, "connections", limit=20).json() == first
    finally:
        emu.stop()


# -- process mode ----------------------------------------------------------------------------


def test_cli_prints_one_json_line_and_exits_cleanly_on_sigterm() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulator",
            "--port",
            "0",
            "--seed",
            "1",
            "--thulium-connections",
            "200",
            "--thulium-with-seconds",
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
        assert info["thulium"]["api_url"] == info["url"] + "/thulium/api"
        assert info["thulium"]["username"] == DEFAULT_USERNAME
        assert info["thulium"]["timezone"] == "Europe/Warsaw"
        auth = (info["thulium"]["username"], info["thulium"]["password"])
        body = requests.get(
            info["thulium"]["api_url"] + "/connections", auth=auth, params={"limit": 1}, timeout=5
        ).json()
        assert body["count"] == 200
        assert len(body["result"][0]["date"]) == len("2024-01-01 00:00:00")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_fault_config_can_be_passed_at_construction() -> None:
    with Emulator(
        seed=1, thulium=ThuliumConfig(connections=10), faults=FaultConfig(unavailable_next=1)
    ) as emu:
        r = requests.get(f"{emu.thulium_api_url}/connections", auth=AUTH, timeout=5)
        assert r.status_code == 503
        emu.faults.reset()
        assert (
            requests.get(f"{emu.thulium_api_url}/connections", auth=AUTH, timeout=5).status_code
            == 200
        )


# -- scale -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_million_connections_generate_and_serve_fast() -> None:
    started = time.monotonic()
    emu = Emulator(seed=1, thulium=ThuliumConfig(connections=1_000_000))
    assert time.monotonic() - started < 45
    assert emu.thulium.counts()["connections"] == 1_000_000
    with emu, requests.Session() as s:
        s.auth = AUTH
        started = time.monotonic()
        for offset in (0, 100, 50_000, 300_000):
            body = get(
                s,
                emu,
                "connections",
                offset=offset,
                date_from="2024-03-30",
                date_to="2024-10-28",
                include_tags="true",
            ).json()
            assert body["count"] == 1_000_000
            assert len(body["result"]) == 100
        assert time.monotonic() - started < 2

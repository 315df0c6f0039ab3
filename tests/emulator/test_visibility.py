"""Under a simulated clock every provider serves only what has been delivered by then.

The expectation is always the provider's own ``expected()`` rows filtered by
``visible_at <= now``; the answers are read over real HTTP and paged the way a client
pages (Thulium to ``count``, Conpeek to a short page, ECSS by ``tag``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from lxml import etree

from emulator import ConpeekConfig, EcssConfig, Emulator, ThuliumConfig
from emulator.conpeek import DEFAULT_API_KEY as CONPEEK_KEY
from emulator.ecss import DEFAULT_API_KEY, DEFAULT_CLIENT_ID, DEFAULT_PHONE_NUMBER
from emulator.thulium import DEFAULT_PASSWORD, DEFAULT_USERNAME

AUTH = (DEFAULT_USERNAME, DEFAULT_PASSWORD)
CREDS = {
    "client_id": DEFAULT_CLIENT_ID,
    "api_key": DEFAULT_API_KEY,
    "phone_number": DEFAULT_PHONE_NUMBER,
}
DIALOGS, SUMMARIES = "cdr_dialog", "voice_campaign_request_summary"
ECSS_WINDOW = ("2024/10/26 00:00:00", "2024/10/28 01:59:59")
MAX_LAG = 2700
DELAY_MAX = 1200


def ts(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso).timestamp())


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(
        seed=5,
        thulium=ThuliumConfig(connections=1500),
        conpeek=ConpeekConfig(dialogs=1500, summaries=600),
        ecss=EcssConfig(calls=1500),
    ) as server:
        yield server


@pytest.fixture(autouse=True)
def _reset(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "emu" in request.fixturenames:
        server = request.getfixturevalue("emu")
        server.set_now(None)
        server.ecss.reset_settings()


def visible(rows: list[dict[str, Any]], now: int) -> list[dict[str, Any]]:
    return [row for row in rows if ts(row["visible_at"]) <= now]


def nows(rows: list[dict[str, Any]]) -> list[int]:
    """Instants spread over the data's delivery: before all, inside both periods, after."""
    instants = sorted(ts(row["visible_at"]) for row in rows)
    picks = [instants[0] - 1, instants[0]]
    picks += [instants[len(instants) * k // 8] for k in (1, 3, 4, 5, 7)]
    return [*picks, instants[-1] - 1, instants[-1]]


# -- HTTP clients ------------------------------------------------------------------------------


def thulium_all(emu: Emulator, stream: str, limit: int, **params: object) -> list[dict]:
    """Page to ``count``; every page must report the same count and be full but the last."""
    out: list[dict] = []
    counts: set[int] = set()
    while True:
        r = requests.get(
            f"{emu.thulium_api_url}/{stream}",
            params={"offset": len(out), "limit": limit, **params},
            auth=AUTH,
            timeout=10,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        counts.add(body["count"])
        out.extend(body["result"])
        if len(out) >= body["count"] or not body["result"]:
            break
        assert len(body["result"]) == limit, "a short page before count is a hole"
    assert len(counts) == 1, f"count changed while paging: {counts}"
    assert len(out) == counts.pop()
    return out


def conpeek_all(emu: Emulator, stream: str, limit: int, flt: list | None = None) -> list[dict]:
    out: list[dict] = []
    while True:
        params: dict[str, object] = {"offset": len(out), "limit": limit}
        if flt is not None:
            params["filter"] = json.dumps(flt)
        r = requests.get(
            f"{emu.conpeek_api_url}/{stream}",
            params=params,
            headers={"Authorization": CONPEEK_KEY},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        page = r.json()["data"]
        out.extend(page)
        if len(page) < limit:
            return out


def ecss_all(
    emu: Emulator, window: tuple[str, str], limit: int, direction: str | None = None
) -> list[dict]:
    url = f"{emu.ecss_api_url}/cc.demo/service/cc/arm"
    out: list[dict] = []
    with requests.Session() as s:
        assert s.post(f"{url}/login", data=CREDS, timeout=5).status_code == 200
        tag: str | None = None
        for _ in range(1000):
            attrs = f'offset="0" limit="{limit}" from_date="{window[0]}" to_date="{window[1]}"'
            if direction:
                attrs += f' direction="{direction}"'
            if tag:
                attrs += f' tag="{tag}"'
            body = f"<in><request><filters {attrs}/></request></in>"
            root = etree.fromstring(s.post(f"{url}/operator_call_history", data=body).content)
            assert root.find("error") is None, etree.tostring(root)
            history = root.find("response/history")
            page = [dict(item.attrib) for item in history.findall("call_history")]
            tag = history.get("tag")
            if tag:
                assert len(page) == limit, "a short page with a tag is a hole"
            out.extend(page)
            if not tag:
                return out
    raise AssertionError("ECSS paging does not end")


# -- every provider serves exactly the visible set --------------------------------------------


@pytest.mark.parametrize("stream", ["connections", "recordings"])
def test_thulium_serves_exactly_the_visible_records(emu, stream) -> None:
    rows = emu.thulium.expected(stream)
    key = ("connection_id",) if stream == "connections" else ("connection_id", "filename")
    for now in nows(rows):
        emu.set_now(now)
        want = [row["key"] for row in visible(rows, now)]  # newest first, like the API
        got = thulium_all(emu, stream, limit=37)
        assert [tuple(r[k] for k in key) for r in got] == want, now
        # a date range: the visible records of that range only, count included
        date_from, date_to = "2024-10-27 01:00", "2024-10-27 03:59"
        in_range = [r for r in visible(rows, now) if date_from <= r["local"] <= date_to + ":59"]
        ranged = thulium_all(emu, stream, limit=9, date_from=date_from, date_to=date_to)
        assert [tuple(r[k] for k in key) for r in ranged] == [r["key"] for r in in_range]


def test_thulium_equality_filters_count_visible_records_only(emu) -> None:
    rows = emu.thulium.expected("connections")
    now = nows(rows)[4]
    emu.set_now(now)
    want = [r["key"][0] for r in visible(rows, now) if r["record"]["queue_id"] == 34]
    got = thulium_all(emu, "connections", limit=10, queue_id=34)
    assert 10 < len(want) < len([r for r in rows if r["record"]["queue_id"] == 34])
    assert [r["connection_id"] for r in got] == want


def test_conpeek_dialogs_serve_exactly_the_visible_records(emu) -> None:
    rows = emu.conpeek.expected(DIALOGS)
    for now in nows(rows):
        emu.set_now(now)
        want = [row["key"][0] for row in visible(rows, now)]  # oldest first, like the API
        assert [r["dialog_uuid"] for r in conpeek_all(emu, DIALOGS, limit=41)] == want, now
    # a filter besides the date range counts the visible records only
    now = nows(rows)[3]
    emu.set_now(now)
    flt = [{"property": "dialog_type_list", "value": ["CONSULTANT"]}]
    want = [
        row["key"][0] for row in visible(rows, now) if row["record"]["dialog_type"] == "CONSULTANT"
    ]
    assert want
    assert [r["dialog_uuid"] for r in conpeek_all(emu, DIALOGS, 7, flt)] == want


def test_conpeek_summaries_serve_the_version_expected_as_of_now(emu) -> None:
    final = emu.conpeek.expected(SUMMARIES)
    forms = Counter()
    for now in nows(final):
        emu.set_now(now)
        as_of = emu.conpeek.expected(SUMMARIES, as_of=now)
        want = [row["record"] for row in visible(as_of, now)]
        got = conpeek_all(emu, SUMMARIES, limit=23)
        assert got == want, now  # whole records: open form until the closure is delivered
        forms.update(r["state"] for r in got)
        for row in visible(as_of, now):
            closed = row["closed_visible_at"] is not None and ts(row["closed_visible_at"]) <= now
            assert (row["record"]["state"] == "CLOSED") is closed
    assert forms["OPEN"] and forms["CLOSED"]


def test_ecss_tag_paging_serves_exactly_the_visible_calls(emu) -> None:
    lo, hi = (f"{d.replace('/', '-')}" for d in ECSS_WINDOW)
    rows = [r for r in emu.ecss.expected() if lo <= r["local"].replace("/", "-") <= hi]
    for cursor in ("key", "offset"):
        emu.ecss.set(tag_cursor=cursor)
        for now in nows(rows):
            emu.set_now(now)
            want = [row["key"][0] for row in visible(rows, now)]
            got = ecss_all(emu, ECSS_WINDOW, limit=13)
            assert [r["call_ref"] for r in got] == want, (cursor, now)
            inbound = [r["key"][0] for r in visible(rows, now) if r["record"]["direction"] == "in"]
            got_in = ecss_all(emu, ECSS_WINDOW, limit=11, direction="in")
            assert [r["call_ref"] for r in got_in] == inbound, (cursor, now)


def test_nothing_is_served_before_its_instant_or_its_delivery(emu) -> None:
    now = ts("2024-10-27T01:30:00+00:00")  # inside the repeated autumn hour
    emu.set_now(now)
    cases = [
        (emu.thulium.expected("connections"), thulium_all(emu, "connections", 100)),
        (emu.conpeek.expected(DIALOGS), conpeek_all(emu, DIALOGS, 500)),
        (emu.ecss.expected(), ecss_all(emu, ECSS_WINDOW, 100)),
    ]
    for rows, got in cases:
        assert got
        by_key = {row["key"][0]: row for row in rows}
        for record in got:
            row = by_key[
                record.get("connection_id") or record.get("dialog_uuid") or record.get("call_ref")
            ]
            assert ts(row.get("true_utc") or row["expected_utc"]) <= now
            assert ts(row["visible_at"]) <= now
        assert len(got) < len(
            [r for r in rows if ts(r.get("true_utc") or r["expected_utc"]) <= now]
        )


# -- summaries close over time -----------------------------------------------------------------


def summary(emu: Emulator, summary_id: int) -> dict | None:
    flt = [{"property": "call_request_id_list", "value": [f"CR-{summary_id:08d}"]}]
    found = conpeek_all(emu, SUMMARIES, 100, flt)
    assert len(found) <= 1
    return found[0] if found else None


def test_a_summary_is_open_until_its_closure_is_delivered_then_closed(emu) -> None:
    rows = [
        row
        for row in emu.conpeek.expected(SUMMARIES)
        if row["closed_at"] and row["closed_visible_at"] != row["visible_at"]
    ]
    assert len(rows) > 20
    for row in rows[:: len(rows) // 10]:
        sid = row["key"][0]
        emu.set_now(ts(row["visible_at"]) - 1)
        assert summary(emu, sid) is None
        emu.set_now(ts(row["visible_at"]))
        before = summary(emu, sid)
        assert before is not None
        assert before["state"] == "OPEN"
        assert before["closed_date"] is None and before["close_reason"] is None
        assert before["tries"] < before["max_tries"]
        emu.set_now(ts(row["closed_visible_at"]) - 1)
        assert summary(emu, sid) == before
        emu.set_now(ts(row["closed_visible_at"]))
        after = summary(emu, sid)
        assert after == row["record"]  # the final form expected() lists
        assert after["state"] == "CLOSED"
        assert after["closed_date"].replace(" ", "T") + "+00:00" == row["closed_at"]
        assert row["expected_fields"]["closed_date"] == row["closed_at"]


def test_closed_date_filter_sees_only_delivered_closures(emu) -> None:
    rows = emu.conpeek.expected(SUMMARIES)
    now = nows(rows)[5]
    emu.set_now(now)
    since = "2024-03-30 00:00:00"
    flt = [{"property": "closed_date", "operator": "gte", "value": since}]
    want = [
        row["key"][0]
        for row in visible(rows, now)
        if row["closed_visible_at"] and ts(row["closed_visible_at"]) <= now
    ]
    pending = [
        row for row in visible(rows, now)
        if row["closed_visible_at"] and ts(row["closed_visible_at"]) > now
    ]  # fmt: skip
    assert want and pending
    assert [r["id"] for r in conpeek_all(emu, SUMMARIES, 10, flt)] == want


def test_close_summaries_under_a_clock_closes_at_now_and_delivers_later() -> None:
    with Emulator(seed=9, conpeek=ConpeekConfig(summaries=200, dialogs=10)) as emu:
        emu.set_now("2024-03-31T12:00:00Z")
        ids = emu.conpeek.close_summaries(2)
        assert len(ids) == 2
        rows = {row["key"][0]: row for row in emu.conpeek.expected(SUMMARIES)}
        for sid in ids:
            row = rows[sid]
            assert row["closed_at"] == "2024-03-31T12:00:00+00:00"
            closed_visible = ts(row["closed_visible_at"])
            assert emu.now <= closed_visible <= emu.now + DELAY_MAX
            before = summary(emu, sid)
            assert before is not None
            assert before["state"] == ("CLOSED" if closed_visible == emu.now else "OPEN")
            open_row = emu.conpeek.expected(SUMMARIES, as_of=emu.now - 1)
            assert next(r for r in open_row if r["key"][0] == sid)["record"]["state"] == "OPEN"
        emu.advance(DELAY_MAX)
        for sid in ids:
            after = summary(emu, sid)
            assert after is not None and after["closed_date"] == "2024-03-31 12:00:00"
            assert after == rows[sid]["record"]


# -- the lag and its cap -------------------------------------------------------------------------


def lags(emu: Emulator) -> dict[str, list[tuple[int, int, int]]]:
    """Per stream: (replication-key instant, ready instant, visible_at) of every record."""
    out: dict[str, list[tuple[int, int, int]]] = {}
    for row in emu.thulium.expected("connections"):
        start = ts(row["true_utc"])
        out.setdefault("thulium_connections", []).append(
            (start, start + row["record"]["duration"], ts(row["visible_at"]))
        )
    for row in emu.thulium.expected("recordings"):
        created = ts(row["true_utc"])
        out.setdefault("thulium_recordings", []).append((created, created, ts(row["visible_at"])))
    for row in emu.conpeek.expected(DIALOGS):
        fields = row["expected_fields"]
        out.setdefault(DIALOGS, []).append(
            (ts(fields["start_time"]), ts(fields["hangup_time"]), ts(row["visible_at"]))
        )
    for row in emu.conpeek.expected(SUMMARIES):
        created = ts(row["expected_fields"]["created_date"])
        out.setdefault(SUMMARIES, []).append((created, created, ts(row["visible_at"])))
        if row["closed_at"]:
            closed = ts(row["closed_at"])
            out.setdefault("closures", []).append(
                (closed, max(closed, ts(row["visible_at"])), ts(row["closed_visible_at"]))
            )
    for row in emu.ecss.expected():
        start = ts(row["true_utc"])
        total = int(row["record"]["total_duration"])
        out.setdefault("ecss", []).append((start, start + total, ts(row["visible_at"])))
    return out


def test_visible_at_is_ready_plus_a_delay_within_the_cap(emu) -> None:
    for stream, items in lags(emu).items():
        delays = []
        for instant, ready, visible_at in items:
            assert instant <= visible_at <= instant + MAX_LAG, stream
            if visible_at < instant + MAX_LAG:
                assert ready <= visible_at <= ready + DELAY_MAX, stream
                delays.append(visible_at - ready)
        # uniform over [0, DELAY_MAX]: both ends and the middle are reached
        assert min(delays) < 60 and max(delays) > DELAY_MAX - 60, stream
        assert 0.35 < sum(d < DELAY_MAX / 2 for d in delays) / len(delays) < 0.65, stream


def test_the_lag_cap_binds_when_delays_are_long() -> None:
    knobs = {"delivery_delay_max": 5000, "max_visibility_lag": 900}
    emu = Emulator(
        seed=5,
        thulium=ThuliumConfig(connections=800, **knobs),
        conpeek=ConpeekConfig(dialogs=800, summaries=300, **knobs),
        ecss=EcssConfig(calls=800, **knobs),
    )
    for stream, items in lags(emu).items():
        lag = [visible_at - instant for instant, _, visible_at in items]
        assert max(lag) == 900, stream
        assert min(lag) >= 0, stream
        assert sum(x == 900 for x in lag) > len(lag) / 2, stream


def test_visibility_is_seeded() -> None:
    def visible_ats(seed: int) -> list[str]:
        emu = Emulator(
            seed=seed,
            thulium=ThuliumConfig(connections=300),
            conpeek=ConpeekConfig(dialogs=300, summaries=100),
            ecss=EcssConfig(calls=300),
        )
        return [
            row["visible_at"]
            for rows in (
                emu.thulium.expected("connections"),
                emu.conpeek.expected(DIALOGS),
                emu.conpeek.expected(SUMMARIES),
                emu.ecss.expected(),
            )
            for row in rows
        ]

    assert visible_ats(4) == visible_ats(4)
    assert visible_ats(4) != visible_ats(5)


# -- no clock: as before -------------------------------------------------------------------------


def everything(emu: Emulator) -> list[Any]:
    return [
        thulium_all(emu, "connections", 100, include_tags=1, include_topics=1),
        thulium_all(emu, "recordings", 100),
        conpeek_all(emu, DIALOGS, 500),
        conpeek_all(emu, SUMMARIES, 100),
        ecss_all(emu, ECSS_WINDOW, 100),
        ecss_all(emu, ("2024/03/30 00:00:00", "2024/04/01 03:59:59"), 100),
    ]


def test_no_clock_serves_everything_final_and_a_far_clock_serves_the_same(emu) -> None:
    assert emu.now is None
    plain = everything(emu)
    assert len(plain[0]) == 1500 and len(plain[2]) == 1500 and len(plain[3]) == 600
    assert plain[3] == [row["record"] for row in emu.conpeek.expected(SUMMARIES)]
    emu.set_now("2030-01-01T00:00:00Z")  # everything delivered, every closure too
    assert everything(emu) == plain
    emu.set_now("2024-03-30T12:00:00Z")
    assert everything(emu) != plain
    emu.set_now(None)
    assert everything(emu) == plain


def test_control_expected_lists_visibility_and_takes_as_of(emu) -> None:
    base = f"{emu.url}/_emulator"
    rows = requests.get(f"{base}/thulium/expected", params={"stream": "recordings"}, timeout=10)
    assert [r["visible_at"] for r in rows.json()] == [
        r["visible_at"] for r in emu.thulium.expected("recordings")
    ]
    calls = requests.get(f"{base}/ecss/expected", timeout=10).json()
    assert [r["visible_at"] for r in calls] == [r["visible_at"] for r in emu.ecss.expected()]
    final = emu.conpeek.expected(SUMMARIES)
    closing = next(r for r in final if r["closed_at"] and r["closed_visible_at"] != r["visible_at"])
    before = ts(closing["closed_visible_at"]) - 1
    for as_of in (str(before), closing["visible_at"]):
        got = requests.get(
            f"{base}/conpeek/expected", params={"stream": SUMMARIES, "as_of": as_of}, timeout=10
        ).json()
        row = next(r for r in got if r["key"] == [closing["key"][0]])
        assert row["record"]["state"] == "OPEN" and row["expected_fields"]["closed_date"] is None
        assert row["closed_at"] == closing["closed_at"]  # ground truth does not move
    got = requests.get(f"{base}/conpeek/expected", params={"stream": SUMMARIES}, timeout=10)
    row = next(r for r in got.json() if r["key"] == [closing["key"][0]])
    assert row["record"] == closing["record"] and row["record"]["state"] == "CLOSED"
    bad = requests.get(f"{base}/conpeek/expected", params={"stream": SUMMARIES, "as_of": "x"})
    assert bad.status_code == 400


def test_as_of_before_a_summary_is_visible_gives_its_first_served_version(emu) -> None:
    final = emu.conpeek.expected(SUMMARIES)
    first_closed = [
        r for r in final if r["closed_at"] and r["closed_visible_at"] == r["visible_at"]
    ]
    first_open = [r for r in final if r["closed_at"] and r["closed_visible_at"] != r["visible_at"]]
    assert first_closed and first_open
    early = {r["key"]: r for r in emu.conpeek.expected(SUMMARIES, as_of="2000-01-01T00:00:00Z")}
    for row in first_closed:
        assert early[row["key"]]["record"] == row["record"]
    for row in first_open:
        assert early[row["key"]]["record"]["state"] == "OPEN"

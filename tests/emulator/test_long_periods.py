"""Long, sparse data over both DST edges, and a simulated clock moved through it by weeks:
the set-up of a "life of a pipeline" test (months of data, a few thousand records)."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
import requests
from lxml import etree

from emulator import ConpeekConfig, EcssConfig, Emulator, ThuliumConfig
from emulator.conpeek import DEFAULT_API_KEY as CONPEEK_KEY
from emulator.conpeek import ConpeekProvider
from emulator.ecss import DEFAULT_API_KEY, DEFAULT_CLIENT_ID, DEFAULT_PHONE_NUMBER, EcssProvider
from emulator.thulium import DEFAULT_PASSWORD, DEFAULT_USERNAME, ThuliumProvider

PERIOD = ("2024-03-01T00:00:00Z", "2024-12-15T00:00:00Z")
N = 5000
SPRING, AUTUMN = "2024-03-31T01:00:00+00:00", "2024-10-27T01:00:00+00:00"  # both EU zones
DAY = 86400
WARSAW, HELSINKI = ZoneInfo("Europe/Warsaw"), ZoneInfo("Europe/Helsinki")


def ts(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def configs() -> dict[str, object]:
    return {
        "thulium": ThuliumConfig(timezone="Europe/Warsaw", connections=N, periods=[PERIOD]),
        "conpeek": ConpeekConfig(dialogs=N, summaries=3000, periods=[PERIOD]),
        "ecss": EcssConfig(timezone="Europe/Helsinki", calls=N, periods=[PERIOD]),
    }


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(seed=21, **configs()) as server:
        yield server


def test_building_months_of_sparse_data_is_fast() -> None:
    cfg = configs()
    for cls, config in (
        (ThuliumProvider, cfg["thulium"]),
        (ConpeekProvider, cfg["conpeek"]),
        (EcssProvider, cfg["ecss"]),
    ):
        started = time.perf_counter()
        provider = cls(config, 3)
        elapsed = time.perf_counter() - started
        # a guard against a gross regression, not a benchmark (the machine is shared)
        assert elapsed < 20.0, (cls.__name__, elapsed)
        assert min(provider.counts().values()) >= 0


def months(isos: list[str]) -> Counter:
    return Counter(iso[:7] for iso in isos)


def test_records_spread_over_every_month(emu) -> None:
    every = {f"2024-{m:02d}" for m in range(3, 13)}
    for rows in (
        emu.thulium.expected("connections"),
        emu.conpeek.expected("cdr_dialog"),
        emu.conpeek.expected("voice_campaign_request_summary"),
        emu.ecss.expected(),
    ):
        per_month = months([r["expected_utc"] for r in rows])
        assert set(per_month) == every
        assert min(per_month.values()) > len(rows) / 10 / 4  # no month starved


def test_dst_edges_are_still_forced_into_sparse_data(emu) -> None:
    for stream, field in (("connections", "true_utc"), ("recordings", "true_utc")):
        rows = emu.thulium.expected(stream)
        instants = [ts(r[field]) for r in rows]
        for edge in (ts(SPRING), ts(AUTUMN)):
            assert sum(edge - 3600 <= i < edge for i in instants) >= 3, (stream, edge)
            assert sum(edge <= i < edge + 3600 for i in instants) >= 3, (stream, edge)
        # both occurrences of the repeated autumn hour (02:xx local in Warsaw)
        repeated = {r[field][11:13] for r in rows if r["local"].startswith("2024-10-27 02:")}
        assert repeated == {"00", "01"}, stream
        assert not [r for r in rows if r["local"].startswith("2024-03-31 02:")]  # the gap
    calls = emu.ecss.expected()
    repeated = {r["true_utc"][11:13] for r in calls if r["local"].startswith("2024/10/27 03:")}
    assert repeated == {"00", "01"}
    assert not [r for r in calls if r["local"].startswith("2024/03/31 03:")]
    spring = [r for r in calls if abs(ts(r["true_utc"]) - ts(SPRING)) < 3600]
    assert len(spring) >= 8


def test_conpeek_midnight_edges_stay_a_small_share(emu) -> None:
    for stream, field in (
        ("cdr_dialog", "start_time"),
        ("voice_campaign_request_summary", "created_date"),
    ):
        rows = emu.conpeek.expected(stream)
        at_midnight = [r for r in rows if r["expected_fields"][field].endswith("T00:00:00+00:00")]
        assert 0.04 < len(at_midnight) / len(rows) < 0.15, stream
        days = {r["expected_fields"][field][:10] for r in at_midnight}
        assert {d[:7] for d in days} >= {f"2024-{m:02d}" for m in range(3, 13)}


def test_summaries_close_minutes_to_sixty_days_after_creation(emu) -> None:
    rows = emu.conpeek.expected("voice_campaign_request_summary")
    delays = [
        ts(r["closed_at"]) - ts(r["expected_fields"]["created_date"])
        for r in rows
        if r["closed_at"]
    ]
    assert 0.4 < len(delays) / len(rows) < 0.6
    assert min(delays) < 600
    assert sum(d < 3600 for d in delays) > len(delays) / 5
    assert 0.08 < sum(d > 30 * DAY for d in delays) / len(delays) < 0.25
    assert max(delays) <= 60 * DAY + 60


# -- the clock moved through the period by weeks ------------------------------------------------


def thulium_count(emu: Emulator, date_from: str, date_to: str) -> int:
    r = requests.get(
        f"{emu.thulium_api_url}/connections",
        params={"limit": 1, "date_from": date_from, "date_to": date_to},
        auth=(DEFAULT_USERNAME, DEFAULT_PASSWORD),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return int(r.json()["count"])


def conpeek_ids(emu: Emulator, stream: str, field: str, lo: str, hi: str) -> list:
    flt = [
        {"property": field, "operator": "gte", "value": lo},
        {"property": field, "operator": "lt", "value": hi},
    ]
    out: list = []
    while True:
        r = requests.get(
            f"{emu.conpeek_api_url}/{stream}",
            params={"offset": len(out), "limit": 100, "filter": json.dumps(flt)},
            headers={"Authorization": CONPEEK_KEY},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        page = r.json()["data"]
        out.extend(page)
        if len(page) < 100:
            return out


def ecss_refs(emu: Emulator, session: requests.Session, lo: str, hi: str) -> list[str]:
    url = f"{emu.ecss_api_url}/cc.demo/service/cc/arm/operator_call_history"
    refs: list[str] = []
    tag = None
    while True:
        attrs = f'limit="100" from_date="{lo}" to_date="{hi}"' + (f' tag="{tag}"' if tag else "")
        root = etree.fromstring(
            session.post(url, data=f"<in><request><filters {attrs}/></request></in>").content
        )
        history = root.find("response/history")
        assert history is not None, etree.tostring(root)
        refs.extend(item.get("call_ref") for item in history.findall("call_history"))
        tag = history.get("tag")
        if not tag:
            return refs


def local(now: int, zone: ZoneInfo, fmt: str) -> str:
    return dt.datetime.fromtimestamp(now, zone).strftime(fmt)


def test_a_clock_moved_by_weeks_sees_each_provider_deliver_and_summaries_close(emu) -> None:
    connections = emu.thulium.expected("connections")
    dialogs = emu.conpeek.expected("cdr_dialog")
    summaries = emu.conpeek.expected("voice_campaign_request_summary")
    calls = emu.ecss.expected()
    closures_per_week: list[tuple[int, int]] = []
    seen_closed: set = set()
    now = ts("2024-03-01T00:00:00Z")
    with requests.Session() as ecss:
        ecss.post(
            f"{emu.ecss_api_url}/cc.demo/service/cc/arm/login",
            data={
                "client_id": DEFAULT_CLIENT_ID,
                "api_key": DEFAULT_API_KEY,
                "phone_number": DEFAULT_PHONE_NUMBER,
            },
            timeout=5,
        )
        try:
            while now < ts("2025-02-20T00:00:00Z"):
                now += 7 * DAY - 3600 * 5  # not a whole week: the hour of day drifts
                emu.set_now(now)
                # Thulium: the last three local days, minute precision, the visible ones only
                lo = local(now - 3 * DAY, WARSAW, "%Y-%m-%d %H:%M")
                hi = local(now, WARSAW, "%Y-%m-%d %H:%M")
                want = [
                    r for r in connections if lo <= r["local"] <= hi and ts(r["visible_at"]) <= now
                ]
                assert thulium_count(emu, lo, hi) == len(want), now
                # Conpeek dialogs of the last three days (UTC, half-open)
                lo = local(now - 3 * DAY, dt.timezone.utc, "%Y-%m-%d %H:%M:%S")
                hi = local(now, dt.timezone.utc, "%Y-%m-%d %H:%M:%S")
                got = [
                    d["dialog_uuid"] for d in conpeek_ids(emu, "cdr_dialog", "start_time", lo, hi)
                ]
                want_d = [
                    r["key"][0]
                    for r in dialogs
                    if ts(r["visible_at"]) <= now and now - 3 * DAY <= ts(r["expected_utc"]) < now
                ]
                assert got == want_d, now
                # Conpeek closures delivered this week, read by closed_date
                week_lo = local(now - 7 * DAY, dt.timezone.utc, "%Y-%m-%d %H:%M:%S")
                closed = conpeek_ids(
                    emu, "voice_campaign_request_summary", "closed_date", week_lo, hi
                )
                assert all(s["state"] == "CLOSED" for s in closed)
                new = {s["id"] for s in closed} - seen_closed
                seen_closed |= new
                closures_per_week.append((now, len(new)))
                # ECSS: the last three local days in Helsinki, by tag
                lo = local(now - 3 * DAY, HELSINKI, "%Y/%m/%d %H:%M:%S")
                hi = local(now, HELSINKI, "%Y/%m/%d %H:%M:%S")
                want_c = [
                    r["key"][0]
                    for r in calls
                    if lo <= r["local"] <= hi and ts(r["visible_at"]) <= now
                ]
                assert ecss_refs(emu, ecss, lo, hi) == want_c, now
        finally:
            emu.set_now(None)
    # closures keep arriving in (almost) every week of the period, and weeks after it ends
    in_period = [
        n for at, n in closures_per_week if ts("2024-03-08T00:00:00Z") < at < ts(PERIOD[1])
    ]
    assert sum(n > 0 for n in in_period) >= len(in_period) - 1, closures_per_week
    late = [n for at, n in closures_per_week if at > ts("2025-01-20T00:00:00Z")]
    assert sum(late) > 0, closures_per_week
    # every closure read was delivered by then, and (nearly) all closed_date ones were read
    delivered = {r["key"][0] for r in summaries if r["closed_visible_at"]}
    assert seen_closed <= delivered
    assert len(seen_closed) > 0.95 * len(delivered)

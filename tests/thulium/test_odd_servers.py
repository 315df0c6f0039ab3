"""Thulium-shaped servers that bend the API: no ``count``, odd records, a count that
promises more than the server gives, each a loopback server (``harness.loopback``)."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from harness import run_tap
from harness.loopback import Answer, Seen, http_server

PageFn = Callable[[int, int], dict]


class PagingServer:
    """Answers ``GET /api/connections`` with ``page(offset, limit)`` and logs the offsets;
    every other stream is empty."""

    def __init__(self, page: PageFn) -> None:
        self.page = page
        self.offsets: list[int] = []
        self.url = ""

    def answer(self, seen: Seen) -> Answer:
        offset, limit = int(seen.query["offset"][0]), int(seen.query["limit"][0])
        if not seen.route.endswith("/connections"):
            return 200, "application/json", json.dumps({"count": 0, "result": []}), {}
        self.offsets.append(offset)
        return 200, "application/json", json.dumps(self.page(offset, limit)), {}


def config(url: str, **overrides: object) -> dict:
    return {
        "start_date": "2024-03-30T00:00:00Z",
        "end_date": "2024-03-30T12:00:00Z",
        "window_days": 1,
        "thulium": {"api_url": url, "username": "u", "password": "pw-Odd-1"},
        "max_tries": 2,
        "backoff_factor": 0.01,
        **overrides,
    }


def call(i: int, date: str = "2024-03-30 03:00") -> dict:
    return {"connection_id": f"c{i}", "date": date, "duration": 1, "billsec": 0}


@pytest.fixture
def serve() -> Iterator[Callable[[PageFn], PagingServer]]:
    """Starts a PagingServer on loopback; its ``url`` is the API's base."""
    with contextlib.ExitStack() as running:

        def start(page: PageFn) -> PagingServer:
            server = PagingServer(page)
            server.url = running.enter_context(http_server(server.answer)) + "/api"
            return server

        yield start


@pytest.mark.parametrize("concurrency", [1, 8])
def test_without_count_pages_to_the_first_short_page(serve, concurrency: int) -> None:
    calls = [call(i) for i in range(250)]
    server = serve(lambda offset, limit: {"result": calls[offset : offset + limit]})
    run = run_tap(config(server.url, max_concurrency=concurrency))
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(run.records["thulium_connections"]) == 250
    assert sorted(set(server.offsets)) == [0, 100, 200]


@pytest.mark.parametrize("count", [None, 20_000_000])
def test_a_count_the_pages_contradict_loses_nothing(serve, count: int | None) -> None:
    calls = [call(i) for i in range(250)]

    def page(offset: int, limit: int) -> dict:
        body: dict = {"result": calls[offset : offset + limit]}
        if count is not None:
            body["count"] = count
        return body

    server = serve(page)
    run = run_tap(config(server.url, max_concurrency=8))
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(run.records["thulium_connections"]) == 250
    assert len(server.offsets) < 30


def test_odd_records_follow_the_documented_rules(serve) -> None:
    odd = [
        call(1),  # ordinary, 02:00Z: first window
        {**call(2), "connection_id": None},  # null key: skipped, warned
        {**call(3), "connection_id": ""},  # empty key: skipped, warned
        {k: v for k, v in call(4).items() if k != "connection_id"},  # missing key
        {k: v for k, v in call(5).items() if k != "date"},  # no replication key: once
        call(6, "2024-03-29 10:00"),  # before the run: earlier runs cover it
        call(7, "2024-03-31 10:00"),  # after the run: the next run covers it
    ]
    server = serve(lambda offset, limit: {"count": len(odd), "result": odd[offset:][:limit]})
    run = run_tap(config(server.url, window_days=0.125))  # four windows, each sees all
    assert run.returncode == 0, run.stderr[-2000:]
    records = run.records["thulium_connections"]
    assert Counter(r["connection_id"] for r in records) == {"c1": 1, "c5": 1}
    assert "have no primary key connection_id: skipped" in run.stderr
    assert "have no date: emitted once in this run" in run.stderr
    report = next(line for line in run.stderr.splitlines() if "completeness:" in line)
    assert "windows=4, emitted=2, reread=0, repeats=3," in report  # c5 in windows 2-4
    assert "outside_run=8," in report  # c6 and c7, in each of the four windows
    assert "without_key=12," in report and "without_replication_key=1," in report
    assert "short_windows=0" in report


def test_a_window_short_of_the_api_count_is_a_warning(serve) -> None:
    calls = [call(i) for i in range(80)] + [call(i) for i in range(20)]  # 20 repeats
    server = serve(lambda offset, limit: {"count": 100, "result": calls[offset : offset + limit]})
    run = run_tap(config(server.url))
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(run.records["thulium_connections"]) == 80
    assert "the API counted 100 record(s), 80 distinct were received" in run.stderr
    report = next(line for line in run.stderr.splitlines() if "completeness:" in line)
    assert "repeats=20," in report and "short_windows=1" in report

"""Thulium-shaped servers that bend the API: no ``count``, odd records, a count that
promises more than the server gives. Small loopback servers written for the purpose."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from harness import run_tap

PageFn = Callable[[int, int], dict]


class PagingServer:
    """Answers ``GET /api/<stream>`` with ``page(offset, limit)``; logs the offsets."""

    def __init__(self, page: PageFn) -> None:
        self.offsets: list[int] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                offset, limit = int(query["offset"][0]), int(query["limit"][0])
                body = b"{}"
                if urlsplit(self.path).path.endswith("/connections"):
                    server.offsets.append(offset)
                    body = json.dumps(page(offset, limit)).encode()
                else:
                    body = json.dumps({"count": 0, "result": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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
    servers: list[PagingServer] = []

    def start(page: PageFn) -> PagingServer:
        servers.append(PagingServer(page))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


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

"""The baseline: a plain, sequential Thulium client (requests.Session + json).

Pages ``GET {api_url}/connections`` with ``limit=100`` / ``offset`` over ONE local
date range until the ``count`` the server reports (or an empty page), and writes every
record as a JSON line to ``--output`` (default ``/dev/null``). Deliberately naive: no
windows, no time-zone conversion (dates stay the local strings the API sends), no
retries, no state. On exit it prints one JSON line to stdout::

    {"records": 30000, "requests": 301, "count": 30000, "elapsed_s": 1.93}

It asks for ``include_tags``/``include_topics`` like the tap, so both get the same bytes.

With ``--workers N`` (N > 1) it reads the first page for the ``count``, then the other
pages N at a time (a session per thread) and writes them in offset order: the same
requests as the sequential loop, as fast as N connections to the server allow: what a
plain client reaches with the tap's ``max_concurrency`` in flight.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import IO, Any

import requests

PAGE_SIZE = 100


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-url", required=True, help="e.g. http://127.0.0.1:8765/thulium/api")
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--date-from", required=True, help='local wall time, "YYYY-MM-DD HH:MM"')
    parser.add_argument("--date-to", required=True, help="local wall time, inclusive")
    parser.add_argument("--output", default="/dev/null", help="JSON-lines file for the records")
    parser.add_argument(
        "--no-tags", action="store_true", help="do not ask for include_tags/include_topics"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument(
        "--workers", type=int, default=1, help="requests in flight after the first page"
    )
    return parser


def new_session(args: argparse.Namespace) -> requests.Session:
    session = requests.Session()
    session.auth = (args.username, args.password)
    return session


def query(args: argparse.Namespace) -> dict[str, str | int]:
    """The query of every page but its ``offset``."""
    params: dict[str, str | int] = {
        "date_from": args.date_from,
        "date_to": args.date_to,
        "limit": PAGE_SIZE,
    }
    if not args.no_tags:
        params["include_tags"] = "true"
        params["include_topics"] = "true"
    return params


def write_page(out: IO[str], body: dict[str, Any]) -> int:
    """A page's records as JSON lines; how many there were."""
    page = body.get("result") or []
    dumps = json.dumps
    for record in page:
        out.write(dumps(record, ensure_ascii=False))
        out.write("\n")
    return len(page)


def summary(records: int, requests_made: int, count: int, started: float) -> dict[str, float | int]:
    return {
        "records": records,
        "requests": requests_made,
        "count": count,
        "elapsed_s": round(time.perf_counter() - started, 3),
    }


def fetch_all(args: argparse.Namespace) -> dict[str, float | int]:
    """Page the whole range sequentially; return what was done."""
    started = time.perf_counter()
    session = new_session(args)
    url = args.api_url.rstrip("/") + "/connections"
    params = {**query(args), "offset": 0}
    records = requests_made = 0
    count = -1
    with open(args.output, "w", encoding="utf-8") as out:
        while True:
            response = session.get(url, params=params, timeout=args.timeout)
            requests_made += 1
            response.raise_for_status()
            body = response.json()
            count = int(body.get("count", 0))
            written = write_page(out, body)
            records += written
            params["offset"] = int(params["offset"]) + written
            if not written or int(params["offset"]) >= count:
                break
    return summary(records, requests_made, count, started)


def fetch_concurrently(args: argparse.Namespace) -> dict[str, float | int]:
    """The first page for the ``count``, then every other page ``args.workers`` at a
    time; records written in offset order."""
    started = time.perf_counter()
    local = threading.local()
    url = args.api_url.rstrip("/") + "/connections"
    base = query(args)

    def page_at(offset: int) -> dict[str, Any]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = new_session(args)
        response = session.get(url, params={**base, "offset": offset}, timeout=args.timeout)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    first = page_at(0)
    count = int(first.get("count", 0))
    records = requests_made = 0
    with (
        open(args.output, "w", encoding="utf-8") as out,
        ThreadPoolExecutor(args.workers) as pool,
    ):
        offsets = iter(range(PAGE_SIZE, count, PAGE_SIZE))
        # twice the workers submitted ahead: every worker busy, memory bounded
        ahead = deque(pool.submit(page_at, at) for at in islice(offsets, 2 * args.workers))

        def in_order() -> Iterator[dict[str, Any]]:
            yield first
            while ahead:
                body = ahead.popleft().result()
                ahead.extend(pool.submit(page_at, at) for at in islice(offsets, 1))
                yield body

        for body in in_order():
            requests_made += 1
            records += write_page(out, body)
    return summary(records, requests_made, count, started)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = fetch_concurrently(args) if args.workers > 1 else fetch_all(args)
    except (requests.RequestException, ValueError) as exc:
        print(f"plain_client: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
from typing import Any

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


def fetch_all(args: argparse.Namespace) -> dict[str, float | int]:
    """Page the whole range sequentially; return what was done."""
    started = time.perf_counter()
    session = requests.Session()
    session.auth = (args.username, args.password)
    url = args.api_url.rstrip("/") + "/connections"
    params: dict[str, str | int] = {
        "date_from": args.date_from,
        "date_to": args.date_to,
        "limit": PAGE_SIZE,
        "offset": 0,
    }
    if not args.no_tags:
        params["include_tags"] = "true"
        params["include_topics"] = "true"
    records = requests_made = 0
    count = -1
    dumps = json.dumps
    with open(args.output, "w", encoding="utf-8") as out:
        while True:
            response = session.get(url, params=params, timeout=args.timeout)
            requests_made += 1
            response.raise_for_status()
            body = response.json()
            page = body.get("result") or []
            count = int(body.get("count", 0))
            for record in page:
                out.write(dumps(record, ensure_ascii=False))
                out.write("\n")
            records += len(page)
            params["offset"] = int(params["offset"]) + len(page)
            if not page or int(params["offset"]) >= count:
                break
    return {
        "records": records,
        "requests": requests_made,
        "count": count,
        "elapsed_s": round(time.perf_counter() - started, 3),
    }


def fetch_concurrently(args: argparse.Namespace) -> dict[str, float | int]:
    """The first page for the ``count``, then every other page ``args.workers`` at a
    time; records written in offset order."""
    started = time.perf_counter()
    local = threading.local()
    url = args.api_url.rstrip("/") + "/connections"
    base: dict[str, str | int] = {
        "date_from": args.date_from,
        "date_to": args.date_to,
        "limit": PAGE_SIZE,
    }
    if not args.no_tags:
        base["include_tags"] = "true"
        base["include_topics"] = "true"

    def page_at(offset: int) -> dict[str, Any]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.auth = (args.username, args.password)
        response = session.get(url, params={**base, "offset": offset}, timeout=args.timeout)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    first = page_at(0)
    count = int(first.get("count", 0))
    records = requests_made = 0
    dumps = json.dumps
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
            page = body.get("result") or []
            for record in page:
                out.write(dumps(record, ensure_ascii=False))
                out.write("\n")
            records += len(page)
    return {
        "records": records,
        "requests": requests_made,
        "count": count,
        "elapsed_s": round(time.perf_counter() - started, 3),
    }


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

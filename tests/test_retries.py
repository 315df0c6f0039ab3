"""Retry-After is honoured by each request's own retry, not only by the 429 pause.

A 429 also pauses every request of the stream (``test_a_429_pauses_every_request_of_the
stream``), which would hide a retry that ignores Retry-After. A 503 with Retry-After has
no stream-wide pause: only the retry's own wait can honour it. A loopback server refuses
the first two requests that way, then answers an empty page.
"""

from __future__ import annotations

import itertools
import json

import pytest

from harness import run_tap
from harness.loopback import Answer, Seen, http_server

EMPTY_PAGE = {"thulium": {"count": 0, "result": []}, "conpeek": {"data": []}}


def _config(provider: str, url: str) -> dict:
    block = (
        {"api_url": url, "username": "u", "password": "retry-secret"}
        if provider == "thulium"
        else {"api_url": url, "api_key": "retry-secret"}
    )
    return {
        "start_date": "2024-03-30T00:00:00Z",
        "end_date": "2024-03-30T06:00:00Z",
        "window_days": 1,
        "max_concurrency": 1,
        "max_tries": 4,
        "backoff_factor": 0.05,  # what a retry would wait without Retry-After
        "backoff_max_wait": 1,
        provider: block,
    }


@pytest.mark.parametrize("provider", ["thulium", "conpeek"])
def test_a_503_with_retry_after_is_retried_after_that_long(provider: str) -> None:
    seen: list[Seen] = []

    def answer(request: Seen) -> Answer:
        seen.append(request)
        if len(seen) <= 2:
            return 503, "text/html", "<html>busy</html>", {"Retry-After": "1"}
        return 200, "application/json", json.dumps(EMPTY_PAGE[provider]), {}

    with http_server(answer) as url:
        run = run_tap(_config(provider, url), timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(seen) >= 3 and seen[0].path == seen[1].path == seen[2].path
    gaps = [b.at - a.at for a, b in itertools.pairwise(seen[:3])]
    assert min(gaps) >= 0.95, f"Retry-After: 1 not honoured: retried after {gaps}"

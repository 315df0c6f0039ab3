"""A corpus of broken answers: each ends in one clear error, exit 1, no secret, no traceback.

A canned HTTP server on loopback (``harness.loopback``) answers every request with one fixed response,
so each case is exactly the body a misbehaving server would send.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness import run_tap
from harness.loopback import Answer, Seen, http_server

SECRET = "Canned-Secret-Value-55"


def canned(status: int, body: str, content_type: str) -> Callable[[Seen], Answer]:
    """Every request answered with ``status`` and ``body`` (login answers 200 with a cookie)."""

    def answer(seen: Seen) -> Answer:
        if seen.path.endswith("/login"):
            cookie = {"Set-Cookie": "ECSS_SESSION=abc; Path=/"}
            return 200, "application/xml", "<out><response/></out>", cookie
        return status, content_type, body, {}

    return answer


BASE = {
    "start_date": "2024-03-30T00:00:00Z",
    "end_date": "2024-03-30T06:00:00Z",
    "max_tries": 2,
    "backoff_factor": 0.01,
}


def provider_config(provider: str, url: str) -> dict:
    if provider == "thulium":
        return {"thulium": {"api_url": url, "username": "u", "password": SECRET}}
    if provider == "conpeek":
        return {"conpeek": {"api_url": url, "api_key": SECRET}}
    return {
        "ecss": {
            "api_url": url,
            "domain": "d",
            "client_id": "c",
            "api_key": SECRET,
            "phone_number": "1",
            "timezone": "Europe/Helsinki",
        }
    }


CASES = [
    ("thulium", 200, "[]", "not the expected JSON"),
    ("thulium", 200, '{"count": 1}', "no 'result' list"),
    ("thulium", 200, '{"count": "many", "result": []}', "'count' is not a number"),
    ("thulium", 200, '{"errors": [{"code": 5, "message": "Bad filter"}]}', "Bad filter (code 5)"),
    (
        "thulium",
        200,
        '{"count": 1, "result": [{"connection_id": "1.1", "date": "yesterday"}]}',
        "cannot be read",
    ),
    (
        "thulium",
        400,
        '{"errors": [{"code": 400, "message": "date_from is invalid"}]}',
        "HTTP 400 Bad Request: date_from is invalid",
    ),
    ("thulium", 500, "<html>oops</html>", "gave up after 2 attempts"),
    ("thulium", 200, "", "not the expected JSON"),
    ("conpeek", 200, '{"data": {}}', "no 'data' list"),
    (
        "conpeek",
        400,
        '{"status": 400, "message": "Invalid filter"}',
        "Invalid filter (filter sent: [{",
    ),
    (
        "conpeek",
        200,
        '{"data": [{"dialog_uuid": "x", "start_time": "31/03/2024"}]}',
        "cannot be read",
    ),
    (
        "ecss",
        200,
        '<out><error code="12" cmd="operator_call_history">Unknown operator</error></out>',
        "ECSS error 12: Unknown operator",
    ),
    ("ecss", 200, "<out><response>", "not the expected XML"),
    ("ecss", 200, "<out><response/></out>", "no <response><history>"),
]


@pytest.mark.parametrize(("provider", "status", "body", "needle"), CASES)
def test_broken_answer_gives_one_clear_error(
    provider: str, status: int, body: str, needle: str
) -> None:
    kind = "application/xml" if provider == "ecss" else "application/json"
    with http_server(canned(status, body, kind)) as url:
        run = run_tap({**BASE, **provider_config(provider, url)}, timeout=60)
    assert run.returncode == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert SECRET not in run.stdout + run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert f"{provider} / {provider}_" in last, last
    assert needle in last, last
    assert "request:" in last

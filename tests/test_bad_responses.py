"""A corpus of broken answers: each ends in one clear error, exit 1, no secret, no traceback.

A tiny canned HTTP server on loopback answers every request with one fixed response,
so each case is exactly the body a misbehaving server would send.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness import run_tap

SECRET = "Canned-Secret-Value-55"


class CannedServer:
    """Answers every request with ``status`` and ``body`` (login answers 200 with a cookie)."""

    def __init__(self, status: int, body: str, content_type: str = "application/json") -> None:
        canned = (status, body.encode(), content_type)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                status, payload, kind = canned
                headers = {}
                if self.path.endswith("/login"):
                    status, payload, kind = 200, b"<out><response/></out>", "application/xml"
                    headers["Set-Cookie"] = "ECSS_SESSION=abc; Path=/"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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
    server = CannedServer(status, body, kind)
    try:
        run = run_tap({**BASE, **provider_config(provider, server.url)}, timeout=60)
    finally:
        server.close()
    assert run.returncode == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert SECRET not in run.stdout + run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert f"{provider} / {provider}_" in last, last
    assert needle in last, last
    assert "request:" in last

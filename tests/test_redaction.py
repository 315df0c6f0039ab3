"""Secrets never leave the tap, even when a server echoes them back.

The other tests that assert "no secret in the output" never put a secret where it could
leak: no server they talk to repeats what it was sent. Here loopback servers do exactly
that, in every form the tap itself sends a secret: raw (Conpeek's Authorization header),
base64 of ``user:password`` (Thulium's HTTP basic auth), URL-encoded (the ECSS login
form) and JSON-escaped (a websocket error frame). Each run must fail clearly, show that
something was redacted (``***``: the echo did reach the output), and contain the secret
in none of its forms.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable, Iterator
from html import escape
from urllib.parse import quote, quote_plus

import pytest

from emulator.ecss.websocket import Connection, WebSocketServer
from harness import run_tap
from harness.loopback import Answer, Seen, http_server

#: A secret with every character that some encoding changes: a quote, a slash, a
#: backslash, a space, and the URL specials + & = %.
SECRET = 'Echo"Se/cr\\et +&=%ok'
USERNAME = "api-user"


def secret_forms(secret: str, username: str = USERNAME) -> dict[str, str]:
    """Every way a secret can be written back: what the test looks for in the output."""
    return {
        "raw": secret,
        "url-encoded (form)": quote_plus(secret),
        "url-encoded (path)": quote(secret, safe=""),
        "json-escaped": json.dumps(secret)[1:-1],
        "json-escaped, slashes too": json.dumps(secret)[1:-1].replace("/", "\\/"),
        "python repr": repr(secret)[1:-1],
        "xml-escaped": escape(secret),
        "base64 user:password": base64.b64encode(f"{username}:{secret}".encode()).decode(),
    }


def assert_no_secret(run, secret: str = SECRET) -> None:
    """The run failed with one clear line, redacted something, leaked nothing."""
    output = run.stdout + run.stderr
    assert run.returncode == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr, run.stderr[-2000:]
    leaked = {name: form for name, form in secret_forms(secret).items() if form in output}
    assert not leaked, f"the secret leaked as {leaked}: {output[-2000:]}"
    assert "***" in run.stderr, f"nothing was redacted: did the echo arrive? {run.stderr[-2000:]}"


# ---------------------------------------------------------------------------- servers


@contextlib.contextmanager
def echo_websocket(status: int, text: str) -> Iterator[str]:
    """A websocket server answering every ECSS request frame with ``status`` and an
    ``<out><error>`` whose text is ``text`` (JSON form); yields its URL."""
    element = {
        "_name": "out",
        "_content": [
            {
                "_name": "error",
                "_attributes": {"code": str(status), "cmd": "operator_call_history"},
                "_content": text,
            }
        ],
    }
    payload = json.dumps([element], ensure_ascii=False)

    def on_message(conn: Connection, message: str) -> None:
        request_id = message[12:16]
        size = len(payload.encode())
        conn.send_text(f"01{size:010d}{request_id}{status:03d}\n{payload}")

    server = WebSocketServer(("127.0.0.1", 0), lambda handshake: None, on_message)
    server.start()
    try:
        yield f"ws://127.0.0.1:{server.port}"
    finally:
        server.stop()


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> Answer:
    return status, "application/json", json.dumps(body), headers or {}


def _xml(status: int, body: str, headers: dict[str, str] | None = None) -> Answer:
    return status, "application/xml", body, headers or {}


BASE = {
    "start_date": "2024-03-30T00:00:00Z",
    "end_date": "2024-03-30T06:00:00Z",
    "max_tries": 2,
    "backoff_factor": 0.01,
}


def thulium(url: str, password: object = SECRET) -> dict:
    return {**BASE, "thulium": {"api_url": url, "username": USERNAME, "password": password}}


def conpeek(url: str, api_key: object = SECRET) -> dict:
    return {**BASE, "conpeek": {"api_url": url, "api_key": api_key}}


def ecss(url: str, api_key: object = SECRET, **extra: str) -> dict:
    block = {
        "api_url": url,
        "domain": "d",
        "client_id": "c",
        "api_key": api_key,
        "phone_number": "1",
        "timezone": "Europe/Helsinki",
        **extra,
    }
    return {**BASE, "ecss": block}


# ---------------------------------------------------------------------------- HTTP


ECHOES: dict[str, tuple[Callable[[str], dict], Callable[[Seen], Answer]]] = {
    # Thulium's own error format, repeating the basic-auth header it got (base64)
    "thulium-401-errors-quote-the-authorization-header": (
        thulium,
        lambda seen: _json(401, {"errors": [{"code": 401, "message": seen.echo()}]}),
    ),
    # the same, decoded: "user:password"
    "thulium-401-errors-quote-user-and-password": (
        thulium,
        lambda seen: _json(
            401,
            {
                "errors": [
                    {
                        "code": 401,
                        "message": "bad credentials "
                        + base64.b64decode(seen.headers["Authorization"].split()[1]).decode(),
                    }
                ]
            },
        ),
    ),
    # a proxy's HTML page: the body itself is the message
    "thulium-401-html-page-quotes-the-request": (
        thulium,
        lambda seen: (401, "text/html", f"<html><pre>{seen.echo()}</pre></html>", {}),
    ),
    # Conpeek's message field: parsed from JSON, so the raw key
    "conpeek-401-message-quotes-the-key": (
        conpeek,
        lambda seen: _json(401, {"status": 401, "message": f"invalid key {seen.echo()}"}),
    ),
    # no message field: the tap quotes the JSON body, so the JSON-escaped key
    "conpeek-401-json-body-quotes-the-key-elsewhere": (
        conpeek,
        lambda seen: _json(401, {"status": 401, "echo": seen.headers.get("Authorization")}),
    ),
    # a 500 is retried: the key is in every retry warning, then in the final error
    "conpeek-500-retried-message-quotes-the-key": (
        conpeek,
        lambda seen: _json(500, {"status": 500, "message": seen.echo()}),
    ),
    # the ECSS login form (URL-encoded) echoed in the server's <error>
    "ecss-login-400-error-quotes-the-form": (
        ecss,
        lambda seen: _xml(
            400, f'<out><error code="400">bad form: {escape(seen.body)}</error></out>'
        ),
    ),
    "ecss-login-403-error-quotes-the-form": (
        ecss,
        lambda seen: _xml(
            403, f'<out><error code="403">refused: {escape(seen.body)}</error></out>'
        ),
    ),
}


@pytest.mark.parametrize("case", list(ECHOES))
def test_a_server_echoing_the_credentials_leaks_nothing(case: str) -> None:
    config, answer = ECHOES[case]
    with http_server(answer) as url:
        run = run_tap(config(url), timeout=60)
    assert_no_secret(run)


def test_a_secret_cut_by_the_body_snippet_leaks_nothing() -> None:
    body = "x" * 280 + " password " + SECRET + " end"  # the 300-character cut is mid-secret
    with http_server(lambda seen: (401, "text/html", body, {})) as url:
        run = run_tap(thulium(url), timeout=60)
    assert run.returncode == 1, run.stderr[-2000:]
    assert SECRET[:8] not in run.stdout + run.stderr, run.stderr[-1000:]


def _ecss_login_ok(seen: Seen) -> Answer:
    return _xml(200, "<out><response/></out>", {"Set-Cookie": "ECSS_SESSION=abc; Path=/"})


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (500, f"internal error, login key was {SECRET}"),  # retried: every warning quotes it
        (200, f"unknown operator for key {SECRET}"),  # an <error> answer: fatal
    ],
    ids=["status-500-retried", "status-200-error-answer"],
)
def test_a_websocket_error_echoing_the_key_leaks_nothing(status: int, text: str) -> None:
    with http_server(_ecss_login_ok) as url, echo_websocket(status, text) as ws_url:
        run = run_tap(ecss(url, transport="websocket", ws_url=ws_url), timeout=60)
    assert_no_secret(run)
    assert "ecss / ecss_operator_call_history" in run.stderr.strip().splitlines()[-1]


# ---------------------------------------------------------------------------- config


SECRET_VALUES = {
    "int": 918273645,
    "float": 91827.3645,
    "bool": True,
    "list": ["List-Secret-One", "List-Secret-Two"],
    "object": {"nested": "Object-Secret-Value"},
}


def _printed_forms(value: object) -> list[str]:
    """How a config error could show a secret value of any type."""
    if isinstance(value, dict):
        return [json.dumps(value), repr(value), *(_printed_forms(v)[0] for v in value.values())]
    if isinstance(value, list):
        return [json.dumps(value), repr(value), *(_printed_forms(v)[0] for v in value)]
    if isinstance(value, str):
        return list(secret_forms(value).values())
    return [json.dumps(value), repr(value), str(value)]


@pytest.mark.parametrize("value", list(SECRET_VALUES.values()), ids=list(SECRET_VALUES))
@pytest.mark.parametrize(
    ("config", "setting"),
    [(thulium, "thulium.password"), (conpeek, "conpeek.api_key"), (ecss, "ecss.api_key")],
    ids=["thulium", "conpeek", "ecss"],
)
@pytest.mark.parametrize("command", [(), ("--discover",)], ids=["sync", "discover"])
def test_a_secret_setting_of_the_wrong_type_is_named_not_printed(
    config: Callable[..., dict], setting: str, value: object, command: tuple[str, ...]
) -> None:
    run = run_tap(config("http://127.0.0.1:9", value), extra_args=command, timeout=60)
    output = run.stdout + run.stderr
    assert run.returncode == 1, output[-2000:]
    assert "Traceback" not in output
    assert setting in output, output  # named ...
    leaked = [form for form in _printed_forms(value) if form in output]
    assert not leaked, f"{leaked} printed: {output[-2000:]}"  # ... not printed

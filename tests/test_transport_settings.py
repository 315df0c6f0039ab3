"""The settings that bound and secure the transport: checked before any request, and
the warning for credentials over plain HTTP."""

from __future__ import annotations

import pytest

from harness import run_tap

SECRET = "pw-Transport-77"


def thulium(api_url: str) -> dict:
    return {"api_url": api_url, "username": "u", "password": SECRET}


@pytest.mark.parametrize(
    ("config", "needles"),
    [
        ({"thulium": thulium("http://127.0.0.1:9"), "max_response_mib": 0}, ["max_response_mib"]),
        ({"thulium": thulium("http://127.0.0.1:9"), "max_response_mib": -1}, ["max_response_mib"]),
        (
            {"thulium": thulium("http://127.0.0.1:9"), "ca_bundle": "/nonexistent/ca.pem"},
            ["ca_bundle", "/nonexistent/ca.pem"],
        ),
    ],
)
def test_transport_settings_are_checked_before_any_request(config: dict, needles: list) -> None:
    run = run_tap(config, extra_args=("--discover",))
    assert run.returncode == 1, run.stderr[-2000:]
    last = run.stderr.strip().splitlines()[-1]
    for needle in needles:
        assert needle in last, last
    assert "Traceback" not in run.stderr
    assert SECRET not in run.stdout + run.stderr


def test_plain_http_to_another_host_is_a_warning() -> None:
    # discovery sends no request: the warning comes from the settings alone
    run = run_tap(
        {
            "thulium": thulium("http://thulium.example.com/api"),
            "ecss": {
                "api_url": "https://ecss.example.com",
                "domain": "d",
                "client_id": "c",
                "api_key": SECRET,
                "phone_number": "1",
                "timezone": "UTC",
                "transport": "websocket",
                "ws_url": "ws://ecss.example.com:8091",
            },
        },
        extra_args=("--discover",),
    )
    assert run.returncode == 0, run.stderr[-2000:]
    warnings = [line for line in run.stderr.splitlines() if "unencrypted" in line]
    assert any("thulium.api_url" in line and "thulium.example.com" in line for line in warnings)
    assert any("ecss.ws_url" in line for line in warnings)
    assert not any("ecss.api_url" in line for line in warnings)  # https is fine


@pytest.mark.parametrize("url", ["http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9"])
def test_plain_http_to_this_machine_is_not_a_warning(url: str) -> None:
    run = run_tap({"thulium": thulium(url)}, extra_args=("--discover",))
    assert run.returncode == 0, run.stderr[-2000:]
    assert "unencrypted" not in run.stderr

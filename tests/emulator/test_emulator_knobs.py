"""Small runtime knobs other suites rely on: Thulium ``max_limit``, ECSS ``repeat_tag="aba"``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from lxml import etree

from emulator import EcssConfig, Emulator, ThuliumConfig
from emulator.ecss import DEFAULT_API_KEY, DEFAULT_CLIENT_ID, DEFAULT_PHONE_NUMBER
from emulator.thulium import DEFAULT_PASSWORD, DEFAULT_USERNAME

AUTH = (DEFAULT_USERNAME, DEFAULT_PASSWORD)
CREDS = {
    "client_id": DEFAULT_CLIENT_ID,
    "api_key": DEFAULT_API_KEY,
    "phone_number": DEFAULT_PHONE_NUMBER,
}
AUTUMN = ("2024/10/26 00:00:00", "2024/10/28 01:59:59")


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    config = ThuliumConfig(connections=500, max_limit=30)
    with Emulator(seed=3, thulium=config, ecss=EcssConfig(calls=400)) as server:
        yield server


def thulium_page(emu: Emulator, offset: int, limit: int = 100) -> dict:
    r = requests.get(
        f"{emu.thulium_api_url}/connections",
        params={"offset": offset, "limit": limit},
        auth=AUTH,
        timeout=5,
    )
    assert r.status_code == 200, r.text
    return r.json()


# -- Thulium max_limit -------------------------------------------------------------------


def test_thulium_max_limit_from_config_gives_short_pages_that_are_not_last(emu) -> None:
    first = thulium_page(emu, 0)
    assert len(first["result"]) == 30
    assert first["count"] == 500  # count still says more remain
    records: list[dict] = []
    while len(records) < first["count"]:
        page = thulium_page(emu, len(records))["result"]
        assert page, "a short page must not end the listing"
        records.extend(page)
    want = [row["key"][0] for row in emu.thulium.expected("connections")]
    assert [r["connection_id"] for r in records] == want


def test_thulium_max_limit_is_read_at_each_request(emu) -> None:
    try:
        emu.thulium.max_limit = 7
        assert len(thulium_page(emu, 0)["result"]) == 7
        r = requests.post(
            f"{emu.url}/_emulator/thulium/settings", json={"max_limit": 12}, timeout=5
        )
        assert r.status_code == 200 and r.json()["max_limit"] == 12
        assert len(thulium_page(emu, 0)["result"]) == 12
        assert len(thulium_page(emu, 0, limit=5)["result"]) == 5  # a smaller limit wins
        bad = requests.post(f"{emu.url}/_emulator/thulium/settings", json={"max_limit": 0})
        assert bad.status_code == 400
        assert emu.thulium.max_limit == 12
    finally:
        emu.thulium.max_limit = 30


def test_thulium_max_limit_defaults_to_100() -> None:
    assert ThuliumConfig().max_limit == 100
    with pytest.raises(ValueError, match="max_limit"):
        Emulator(thulium=ThuliumConfig(connections=10, max_limit=0))


# -- ECSS repeat_tag="aba" ----------------------------------------------------------------


def ecss_tags(emu: Emulator, pages: int) -> list[str | None]:
    """The tags of ``pages`` consecutive requests that each send back the last tag."""
    url = f"{emu.ecss_api_url}/cc.demo/service/cc/arm"
    tags: list[str | None] = []
    with requests.Session() as s:
        assert s.post(f"{url}/login", data=CREDS, timeout=5).status_code == 200
        tag: str | None = None
        for _ in range(pages):
            attrs = f'offset="0" limit="10" from_date="{AUTUMN[0]}" to_date="{AUTUMN[1]}"'
            if tag is not None:
                attrs += f' tag="{tag}"'
            body = f"<in><request><filters {attrs}/></request></in>"
            r = s.post(f"{url}/operator_call_history", data=body, timeout=5)
            root = etree.fromstring(r.content)
            assert root.find("error") is None, r.text
            tag = root.find("response/history").get("tag")
            tags.append(tag)
    return tags


def test_ecss_repeat_tag_aba_sends_a_b_a(emu) -> None:
    try:
        emu.ecss.set(repeat_tag="aba")
        a, b, third, fourth = ecss_tags(emu, 4)
        assert a and b and a != b
        assert third == a  # the request carrying B is answered with A
        assert fourth == b  # and a client that goes on cycles
    finally:
        emu.ecss.reset_settings()
    normal = ecss_tags(emu, 3)
    assert len(set(normal)) == 3


def test_ecss_repeat_tag_knob_values_are_checked(emu) -> None:
    with pytest.raises(ValueError, match="repeat_tag"):
        emu.ecss.set(repeat_tag="abc")
    r = requests.post(f"{emu.url}/_emulator/ecss/settings", json={"repeat_tag": "aba"}, timeout=5)
    try:
        assert r.status_code == 200 and r.json()["repeat_tag"] == "aba"
    finally:
        emu.ecss.reset_settings()
    assert EcssConfig(repeat_tag="aba").repeat_tag == "aba"

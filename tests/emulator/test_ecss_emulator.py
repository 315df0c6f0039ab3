"""The ECSS-10 emulator behaves like the vendor doc and the contract, over real HTTP and a
real websocket on loopback."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from emulator import EcssConfig, Emulator
from emulator.ecss import (
    ATTRIBUTES,
    COOKIE_NAME,
    DEFAULT_API_KEY,
    DEFAULT_CLIENT_ID,
    DEFAULT_PHONE_NUMBER,
)
from emulator.ecss.websocket import Connection, WebSocketServer

N = 3000
CREDS = {
    "client_id": DEFAULT_CLIENT_ID,
    "api_key": DEFAULT_API_KEY,
    "phone_number": DEFAULT_PHONE_NUMBER,
}
XSI = "http://www.w3.org/2001/XMLSchema-instance"
# Both 2024 DST edges of Europe/Helsinki, whole local days (the default data periods).
SPRING = ("2024/03/30 00:00:00", "2024/04/01 03:59:59")
AUTUMN = ("2024/10/26 00:00:00", "2024/10/28 01:59:59")
RESPONSE_RE = re.compile(r"^01(\d{10})(\d{4})(\d{3})(\n?)", re.DOTALL)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(seed=11, ecss=EcssConfig(calls=N)) as server:
        yield server


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "emu" in request.fixturenames:
        server = request.getfixturevalue("emu")
        server.faults.reset()
        server.ecss.reset_settings()


def arm(emu: Emulator, command: str) -> str:
    return f"{emu.ecss_api_url}/cc.demo/service/cc/arm/{command}"


@pytest.fixture
def session(emu: Emulator) -> Iterator[requests.Session]:
    with requests.Session() as s:
        r = s.post(arm(emu, "login"), data=CREDS, timeout=5)
        assert r.status_code == 200
        yield s


def filters_xml(**attrs: object) -> str:
    attrs.setdefault("offset", 0)
    attrs.setdefault("limit", 50)
    rendered = " ".join(f'{k}="{v}"' for k, v in attrs.items() if v is not None)
    return f"<in><request><filters {rendered}/></request></in>"


def history(s: requests.Session, emu: Emulator, **attrs: object) -> etree._Element:
    r = s.post(arm(emu, "operator_call_history"), data=filters_xml(**attrs), timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/xml")
    return etree.fromstring(r.content)


def error_of(root: etree._Element) -> tuple[str, str, str] | None:
    error = root.find("error")
    if error is None:
        return None
    return error.get("code"), error.get("cmd"), error.text or ""


def http_record(item: etree._Element) -> dict[str, Any]:
    record: dict[str, Any] = dict(item.attrib)
    for child in item:
        record[child.tag] = [grandchild.text for grandchild in child]
    return record


def http_page(root: etree._Element) -> tuple[list[dict[str, Any]], str | None]:
    assert error_of(root) is None, etree.tostring(root)
    hist = root.find("response/history")
    return [http_record(item) for item in hist.findall("call_history")], hist.get("tag")


def fetch_all_http(s: requests.Session, emu: Emulator, window: tuple[str, str], limit: int = 100):
    records: list[dict[str, Any]] = []
    tags: list[str | None] = []
    tag = None
    while True:
        root = history(s, emu, limit=limit, from_date=window[0], to_date=window[1], tag=tag)
        page, tag = http_page(root)
        records.extend(page)
        tags.append(tag)
        if tag is None:
            return records, tags
        assert len(tags) < 1000, "paging does not end"


def expected_in(emu: Emulator, window: tuple[str, str]) -> list[dict[str, Any]]:
    return [
        row["record"]
        for row in emu.ecss.expected()
        if window[0] <= row["record"]["start_time"] <= window[1]
    ]


# -- websocket helpers ------------------------------------------------------------------


def accept_key(key: str) -> str:
    """RFC 6455's ``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key``."""
    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    return base64.b64encode(digest).decode()


def ws_connect(emu: Emulator, cookie: str | None) -> websocket.WebSocket:
    return websocket.create_connection(
        emu.ecss.ws_url, cookie=f"{COOKIE_NAME}={cookie}" if cookie else None, timeout=10
    )


@pytest.fixture
def ws(emu: Emulator, session: requests.Session) -> Iterator[websocket.WebSocket]:
    conn = ws_connect(emu, session.cookies[COOKIE_NAME])
    yield conn
    conn.close()


def request_frame(request_id: int, attrs: dict[str, Any], newline: str = "\n") -> str:
    payload = json.dumps(
        [
            {
                "_name": "in",
                "_content": [
                    {
                        "_name": "request",
                        "_content": [{"_name": "filters", "_attributes": attrs}],
                    }
                ],
            }
        ],
        ensure_ascii=False,
    )
    return f"01{len(payload.encode()):010d}{request_id:04d}operator_call_history{newline}{payload}"


def parse_response(text: str) -> tuple[int, str, int, Any]:
    """(declared length, request id, status, JSON payload); checks the byte length."""
    m = RESPONSE_RE.match(text)
    assert m, text[:80]
    payload = text[m.end() :]
    declared = int(m.group(1))
    assert declared == len(payload.encode()), (declared, len(payload.encode()))
    return declared, m.group(2), int(m.group(3)), json.loads(payload)


def ws_call(ws: websocket.WebSocket, request_id: int, **attrs: Any) -> tuple[int, Any]:
    ws.send(request_frame(request_id, {k: str(v) for k, v in attrs.items() if v is not None}))
    _, rid, status, payload = parse_response(ws.recv())
    assert rid == f"{request_id:04d}"
    return status, payload


def json_page(payload: Any) -> tuple[list[dict[str, Any]], str | None]:
    (out,) = payload
    assert out["_name"] == "out"
    assert out["_attributes"]["xmlns:xs"] == XSI
    assert out["_attributes"]["xs:noNamespaceSchemaLocation"] == "operator_call_history.xsd"
    (response,) = out["_content"]
    assert response["_name"] == "response"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d", response["_attributes"]["timestamp"])
    (hist,) = response["_content"]
    assert hist["_name"] == "history"
    records = []
    for item in hist.get("_content", []):
        assert item["_name"] == "call_history"
        assert all(isinstance(v, str) for v in item["_attributes"].values())
        record: dict[str, Any] = dict(item["_attributes"])
        for child in item.get("_content", []):
            record[child["_name"]] = [g["_content"] for g in child.get("_content", [])]
        records.append(record)
    return records, hist.get("_attributes", {}).get("tag")


def json_error(payload: Any) -> tuple[str, str, str]:
    (out,) = payload
    (error,) = out["_content"]
    assert error["_name"] == "error"
    return error["_attributes"]["code"], error["_attributes"]["cmd"], error["_content"]


# -- login and sessions -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["form", "query"])
def test_login_sets_a_session_cookie(emu, how) -> None:
    with requests.Session() as s:
        kwargs = {"data": CREDS} if how == "form" else {"params": CREDS}
        r = s.post(arm(emu, "login"), timeout=5, **kwargs)
        assert r.status_code == 200
        assert re.fullmatch(rf"{COOKIE_NAME}=[0-9a-f]+; Path=/", r.headers["Set-Cookie"])
        assert etree.fromstring(r.content).find("response") is not None
        assert s.cookies[COOKIE_NAME]
        assert http_page(history(s, emu, limit=5))[0]


@pytest.mark.parametrize(
    "creds",
    [
        {**CREDS, "api_key": "wrong"},
        {**CREDS, "client_id": "other"},
        {**CREDS, "phone_number": "103"},
        {"client_id": DEFAULT_CLIENT_ID},
        {},
    ],
)
def test_wrong_credentials_answer_403_with_error(emu, creds) -> None:
    r = requests.post(arm(emu, "login"), data=creds, timeout=5)
    assert r.status_code == 403
    assert "Set-Cookie" not in r.headers
    code, cmd, text = error_of(etree.fromstring(r.content))
    assert (code, cmd) == ("403", "login")
    assert "Authorization failed" in text
    assert DEFAULT_API_KEY not in r.text


@pytest.mark.parametrize("cookie", [None, "deadbeef"])
def test_data_request_without_valid_session_is_403(emu, cookie) -> None:
    cookies = {COOKIE_NAME: cookie} if cookie else None
    r = requests.post(
        arm(emu, "operator_call_history"), data=filters_xml(), cookies=cookies, timeout=5
    )
    assert r.status_code == 403
    code, _, text = error_of(etree.fromstring(r.content))
    assert code == "403" and "session" in text


def test_expire_sessions_and_ttl(emu, session) -> None:
    assert http_page(history(session, emu, limit=1))[0]
    assert emu.ecss.expire_sessions() >= 1
    r = session.post(arm(emu, "operator_call_history"), data=filters_xml(), timeout=5)
    assert r.status_code == 403
    assert session.post(arm(emu, "login"), data=CREDS, timeout=5).status_code == 200
    assert http_page(history(session, emu, limit=1))[0]
    emu.ecss.set(session_ttl_seconds=0.3)
    assert session.post(arm(emu, "login"), data=CREDS, timeout=5).status_code == 200
    assert http_page(history(session, emu, limit=1))[0]
    time.sleep(0.35)
    r = session.post(arm(emu, "operator_call_history"), data=filters_xml(), timeout=5)
    assert r.status_code == 403


# -- records and paging -------------------------------------------------------------------


def test_tag_paging_visits_every_record_once_newest_first(emu, session) -> None:
    records, tags = fetch_all_http(session, emu, AUTUMN, limit=100)
    refs = [r["call_ref"] for r in records]
    assert len(refs) == len(set(refs))
    assert records == expected_in(emu, AUTUMN)
    assert len(records) > 500
    starts = [r["start_time"] for r in records]
    assert starts == sorted(starts, reverse=True)
    assert tags[-1] is None and all(tags[:-1])
    assert len(set(tags[:-1])) == len(tags) - 1
    for tag in tags[:-1]:
        assert not tag.isdigit()
        assert base64.b64decode(tag)[0] == 131  # an Erlang external term, like the real one


def test_last_page_exactly_full_has_no_tag(emu, session) -> None:
    window = (expected_in(emu, SPRING)[9]["start_time"], SPRING[1])
    total = len(expected_in(emu, window))
    records, tags = fetch_all_http(session, emu, window, limit=total)
    assert len(records) == total and tags == [None]
    records, tags = fetch_all_http(session, emu, window, limit=total - 1)
    assert len(records) == total and tags[0] and tags[1] is None


def test_records_carry_every_attribute_and_realistic_values(emu) -> None:
    rows = [row["record"] for row in emu.ecss.expected()]
    assert len(rows) == N
    for rec in rows:
        assert tuple(k for k in rec if k in ATTRIBUTES) == ATTRIBUTES
        for name in ("duration", "total_duration", "waiting_duration", "talk_duration"):
            assert rec[name].isdigit()
        assert int(rec["total_duration"]) == int(rec["waiting_duration"]) + int(
            rec["talk_duration"]
        )
        assert rec["direction"] in ("in", "out")
        assert rec["digits"] == DEFAULT_PHONE_NUMBER
        assert rec["call_ref"].isdigit()
        assert 0 <= len(rec["url_list"]) <= 2
        assert (rec["answer_time"] == "") == (rec["talk_duration"] == "0")
    refs = [r["call_ref"] for r in rows]
    assert len(set(refs)) == N
    lengths = Counter(len(r) for r in refs)
    assert any(n <= 10 for n in lengths) and lengths[19] > 0
    for name in ("answer_time", "queue_id", "remote_agent_id", "call_record", "display_name"):
        values = Counter(r[name] == "" for r in rows)
        assert values[True] and values[False], name
    assert Counter(len(r["url_list"]) for r in rows).keys() == {0, 1, 2}
    for name in ("ss_list", "success_faxes", "failed_faxes"):
        assert any(name in r for r in rows), name
    assert any(not r["remote_display_name"].isascii() for r in rows)
    assert {r["release_reason"] for r in rows} == {
        "released_by_a",
        "released_by_b",
        "released_by_system",
    }


def test_lists_render_as_xml_children(emu, session) -> None:
    records, _ = fetch_all_http(session, emu, AUTUMN)
    assert all("url_list" in r for r in records)
    with_ss = next(r for r in records if "ss_list" in r)
    assert with_ss["ss_list"] and all(with_ss["ss_list"])
    fax = next(r for r in records if "success_faxes" in r or "failed_faxes" in r)
    urls = fax.get("success_faxes", []) + fax.get("failed_faxes", [])
    assert urls and all(u.startswith("http://") for u in urls)


def test_both_bounds_are_inclusive_to_the_second(emu, session) -> None:
    rows = expected_in(emu, AUTUMN)
    start = rows[len(rows) // 2]["start_time"]
    same = [r["call_ref"] for r in rows if r["start_time"] == start]
    page, tag = http_page(history(session, emu, limit=100, from_date=start, to_date=start))
    assert [r["call_ref"] for r in page] == same and tag is None
    later = (dt.datetime.strptime(start, "%Y/%m/%d %H:%M:%S") + dt.timedelta(seconds=1)).strftime(
        "%Y/%m/%d %H:%M:%S"
    )
    page, _ = http_page(history(session, emu, limit=100, from_date=later, to_date=later))
    assert all(r["call_ref"] not in same for r in page)


def test_repeated_autumn_hour_covers_both_occurrences(emu, session) -> None:
    window = ("2024/10/27 03:00:00", "2024/10/27 03:59:59")
    records, _ = fetch_all_http(session, emu, window)
    true_utc = {row["key"][0]: row["true_utc"] for row in emu.ecss.expected()}
    instants = [true_utc[r["call_ref"]] for r in records]
    assert any(t < "2024-10-27T01:00:00" for t in instants)  # 03:xx EEST
    assert any(t >= "2024-10-27T01:00:00" for t in instants)  # 03:xx EET
    assert len(records) == len(expected_in(emu, window))


def test_expected_fields_follow_the_first_occurrence_convention(emu) -> None:
    rows = emu.ecss.expected()
    second = [r for r in rows if r["true_utc"].startswith("2024-10-27T01:")]
    assert second
    for row in second:  # 03:xx EET is taken as 03:xx EEST: one hour earlier
        assert row["local"].startswith("2024/10/27 03:")
        expected = dt.datetime.fromisoformat(row["expected_utc"])
        assert dt.datetime.fromisoformat(row["true_utc"]) - expected == dt.timedelta(hours=1)
    for row in rows:
        fields = row["expected_fields"]
        assert fields["start_time"].endswith("+00:00")
        assert (fields["answer_time"] is None) == (row["record"]["answer_time"] == "")
        if not row["local"].startswith("2024/10/27 03:"):
            assert fields["start_time"] == row["true_utc"]
    assert not any(r["local"].startswith("2024/03/31 03:") for r in rows)  # the spring gap


def test_limit_is_clamped_to_max_limit(emu, session) -> None:
    page, tag = http_page(history(session, emu, limit=500, from_date=AUTUMN[0]))
    assert len(page) == 100 and tag
    emu.ecss.set(max_limit=7)
    page, _ = http_page(history(session, emu, limit=50))
    assert len(page) == 7


def test_offset_skips_records(emu, session) -> None:
    first, _ = http_page(history(session, emu, limit=10, from_date=AUTUMN[0], to_date=AUTUMN[1]))
    skipped, _ = http_page(
        history(session, emu, offset=4, limit=6, from_date=AUTUMN[0], to_date=AUTUMN[1])
    )
    assert skipped == first[4:]


def test_repeat_tag_knob_returns_the_previous_tag(emu, session) -> None:
    emu.ecss.set(repeat_tag=True)
    _, tag1 = http_page(history(session, emu, limit=5, from_date=AUTUMN[0], to_date=AUTUMN[1]))
    page2, tag2 = http_page(
        history(session, emu, limit=5, from_date=AUTUMN[0], to_date=AUTUMN[1], tag=tag1)
    )
    assert page2 and tag2 == tag1
    emu.ecss.set(repeat_tag=1)  # a count: once, then correct tags again
    _, again = http_page(history(session, emu, limit=5, tag=tag1))
    _, fresh = http_page(history(session, emu, limit=5, tag=tag1))
    assert again == tag1 and fresh not in (None, tag1)


@pytest.mark.parametrize(
    ("attrs", "words"),
    [
        ({"tag": "garbled!!"}, "tag"),
        ({"tag": base64.b64encode(b"\x83h\x02d\x00\x03tagj").decode()}, "tag"),
        ({"tag": "MTIz"}, "tag"),
        ({"from_date": "2024-10-26 00:00:00"}, "from_date"),
        ({"to_date": "2024/10/26"}, "to_date"),
        ({"from_date": "2024/13/26 00:00:00"}, "from_date"),
        ({"limit": "many"}, "limit"),
        ({"offset": -1}, "offset"),
    ],
)
def test_bad_filters_answer_an_error_inside_a_200(emu, session, attrs, words) -> None:
    code, cmd, text = error_of(history(session, emu, **attrs))
    assert (code, cmd) == ("400", "operator_call_history")
    assert words in text


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    raw=st.one_of(
        st.binary(max_size=80).map(lambda b: base64.b64encode(b"\x83" + b).decode()),
        st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(
            str.strip
        ),
    )
)
def test_any_garbled_tag_is_a_400_error_never_a_crash(emu, session, raw) -> None:
    attrs = {"offset": "0", "limit": "5", "tag": raw}
    r = session.post(
        arm(emu, "operator_call_history"),
        data=_filters_doc(attrs),
        timeout=5,
    )
    assert r.status_code == 200
    code, _, text = error_of(etree.fromstring(r.content))
    assert code == "400" and "tag" in text


def _filters_doc(attrs: dict[str, str]) -> bytes:
    root = etree.Element("in")
    etree.SubElement(etree.SubElement(root, "request"), "filters", attrs)
    return etree.tostring(root)


def test_tag_for_another_window_is_rejected(emu, session) -> None:
    _, tag = http_page(history(session, emu, limit=5, from_date=AUTUMN[0], to_date=AUTUMN[1]))
    code, _, text = error_of(history(session, emu, limit=5, from_date=SPRING[0], tag=tag))
    assert code == "400" and "from_date" in text


@pytest.mark.parametrize(
    "body", [b"<in><request><filters", b"not xml at all", b"", b"<in><other/></in>"]
)
def test_malformed_xml_answers_an_error_inside_a_200(emu, session, body) -> None:
    r = session.post(arm(emu, "operator_call_history"), data=body, timeout=5)
    assert r.status_code == 200
    code, cmd, text = error_of(etree.fromstring(r.content))
    assert (code, cmd) == ("400", "operator_call_history")
    assert text


def test_unknown_path_and_domain_answer_404_xml(emu, session) -> None:
    r = session.post(f"{emu.ecss_api_url}/other.domain/service/cc/arm/login", data=CREDS)
    assert r.status_code == 404
    assert error_of(etree.fromstring(r.content))[0] == "404"


def test_insert_while_paging_key_cursor_is_stable_offset_cursor_shifts() -> None:
    config = EcssConfig(calls=400, insert_while_paging=2)
    with Emulator(seed=5, ecss=config) as emu, requests.Session() as s:
        s.post(arm(emu, "login"), data=CREDS, timeout=5)
        before = expected_in(emu, AUTUMN)
        records, _ = fetch_all_http(s, emu, AUTUMN, limit=20)
        assert records == before  # inserts land before the cursor: not seen, no dups
        assert len(expected_in(emu, AUTUMN)) > len(before)
        emu.ecss.set(tag_cursor="offset")
        records, _ = fetch_all_http(s, emu, AUTUMN, limit=20)
        counts = Counter(r["call_ref"] for r in records)
        assert max(counts.values()) > 1  # every later page is pushed down


def test_insert_calls_and_control_endpoints(emu, session) -> None:
    inserted = emu.ecss.insert_calls(3, ("2024-10-26T10:00:00Z", "2024-10-26T10:10:00Z"))
    assert all(r["start_time"].startswith("2024/10/26 13:0") for r in inserted)
    refs = {r["call_ref"] for r in records_of(fetch_all_http(session, emu, AUTUMN))}
    assert {r["call_ref"] for r in inserted} <= refs
    r = session.post(
        f"{emu.url}/_emulator/ecss/insert",
        json={"n": 2, "from": "2024-10-26T11:00:00Z", "to": "2024-10-26T11:05:00Z"},
    )
    assert r.json()["inserted"] == 2
    rows = session.get(f"{emu.url}/_emulator/ecss/expected").json()
    assert len(rows) == N + 5 and rows[0]["key"] == [rows[0]["record"]["call_ref"]]
    current = session.post(f"{emu.url}/_emulator/ecss/settings", json={"repeat_tag": 2}).json()
    assert current["repeat_tag"] == 2
    bad = session.post(f"{emu.url}/_emulator/ecss/settings", json={"nope": 1})
    assert bad.status_code == 400
    assert session.post(f"{emu.url}/_emulator/ecss/expire_sessions").json()["expired"] >= 1
    assert session.post(arm(emu, "operator_call_history"), data=filters_xml()).status_code == 403


def records_of(result: tuple[list[dict[str, Any]], list[str | None]]) -> list[dict[str, Any]]:
    return result[0]


def test_same_seed_same_data() -> None:
    a = Emulator(seed=3, ecss=EcssConfig(calls=300)).ecss.expected()
    b = Emulator(seed=3, ecss=EcssConfig(calls=300)).ecss.expected()
    c = Emulator(seed=4, ecss=EcssConfig(calls=300)).ecss.expected()
    assert a == b and a != c


def test_shared_faults_apply_to_http(emu, session) -> None:
    emu.faults.set(rate_limit_next=1)
    r = session.post(arm(emu, "operator_call_history"), data=filters_xml(), timeout=5)
    assert r.status_code == 429 and r.headers["Retry-After"]
    assert error_of(etree.fromstring(r.content))[0] == "429"


# -- websocket ----------------------------------------------------------------------------


def test_ws_handshake_needs_the_session_cookie(emu, session) -> None:
    for cookie in (None, "nope"):
        with pytest.raises(websocket.WebSocketBadStatusException) as info:
            ws_connect(emu, cookie)
        assert info.value.status_code == 403
    ws_connect(emu, session.cookies[COOKIE_NAME]).close()


def test_ws_raw_handshake_and_unmasked_frame_is_a_protocol_error(emu, session) -> None:
    host, port = emu.ecss.ws_url.removeprefix("ws://").split(":")
    key = base64.b64encode(b"0123456789abcdef").decode()
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            (
                f"GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Cookie: {COOKIE_NAME}={session.cookies[COOKIE_NAME]}\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1024)
        assert head.startswith(b"HTTP/1.1 101")
        assert f"Sec-WebSocket-Accept: {accept_key(key)}".encode() in head
        assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        sock.sendall(b"\x81\x02hi")  # not masked
        frame = sock.recv(64)
        assert frame[0] == 0x88 and struct.unpack(">H", frame[2:4])[0] == 1002


def test_ws_frame_format_request_id_and_utf8_length(emu, ws) -> None:
    ws.send(request_frame(12, {"limit": "50"}))
    text = ws.recv()
    declared, rid, status, payload = parse_response(text)
    assert (rid, status) == ("0012", 200)
    assert text[19] == "\n"  # default: newline between header and payload
    records, tag = json_page(payload)
    assert len(records) == 50 and tag
    assert any(not r["remote_display_name"].isascii() for r in records)
    assert declared > len(text[20:])  # counts bytes, not characters
    for rid_in in (1, 9999, 0):
        status, payload = ws_call(ws, rid_in, limit=1)
        assert status == 200


@pytest.mark.parametrize("newline", ["", "\n", "\r\n"])
def test_ws_newline_is_optional_in_requests(emu, ws, newline) -> None:
    ws.send(request_frame(7, {"limit": "3"}, newline=newline))
    _, rid, status, payload = parse_response(ws.recv())
    assert (rid, status) == ("0007", 200) and len(json_page(payload)[0]) == 3


def test_ws_response_without_newline_and_fragmented(emu, ws) -> None:
    emu.ecss.set(ws_newline=False, ws_fragment_bytes=1000)
    status, payload = ws_call(ws, 3, limit=100)
    assert status == 200 and len(json_page(payload)[0]) == 100
    emu.ecss.set(ws_fragment_bytes=0, max_limit=200)
    ws.send(request_frame(4, {"limit": "150"}))  # ~90 KB: a 64-bit frame length
    text = ws.recv()
    assert text[19] == "[" and len(text.encode()) > 65535
    assert parse_response(text)[2] == 200


def test_ws_fragmented_and_large_requests_and_ping(emu, ws) -> None:
    message = request_frame(21, {"limit": "2", "display_name_b": "я" * 40000}).encode()
    ws.send_frame(websocket.ABNF(0, 0, 0, 0, websocket.ABNF.OPCODE_TEXT, 1, message[:5]))
    ws.ping(b"between")  # a control frame inside a fragmented message
    ws.send_frame(websocket.ABNF(0, 0, 0, 0, websocket.ABNF.OPCODE_CONT, 1, message[5:70000]))
    ws.send_frame(websocket.ABNF(1, 0, 0, 0, websocket.ABNF.OPCODE_CONT, 1, message[70000:]))
    opcode, frame = ws.recv_data_frame(True)
    assert opcode == websocket.ABNF.OPCODE_PONG and frame.data == b"between"
    _, rid, status, payload = parse_response(ws.recv())
    assert (rid, status) == ("0021", 200) and len(json_page(payload)[0]) == 2


def test_ws_and_http_give_the_same_records(emu, session, ws) -> None:
    http_records, http_tags = fetch_all_http(session, emu, AUTUMN, limit=100)
    ws_records: list[dict[str, Any]] = []
    ws_tags: list[str | None] = []
    tag = None
    for request_id in range(1, 1000):
        status, payload = ws_call(
            ws, request_id, offset=0, limit=100, from_date=AUTUMN[0], to_date=AUTUMN[1], tag=tag
        )
        assert status == 200
        page, tag = json_page(payload)
        ws_records.extend(page)
        ws_tags.append(tag)
        if tag is None:
            break
    assert ws_records == http_records
    assert ws_tags == http_tags


@pytest.mark.parametrize(
    ("frame", "status", "words"),
    [
        ("0100000000050001operator_call_history\n[{}]", 400, "header says"),
        ("0100000000020001operator_call_history\n{}", 400, "Invalid request"),
        ("0100000000030001operator_call_history\n[{x", 400, "JSON"),
        ("0100000000020001no_such_command\n[]", 404, "no_such_command"),
        ("hello", 400, "Malformed frame"),
    ],
)
def test_ws_bad_requests_answer_error_status(emu, ws, frame, status, words) -> None:
    ws.send(frame)
    _, _, got, payload = parse_response(ws.recv())
    assert got == status
    code, _, text = json_error(payload)
    assert code == str(status) and words in text


def test_ws_length_counts_utf8_bytes_in_requests(emu, ws) -> None:
    payload = json.dumps(
        [
            {
                "_name": "in",
                "_content": [
                    {
                        "_name": "request",
                        "_content": [
                            {
                                "_name": "filters",
                                "_attributes": {"limit": "1", "display_name": "Ёж"},
                            }
                        ],
                    }
                ],
            }
        ],
        ensure_ascii=False,
    )
    ws.send(f"01{len(payload):010d}0005operator_call_history{payload}")  # characters: wrong
    assert parse_response(ws.recv())[2] == 400
    ws.send(f"01{len(payload.encode()):010d}0006operator_call_history{payload}")
    assert parse_response(ws.recv())[2] == 200


def test_ws_errors_for_tags_and_session_expiry(emu, session, ws) -> None:
    status, payload = ws_call(ws, 1, limit=5, tag="garbage")
    assert status == 400 and json_error(payload)[0] == "400"
    emu.ecss.expire_sessions()
    status, payload = ws_call(ws, 2, limit=5)
    assert status == 403
    assert json_error(payload)[:2] == ("403", "operator_call_history")


def test_ws_malformed_and_drop_knobs(emu, ws) -> None:
    emu.ecss.set(ws_malformed_next=2)
    ws.send(request_frame(1, {"limit": "2"}))
    wrong_length = ws.recv()
    m = RESPONSE_RE.match(wrong_length)
    assert m and int(m.group(1)) != len(wrong_length[m.end() :].encode())
    ws.send(request_frame(2, {"limit": "2"}))
    assert not ws.recv().startswith("01")
    assert ws_call(ws, 3, limit=2)[0] == 200  # the connection still works
    emu.ecss.set(ws_drop_next=1)
    ws.send(request_frame(4, {"limit": "2"}))
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        ws.recv()


def test_ws_server_can_send_raw_bytes_for_framing_faults() -> None:
    """The path a framing fault takes: bytes no library would frame for us (here a binary
    frame that is not UTF-8) go straight onto the socket, and the connection lives on."""

    def on_message(conn: Connection, text: str) -> None:
        conn.send_raw(b"\x82\x02\xff\xfe")
        conn.send_text(text)

    server = WebSocketServer(("127.0.0.1", 0), lambda handshake: None, on_message)
    server.start()
    try:
        client = websocket.create_connection(f"ws://127.0.0.1:{server.port}", timeout=5)
        client.send("echo")
        assert client.recv_data() == (websocket.ABNF.OPCODE_BINARY, b"\xff\xfe")
        assert client.recv() == "echo"
        client.close()
    finally:
        server.stop()


def test_ws_consults_the_shared_fault_injector_and_logs(emu, ws) -> None:
    emu.clear_requests_log()
    emu.faults.set(rate_limit_next=1, path_contains="/ecss/ws/")
    status, payload = ws_call(ws, 8, limit=1)
    assert status == 429 and json_error(payload)[0] == "429"
    assert ws_call(ws, 9, limit=1)[0] == 200
    entries = [e for e in emu.requests_log if e["method"] == "WS"]
    assert [(e["status"], e["fault"]) for e in entries] == [(429, "rate_limit"), (200, None)]
    assert entries[0]["path"] == "/ecss/ws/operator_call_history"


def test_restart_keeps_ports_data_and_sessions() -> None:
    emu = Emulator(seed=2, ecss=EcssConfig(calls=200))
    with emu:
        ws_url, api_url = emu.ecss.ws_url, emu.ecss_api_url
        with requests.Session() as s:
            s.post(arm(emu, "login"), data=CREDS, timeout=5)
            before, _ = fetch_all_http(s, emu, AUTUMN)
            cookie = s.cookies[COOKIE_NAME]
            conn = ws_connect(emu, cookie)
            emu.stop()
            with pytest.raises((websocket.WebSocketException, OSError)):
                conn.send(request_frame(1, {"limit": "1"}))
                conn.recv()
            emu.start()
            assert (emu.ecss.ws_url, emu.ecss_api_url) == (ws_url, api_url)
            after, _ = fetch_all_http(s, emu, AUTUMN)
            assert after == before
            conn = ws_connect(emu, cookie)
            assert ws_call(conn, 1, limit=1)[0] == 200
            conn.close()


def test_describe_lists_connection_details(emu) -> None:
    info = emu.describe()["ecss"]
    assert info == {
        "api_url": emu.url + "/ecss",
        "domain": "cc.demo",
        "client_id": DEFAULT_CLIENT_ID,
        "api_key": DEFAULT_API_KEY,
        "phone_number": DEFAULT_PHONE_NUMBER,
        "ws_url": emu.ecss.ws_url,
        "timezone": "Europe/Helsinki",
    }


@pytest.mark.slow
def test_a_million_calls_generate_and_page_fast() -> None:
    started = time.monotonic()
    emu = Emulator(seed=1, ecss=EcssConfig(calls=1_000_000))
    assert time.monotonic() - started < 45
    with emu, requests.Session() as s:
        s.post(arm(emu, "login"), data=CREDS, timeout=5)
        started = time.monotonic()
        tag = None
        for _ in range(5):
            root = history(s, emu, limit=100, from_date=SPRING[0], to_date=AUTUMN[1], tag=tag)
            page, tag = http_page(root)
            assert len(page) == 100 and tag
        page, _ = http_page(history(s, emu, offset=300_000, limit=100))
        assert len(page) == 100
        assert time.monotonic() - started < 3

"""ECSS frame codec and the XML <-> JSON forms: examples from the docs and properties."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from tap_callcenter.ecss import frames
from tap_callcenter.ecss.xml import (
    EcssErrorAnswer,
    build_request,
    call_record,
    element_to_json,
    json_to_element,
    parse_xml,
    read_answer,
)


def encode_response(request_id: int, status: int, payload: str) -> str:
    """The server's side of the framing, from the contract (not the tap's code)."""
    size = len(payload.encode("utf-8"))
    return f"01{size:010d}{request_id:04d}{status:03d}{payload}"


def decode_request(text: str) -> tuple[int, str, str]:
    """(request id, command, payload) of a request frame, from the contract."""
    size, request_id = int(text[2:12]), int(text[12:16])
    command, _, payload = text[16:].partition("\n")
    assert len(payload.encode("utf-8")) == size, (size, payload)
    return request_id, command, payload


DOC_REQUEST = """[
{
"_name": "in",
"_content": [
{
"_name": "request",
"_content": [
{
"_name": "filters",
"_attributes": {
"limit": "50"
}
}
]
}
]
}
]"""


def test_request_frame_matches_the_docs_example_header() -> None:
    # the docs' request header: 01, 10-digit length, 4-digit id 0012, the command
    # (the docs' 159 counts the indentation their rendering lost)
    frame = frames.encode_request(12, "operator_call_history", DOC_REQUEST)
    assert frame.startswith(f"01{len(DOC_REQUEST):010d}0012operator_call_history\n")
    assert decode_request(frame) == (12, "operator_call_history", DOC_REQUEST)


@pytest.mark.parametrize("separator", ["", "\n", "\r\n"])
def test_response_frame_with_or_without_newline(separator: str) -> None:
    payload = '[{"_name": "out", "_content": [{"_name": "response"}]}]'
    text = f"01{len(payload):010d}0012200{separator}{payload}"
    frame = frames.decode_response(text)
    assert (frame.request_id, frame.status, frame.payload) == (12, 200, payload)


def test_length_counts_utf8_bytes() -> None:
    payload = '[{"_name": "out", "_attributes": {"remote_display_name": "Оператор 1"}}]'
    frame = encode_response(7, 200, payload)
    assert frame[2:12] == f"{len(payload.encode('utf-8')):010d}"
    assert frames.decode_response(frame).payload == payload


@pytest.mark.parametrize(
    "text",
    ["", "02000000000100012200[]", "0100000000990012200[]", "01abc", "0100000000020012200"],
)
def test_malformed_frames_are_rejected(text: str) -> None:
    with pytest.raises(frames.FrameError):
        frames.decode_response(text)


@given(
    st.integers(min_value=0, max_value=9999),
    st.integers(min_value=100, max_value=599),
    st.text(max_size=200),
    st.sampled_from(["", "\n"]),
)
def test_response_codec_round_trips(request_id: int, status: int, payload: str, sep: str) -> None:
    frame = encode_response(request_id, status, payload)
    frame = frame[:19] + sep + frame[19:]
    decoded = frames.decode_response(frame)
    assert (decoded.request_id, decoded.status, decoded.payload) == (request_id, status, payload)


@given(st.integers(min_value=0, max_value=9999), st.text(max_size=200))
def test_request_codec_round_trips(request_id: int, payload: str) -> None:
    decoded = decode_request(frames.encode_request(request_id, "operator_call_history", payload))
    assert decoded == (request_id, "operator_call_history", payload)


def test_docs_json_request_is_the_xml_request() -> None:
    built = element_to_json(build_request({"limit": "50"}))
    assert [built] == json.loads(DOC_REQUEST)
    assert etree.tostring(json_to_element(json.loads(DOC_REQUEST))) == etree.tostring(
        build_request({"limit": "50"})
    )


ANSWER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<out xmlns:xs="http://www.w3.org/2001/XMLSchema-instance" xs:noNamespaceSchemaLocation="operator_call_history.xsd">
<response timestamp="2020/12/10 14:25:53"><history tag="g2gEZAAD">
<call_history total_duration="13" waiting_duration="7" talk_duration="6" release_reason="released_by_system"
 digits="102" remote_digits="101" call_ref="537644738" duration="5" release_time="2020/12/10 14:20:45"
 answer_time="2020/12/10 14:20:39" start_time="2020/12/10 14:20:32" direction="in" call_record=""
 remote_display_name="Оператор 1" display_name="" remote_agent_id="" queue_id="">
<url_list><url>http://rec/1.wav</url><url>http://rec/2.wav</url></url_list></call_history>
<call_history total_duration="4" waiting_duration="4" talk_duration="0" digits="102" call_ref="613295627"
 duration="0" release_time="2020/12/10 14:20:54" answer_time="" start_time="2020/12/10 14:20:50" direction="in"
 remote_display_name="x" display_name=""><url_list/></call_history>
</history></response></out>""".encode()


def test_answer_parses_into_records_with_lists() -> None:
    page = read_answer(parse_xml(ANSWER_XML))
    assert page.tag == "g2gEZAAD"
    assert [r["call_ref"] for r in page.records] == ["537644738", "613295627"]
    assert page.records[0]["url_list"] == ["http://rec/1.wav", "http://rec/2.wav"]
    assert page.records[1]["url_list"] == []


def test_json_form_of_an_answer_gives_identical_records() -> None:
    root = parse_xml(ANSWER_XML)
    via_json = read_answer(json_to_element([element_to_json(root)]))
    assert via_json == read_answer(root)


def test_error_answer_reports_code_and_text() -> None:
    with pytest.raises(EcssErrorAnswer) as info:
        read_answer(
            parse_xml(b'<out><error code="400" cmd="operator_call_history">bad date</error></out>')
        )
    assert info.value.code == "400"
    assert "bad date" in str(info.value) and "cmd=operator_call_history" in str(info.value)


def test_malformed_xml_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not well-formed"):
        parse_xml(b"<out><response>")


names = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
values = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)


@st.composite
def call_elements(draw) -> etree._Element:
    element = etree.Element("call_history")
    for name, value in draw(st.dictionaries(names, values, max_size=8)).items():
        element.set(name, value)
    for list_name in draw(
        st.lists(st.sampled_from(["url_list", "ss_list", "failed_faxes"]), unique=True)
    ):
        holder = etree.SubElement(element, list_name)
        for text in draw(st.lists(values.filter(lambda v: v.strip() == v and v), max_size=3)):
            etree.SubElement(holder, "url").text = text
    return element


@given(call_elements())
def test_xml_and_json_forms_give_the_same_record(element: etree._Element) -> None:
    assert call_record(json_to_element(element_to_json(element))) == call_record(element)

"""The Conpeek ``filter`` parameter: built by one function, URL-encoded by requests."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import parse_qs, urlsplit

import requests
from hypothesis import given
from hypothesis import strategies as st

from tap_callcenter.conpeek import encode_filter, window_filter
from tap_callcenter.timeconv import UTC
from tap_callcenter.windows import Window


def test_window_filter_is_gte_start_and_lt_end_in_utc() -> None:
    window = Window(
        dt.datetime(2024, 3, 31, 0, 30, tzinfo=UTC), dt.datetime(2024, 4, 1, tzinfo=UTC)
    )
    assert json.loads(window_filter("start_time", window)) == [
        {"property": "start_time", "operator": "gte", "value": "2024-03-31 00:30:00"},
        {"property": "start_time", "operator": "lt", "value": "2024-04-01 00:00:00"},
    ]


def test_operator_may_be_omitted() -> None:
    assert json.loads(encode_filter([("contact_number", None, "452442123")])) == [
        {"property": "contact_number", "value": "452442123"}
    ]


def test_the_docs_example_round_trips_through_the_url() -> None:
    value = encode_filter([("talking_time", "gt", 50000)])
    url = requests.Request("GET", "http://x/cdr_dialog", params={"filter": value}).prepare().url
    assert url is not None
    assert parse_qs(urlsplit(url).query)["filter"] == [value]
    assert json.loads(value) == [{"property": "talking_time", "operator": "gt", "value": 50000}]


text = st.text(min_size=0, max_size=20)


@given(
    st.lists(
        st.tuples(
            text,
            st.one_of(st.none(), st.sampled_from(["gt", "gte", "lt", "lte", "eq"])),
            st.one_of(text, st.integers(), st.lists(text, max_size=3)),
        ),
        max_size=5,
    )
)
def test_any_conditions_encode_to_a_json_list_that_survives_url_encoding(conditions) -> None:
    value = encode_filter(conditions)
    decoded = json.loads(value)
    assert [(d["property"], d.get("operator"), d["value"]) for d in decoded] == [
        (p, o, v) for p, o, v in conditions
    ]
    url = requests.Request("GET", "http://x/y", params={"filter": value}).prepare().url
    assert url is not None
    assert parse_qs(urlsplit(url).query, keep_blank_values=True)["filter"] == [value]

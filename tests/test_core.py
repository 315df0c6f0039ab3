"""The Singer SDK's standard tap tests, for every provider (ECSS over both transports).

Each provider gets its own test class (one config block each, so a failure names the
provider), synced against one shared emulator. Every record of every stream is checked
against its stream's schema by the SDK's ``StreamRecordMatchesStreamSchema``.
"""

from __future__ import annotations

import atexit
import typing as t

from singer_sdk.testing import SuiteConfig, get_tap_test_class
from singer_sdk.testing.suites import SingerTestSuite, tap_stream_tests
from singer_sdk.testing.tap_tests import StreamRecordSchemaMatchesCatalogTest

from emulator import ConpeekConfig, EcssConfig, Emulator, ThuliumConfig
from harness import emitted_key, tap_config
from tap_callcenter.tap import TapCallcenter
from tests.conftest import FAST_HTTP, SPRING

# get_tap_test_class needs its config when the module is imported, so the emulator
# starts here (once per test session) rather than in a fixture.
_EMULATOR = Emulator(
    seed=3,
    port=0,
    thulium=ThuliumConfig(connections=800),
    conpeek=ConpeekConfig(dialogs=800, summaries=400),
    ecss=EcssConfig(calls=800),
).start()
atexit.register(_EMULATOR.stop)

_BASE: dict[str, t.Any] = {"start_date": SPRING[0], "end_date": SPRING[1], **FAST_HTTP}

CONFIGS: dict[str, dict[str, t.Any]] = {
    "thulium": tap_config(_EMULATOR, "thulium", **_BASE),
    "conpeek": tap_config(_EMULATOR, "conpeek", **_BASE),
    "ecss_http": tap_config(_EMULATOR, "ecss", ecss={"transport": "http"}, **_BASE),
    "ecss_websocket": tap_config(_EMULATOR, "ecss", ecss={"transport": "websocket"}, **_BASE),
}

#: Where the emulator keeps each stream's raw API records: (provider, API stream).
RAW_SOURCES = {
    "thulium_connections": ("thulium", "connections"),
    "thulium_recordings": ("thulium", "recordings"),
    "conpeek_cdr_dialog": ("conpeek", "cdr_dialog"),
    "conpeek_voice_campaign_request_summary": ("conpeek", "voice_campaign_request_summary"),
    "ecss_operator_call_history": ("ecss", "ecss_operator_call_history"),
}


def raw_records(stream: str) -> dict[tuple[t.Any, ...], dict[str, t.Any]]:
    """What the API sent for each key of ``stream`` (the emulator's raw records)."""
    provider, api_stream = RAW_SOURCES[stream]
    return {
        emitted_key(item["key"]): item["record"]
        for item in _EMULATOR.provider(provider).expected(api_stream)
    }


class UndeclaredFieldsAreKeptTest(StreamRecordSchemaMatchesCatalogTest):
    """The SDK test demands no field outside the catalog; the contract demands the
    opposite (fields the API adds are kept, never dropped). What must hold instead, by
    looking at the records: every field the API sent for a record is in that record,
    and every field the schema does not declare is allowed by it."""

    def test(self) -> None:
        schema = self.stream.stream_maps[-1].transformed_schema
        declared = set(schema["properties"])
        raw = raw_records(self.stream.name)
        key_fields = tuple(self.stream.primary_keys or ())
        assert self.stream_records, f"{self.stream.name}: no records to look at"
        for record in self.stream_records:
            sent = raw[tuple(record[name] for name in key_fields)]
            dropped = set(sent) - set(record)
            assert not dropped, f"{self.stream.name}: fields the API sent were dropped: {dropped}"
            undeclared = set(record) - declared
            assert not undeclared or schema.get("additionalProperties") is True, undeclared


STREAM_TESTS = SingerTestSuite(
    kind="tap_stream",
    tests=[
        UndeclaredFieldsAreKeptTest if test is StreamRecordSchemaMatchesCatalogTest else test
        for test in tap_stream_tests.tests
    ],
)


def _test_class(config: dict[str, t.Any]) -> type:
    return get_tap_test_class(
        tap_class=TapCallcenter,
        config=config,
        include_stream_tests=False,
        custom_suites=[STREAM_TESTS],
        suite_config=SuiteConfig(max_records_limit=None),
    )


TestThulium = _test_class(CONFIGS["thulium"])
TestConpeek = _test_class(CONFIGS["conpeek"])
TestEcssHttp = _test_class(CONFIGS["ecss_http"])
TestEcssWebsocket = _test_class(CONFIGS["ecss_websocket"])


def test_the_emulator_sends_fields_the_schemas_do_not_declare() -> None:
    """The premise of UndeclaredFieldsAreKeptTest: some streams really receive
    undeclared fields (else keeping them would be checked on nothing)."""
    undeclared = {
        stream: {name for record in raw_records(stream).values() for name in record}
        - set(
            TapCallcenter(config=CONFIGS[stream.split("_")[0]]).streams[stream].schema["properties"]
        )
        for stream in ("thulium_connections", "conpeek_cdr_dialog")
    }
    assert undeclared == {
        "thulium_connections": {"campaign_name"},
        "conpeek_cdr_dialog": {"sip_call_id"},
    }

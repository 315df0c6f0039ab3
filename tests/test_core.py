"""The Singer SDK's standard tap tests, run against the emulator's Thulium."""

from __future__ import annotations

import atexit

from singer_sdk.testing import SuiteConfig, get_tap_test_class
from singer_sdk.testing.suites import SingerTestSuite, tap_stream_tests
from singer_sdk.testing.tap_tests import StreamRecordSchemaMatchesCatalogTest

from emulator import Emulator, ThuliumConfig
from tap_callcenter.tap import TapCallcenter
from tests.conftest import FAST_HTTP, SPRING

# get_tap_test_class needs its config when the module is imported, so the emulator
# starts here (once per test session) rather than in a fixture.
_EMULATOR = Emulator(seed=3, port=0, thulium=ThuliumConfig(connections=800)).start()
atexit.register(_EMULATOR.stop)

SAMPLE_CONFIG = {
    "start_date": SPRING[0],
    "end_date": SPRING[1],
    "thulium": {
        "api_url": _EMULATOR.thulium_api_url,
        "username": _EMULATOR.thulium.config.username,
        "password": _EMULATOR.thulium.config.password,
    },
    **FAST_HTTP,
}


class UndeclaredFieldsAreKeptTest(StreamRecordSchemaMatchesCatalogTest):
    """The SDK test demands no field outside the catalog; the contract demands the
    opposite (fields the API adds are kept, never dropped). What must hold instead:
    every such field is allowed by the stream's schema."""

    def test(self) -> None:
        schema = self.stream.stream_maps[-1].transformed_schema
        record_keys = set().union(*(d.keys() for d in self.stream_records))
        undeclared = record_keys - set(schema["properties"])
        assert not undeclared or schema.get("additionalProperties") is True, undeclared


STREAM_TESTS = SingerTestSuite(
    kind="tap_stream",
    tests=[
        UndeclaredFieldsAreKeptTest if test is StreamRecordSchemaMatchesCatalogTest else test
        for test in tap_stream_tests.tests
    ],
)

TestTapCallcenter = get_tap_test_class(
    tap_class=TapCallcenter,
    config=SAMPLE_CONFIG,
    include_stream_tests=False,
    custom_suites=[STREAM_TESTS],
    suite_config=SuiteConfig(max_records_limit=None),
)

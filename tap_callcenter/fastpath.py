"""The SDK's per-record path, trimmed to what this tap needs.

The SDK does work per record that the engine makes unnecessary: converting values
(records are already JSON-typed), a pass over deselected properties (when none is
deselected), progress markers for a bookmark (the engine owns bookmarks, per window).
At zero latency those passes were most of the tap's CPU time per record. Every name
overridden here is listed, with why, in :mod:`tap_callcenter.sdk_private`.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from functools import cached_property

from singer_sdk import Stream
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib import RecordMessage

if t.TYPE_CHECKING:
    from collections.abc import Callable, Generator

    from singer_sdk.helpers.types import Context


class LeanRecordPath(Stream):
    """A stream whose records need no SDK conversion and whose bookmarks the engine
    writes itself."""

    #: Records leave ``transform_record`` already in JSON types (ISO strings, ints,
    #: None), so the SDK's per-field conformance pass (40% of CPU time at zero latency)
    #: has nothing to do.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def get_replication_key_signpost(self, context: Context | None = None) -> None:
        """No signpost: the engine's bookmarks never pass the end of a window, and the
        SDK's (the real clock) would disagree with a test's simulated now."""
        return

    def _increment_stream_state(
        self,
        latest_record: dict[str, t.Any],
        *,
        context: Context | None = None,
    ) -> None:
        """The engine owns the bookmark (per window, see ``advance_bookmark``).

        The SDK's per-record progress markers would only be promoted at the very end
        of a stream and are not resumable, so they are not kept.
        """

    @cached_property
    def _every_property_selected(self) -> bool:
        return all(self.mask.values())

    @cached_property
    def _write_plain_record(self) -> Callable[[str, dict[str, t.Any], int | None], None] | None:
        """The writer's ``write_record`` when records go out exactly as they are: every
        property selected, one stream map that is the identity, no flattening, a writer
        that can encode a record without a message object (``WholeMessageWriter``)."""
        maps = self.stream_maps
        if not (
            self._every_property_selected
            and len(maps) == 1
            and type(maps[0]) is SameRecordTransform
            and not (maps[0].flattening_options and maps[0].flattening_enabled)
        ):
            return None
        return getattr(self._tap.message_writer, "write_record", None)

    def _write_record_message(self, record: dict[str, t.Any]) -> None:
        """One RECORD: straight to the writer when nothing transforms it (no message
        object, no generator per record), else the SDK's path."""
        write = self._write_plain_record
        if write is None:
            super()._write_record_message(record)
            return
        write(self.stream_maps[0].stream_alias, record, self._stream_version)
        self.state_manager.is_flushed = False

    def _process_record(
        self,
        record: dict[str, t.Any],
        child_context: Context | None = None,
        partition_context: Context | None = None,
    ) -> None:
        """The SDK's per-record step adds partition keys and syncs child streams; these
        streams have neither, so it is skipped (a generator and two calls per record)."""
        if self.child_streams or partition_context:
            super()._process_record(record, child_context, partition_context)

    def _generate_record_messages(
        self, record: dict[str, t.Any]
    ) -> Generator[RecordMessage, None, None]:
        """The SDK's record messages, minus its per-record pass over deselected
        properties when none is deselected (a quarter of the tap's CPU time per record
        at zero latency). Any deselected property takes the SDK's path unchanged."""
        if not self._every_property_selected:
            yield from super()._generate_record_messages(record)
            return
        for stream_map in self.stream_maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=dt.datetime.now(dt.timezone.utc),
                )

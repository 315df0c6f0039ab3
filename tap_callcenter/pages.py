"""From a decoded page to output records: shaped, fitted to the SCHEMA, and checked
for a server that sends the same page again.

Every provider's pages pass here (the SDK's paging loop, Thulium's parallel pages, the
ECSS tag loop), whatever transport brought them.
"""

from __future__ import annotations

import typing as t

from tap_callcenter.coerce import RecordShape
from tap_callcenter.engine import WindowedStream

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    import requests

    from tap_callcenter.errors import CallcenterError


class RecordPages(WindowedStream):
    """Pages of API records -> output records, for a stream of the engine."""

    def transform_page(
        self,
        records: Iterable[dict[str, t.Any]],
        request: requests.PreparedRequest | str | None,
    ) -> list[dict[str, t.Any]]:
        """``transform_record`` for a page; a value that cannot be read (a date that is
        no date) stops the sync with a clear error naming the record, not a traceback."""
        out = []
        for record in records:
            try:
                out.append(self.transform_record(record))
            except (ValueError, TypeError) as exc:
                key = {name: record.get(name) for name in self.primary_keys or ()}
                raise self.fail(
                    f"record {key} has a value that cannot be read: {exc}", request
                ) from None
        return out

    def check_page_is_new(
        self, page: list[dict[str, t.Any]], request: requests.PreparedRequest | str | None
    ) -> None:
        """Stop when a page repeats the window's first page or the page before it: the
        server ignores the offset (or the tag) and would be paged for ever. Only those
        two pages are remembered, so memory does not grow with the window. Called once
        per page, in the thread reading the window; a re-read from the start begins
        afresh (``WindowedStream.read_window_again``)."""
        pages: list[set[tuple[t.Any, ...]]] | None = getattr(self._fetching, "pages", None)
        if pages is None:
            return
        # a column per key field, zipped into keys in C: no tuple built in Python per
        # record (68 -> 29 us for a 100-record page; 4% of the GIL's time at 0 ms before)
        columns = [[record.get(name) for record in page] for name in self.primary_keys or ()]
        keys = set(zip(*columns, strict=True))
        keys.difference_update([key for key in keys if None in key or "" in key])
        if not keys:
            return
        if any(keys <= earlier for earlier in pages):
            raise self.fail(
                f"the server sent again a page of {len(page)} record(s) already received "
                "in this window: it ignores the paging offset; stopping instead of "
                "paging for ever",
                request,
            )
        self._fetching.pages = [pages[0], keys] if pages else [keys]

    #: Field coercions of ``transform_record``; each provider lists its fields.
    #: Empty strings that mean "absent" (optional ids, dates) -> null.
    empty_as_null_fields: t.ClassVar[tuple[str, ...]] = ()
    #: Date-times as the API writes them (in ``clock``'s zone) -> UTC ISO 8601.
    time_fields: t.ClassVar[tuple[str, ...]] = ()
    #: Numbers (possibly as strings, or empty) -> int or null.
    integer_fields: t.ClassVar[tuple[str, ...]] = ()
    #: Flags (possibly as strings, or empty) -> bool or null.
    boolean_fields: t.ClassVar[tuple[str, ...]] = ()

    @property
    def shape(self) -> RecordShape:
        """How this stream's records are shaped for output (see ``coerce.RecordShape``).
        One per stream: pages may be transformed in several threads, and
        ``setdefault`` keeps the first one built, so its counts are the stream's."""
        shape = self.__dict__.get("_shape")
        if shape is None:
            built = RecordShape(
                self.schema,
                self.clock.wall_text_to_utc_iso,
                empty_as_null=self.empty_as_null_fields,
                times=self.time_fields,
                integers=self.integer_fields,
                booleans=self.boolean_fields,
            )
            shape = self.__dict__.setdefault("_shape", built)
            self.report.details = shape.conformer.warnings
        return t.cast("RecordShape", shape)

    def transform_record(self, record: dict[str, t.Any]) -> dict[str, t.Any]:
        """API record -> output record (UTC date-times, numbers, nulls), fitted to the
        stream's SCHEMA: a value that cannot be converted without loss is null in its
        field and kept in ``_raw_values``, counted in the completeness report;
        undeclared fields are kept as they come."""
        not_fitting = self.shape(record)
        if not_fitting:
            with self.shape.conformer.lock:
                self.report.values_not_fitting += not_fitting
        return record

    if t.TYPE_CHECKING:  # the HTTP layer words errors (``CallcenterStream.fail``)

        def fail(
            self,
            message: str,
            request: requests.PreparedRequest | requests.Request | str | None = None,
            hint: str | None = None,
        ) -> CallcenterError: ...

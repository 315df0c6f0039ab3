"""Paginators: how each provider says "there is another page".

All of them read the decoded body that :class:`~tap_callcenter.client.CallcenterStream`
attached to the response (see :func:`payload_of`), so a page is parsed once.
"""

from __future__ import annotations

import typing as t

from singer_sdk.pagination import BaseAPIPaginator

from tap_callcenter.coerce import optional_int

if t.TYPE_CHECKING:
    import requests

_PAYLOAD_ATTR = "_callcenter_payload"


def attach_payload(response: requests.Response, payload: t.Any) -> None:
    """Remember the decoded body on the response (decoded inside the retry loop)."""
    setattr(response, _PAYLOAD_ATTR, payload)


def payload_of(response: requests.Response) -> t.Any:
    """The decoded body attached by :func:`attach_payload`."""
    return getattr(response, _PAYLOAD_ATTR)


class CountOffsetPaginator(BaseAPIPaginator[int]):
    """Offset paging that stops at the total ``count`` the API reports (Thulium).

    The next offset advances by the number of records actually received, never by the
    requested limit: a server that clamps ``limit`` returns short pages that are not the
    last one. Paging ends when the offset reaches ``count`` (read from the latest page,
    since live inserts change it) or when a page comes back empty. A page without a
    count, or with one smaller than what was already received, ends paging when it is
    shorter than the first page (the server's real page size).
    """

    def __init__(self, records_key: str = "result", count_key: str = "count") -> None:
        super().__init__(0)
        self._records_key = records_key
        self._count_key = count_key
        self._page_size: int | None = None

    def _received(self, response: requests.Response) -> int:
        return len(payload_of(response).get(self._records_key) or [])

    def has_more(self, response: requests.Response) -> bool:
        received = self._received(response)
        if self._page_size is None:
            self._page_size = received
        if received == 0:
            return False
        total = optional_int(payload_of(response).get(self._count_key))
        done = self.current_value + received
        if not isinstance(total, int) or total < done:  # no usable total: a short page ends
            return received >= self._page_size
        return done < total

    def get_next(self, response: requests.Response) -> int:
        return self.current_value + self._received(response)


class ShortPagePaginator(BaseAPIPaginator[int]):
    """Offset paging without a total (Conpeek): the next offset is the previous one plus
    the records received; only an empty page ends it.

    The API documents that the last page is shorter than ``limit``, but a server that
    caps ``limit`` below what was asked (500 asked, 100 given) also sends short pages
    that are not the last. Treating a short page as the end would silently lose the
    rest, so a short page is confirmed by one more request, which comes back empty:
    one extra request per window, bought for never losing records.
    """

    def __init__(self, records_key: str = "data") -> None:
        super().__init__(0)
        self._records_key = records_key

    def _received(self, response: requests.Response) -> int:
        return len(payload_of(response).get(self._records_key) or [])

    def has_more(self, response: requests.Response) -> bool:
        return self._received(response) > 0

    def get_next(self, response: requests.Response) -> int:
        return self.current_value + self._received(response)


class RepeatedTagError(ValueError):
    """The server sent back a paging tag it had already given in this window."""


class TagPaginator(BaseAPIPaginator["str | None"]):
    """ECSS's opaque ``tag`` cursor: send back the tag of the previous page.

    The page (an ``ecss.xml.Page``) rides on the response. No tag or an empty page ends
    the window; a tag seen before in the same window is an error, never a loop (the
    SDK only notices two identical tags in a row).
    """

    def __init__(self) -> None:
        super().__init__(None)
        self._seen: set[str] = set()

    def has_more(self, response: requests.Response) -> bool:
        page = payload_of(response)
        return bool(page.tag) and bool(page.records)

    def get_next(self, response: requests.Response) -> str | None:
        tag: str = payload_of(response).tag
        if tag in self._seen:
            raise RepeatedTagError(tag)
        self._seen.add(tag)
        return tag

"""ECSS documents: the request built with lxml, the answer parsed into records.

The websocket transport carries the same documents in a JSON form (``_name``,
``_attributes``, ``_content``); :func:`element_to_json` and :func:`json_to_element`
convert between the two, so both transports share one record parser and give
identical records for the same answer.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from lxml import etree

#: Attributes of ``CallHistory`` whose values are whole seconds.
DURATION_ATTRIBUTES = ("duration", "total_duration", "waiting_duration", "talk_duration")
#: Attributes holding server-local date-times.
TIME_ATTRIBUTES = ("start_time", "answer_time", "release_time")
#: Optional attributes (XSD ``use="optional"``): an empty string means absent -> null.
OPTIONAL_ATTRIBUTES = ("answer_time", "queue_id", "call_record", "remote_digits", "remote_agent_id")
#: Child lists of ``CallHistory`` (XSD ``xs:all``), each emitted as an array.
LIST_ELEMENTS = ("url_list", "ss_list", "success_faxes", "failed_faxes")

#: No entity is expanded and nothing is fetched (XXE, billion laughs); libxml2's own
#: limits on depth and text size stay on (a page of 10,000 calls is far below them).
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


class EcssErrorAnswer(Exception):
    """An ``<out><error>`` answer: the server's code and message."""

    def __init__(self, code: str | None, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"ECSS error {code}: {message}" if code else f"ECSS error: {message}")


@dataclass(frozen=True)
class Page:
    """One answer of ``operator_call_history``."""

    tag: str | None
    records: list[dict[str, t.Any]]


def build_request(filters: dict[str, str]) -> etree._Element:
    """``<in><request><filters …/></request></in>``; attribute values are strings."""
    root = etree.Element("in")
    request = etree.SubElement(root, "request")
    etree.SubElement(request, "filters", {k: str(v) for k, v in filters.items()})
    return root


def request_bytes(filters: dict[str, str]) -> bytes:
    """The request document as UTF-8 XML, for the HTTP transport."""
    return t.cast(
        "bytes", etree.tostring(build_request(filters), xml_declaration=True, encoding="UTF-8")
    )


def parse_xml(body: bytes) -> etree._Element:
    """Parse an answer; ``ValueError`` when it is not well-formed XML."""
    try:
        return etree.fromstring(body, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        msg = f"not well-formed XML ({exc})"
        raise ValueError(msg) from None


def read_answer(root: etree._Element) -> Page:
    """``<out>`` -> Page, or raise :class:`EcssErrorAnswer` / ``ValueError``."""
    if _local(root.tag) != "out":
        msg = f"the root element is <{_local(root.tag)}>, not <out>"
        raise ValueError(msg)
    error = _child(root, "error")
    if error is not None:
        raise EcssErrorAnswer(_error_code(error), _error_text(error))
    response = _child(root, "response")
    history = _child(response, "history") if response is not None else None
    if history is None:
        msg = "the answer has no <response><history> element"
        raise ValueError(msg)
    records = [call_record(element) for element in history if _local(element.tag) == "call_history"]
    return Page(tag=history.get("tag") or None, records=records)


def call_record(element: etree._Element) -> dict[str, t.Any]:
    """Attributes as properties (raw strings) and each child list as an array."""
    record: dict[str, t.Any] = dict(element.attrib)
    for child in element:
        if not isinstance(child.tag, str):
            continue  # comments, processing instructions
        name = _local(child.tag)
        if name in LIST_ELEMENTS or len(child):
            record[name] = [_list_item(item) for item in child if isinstance(item.tag, str)]
        else:
            record[name] = child.text
    return record


def _list_item(item: etree._Element) -> t.Any:
    """A URL element becomes its text; an element with attributes, a dict of them."""
    if item.attrib:
        value: dict[str, t.Any] = dict(item.attrib)
        if (item.text or "").strip():
            value["value"] = item.text.strip() if item.text else None
        return value
    return (item.text or "").strip()


def _error_code(error: etree._Element) -> str | None:
    for name in ("code", "error_code", "status"):
        if error.get(name):
            return error.get(name)
    return None


def _error_text(error: etree._Element) -> str:
    parts = [
        f"{name}={value}"
        for name, value in error.attrib.items()
        if name not in ("code", "error_code", "status")
    ]
    text = " ".join("".join(error.itertext()).split())
    return "; ".join(p for p in [text, *parts] if p) or "(no message)"


def _child(element: etree._Element | None, name: str) -> etree._Element | None:
    if element is None:
        return None
    for child in element:
        if isinstance(child.tag, str) and _local(child.tag) == name:
            return child
    return None


def _local(tag: t.Any) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


# ---------------------------------------------------------------- the JSON form


def element_to_json(element: etree._Element) -> dict[str, t.Any]:
    """An element in the websocket's JSON form."""
    node: dict[str, t.Any] = {"_name": element.tag}
    if element.attrib:
        node["_attributes"] = dict(element.attrib)
    children = [child for child in element if isinstance(child.tag, str)]
    if children:
        node["_content"] = [element_to_json(child) for child in children]
    elif element.text and element.text.strip():
        node["_content"] = element.text
    return node


_XS_PREFIX = "xs:"


def json_to_element(node: t.Any) -> etree._Element:
    """The websocket's JSON form -> an element (``ValueError`` when it is not that form).

    Namespace declarations on the root (``xmlns:xs``) and prefixed attributes
    (``xs:noNamespaceSchemaLocation``) carry no data; they are dropped rather than
    resolved, since the JSON form has no namespace rules.
    """
    if isinstance(node, list):
        if len(node) != 1:
            msg = f"expected one root element, got {len(node)}"
            raise ValueError(msg)
        node = node[0]
    if not isinstance(node, dict) or not isinstance(node.get("_name"), str):
        msg = "an element must be an object with a string '_name'"
        raise ValueError(msg)
    attributes = node.get("_attributes") or {}
    if not isinstance(attributes, dict):
        msg = f"'_attributes' of <{node['_name']}> is not an object"
        raise ValueError(msg)
    try:
        element = etree.Element(node["_name"])
    except ValueError as exc:
        msg = f"invalid element name {node['_name']!r}"
        raise ValueError(msg) from exc
    for name, value in attributes.items():
        if name.startswith("xmlns") or ":" in name:
            continue
        element.set(name, "" if value is None else str(value))
    content = node.get("_content")
    if isinstance(content, str):
        element.text = content
    elif isinstance(content, list):
        for child in content:
            if isinstance(child, str):
                element.text = (element.text or "") + child
            else:
                element.append(json_to_element(child))
    elif content is not None:
        element.text = str(content)
    return element

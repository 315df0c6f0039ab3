"""Plain sequential clients for the other providers (the baseline, as plain_client.py is
for Thulium): requests (+ websocket-client), the standard library's json and XML
readers, one date range, pages until the API says there are no more, every record as
a JSON line to ``--output``. No windows, no time-zone conversion, no retries.

    plain_providers.py conpeek --api-url URL --api-key KEY --start "YYYY-MM-DD HH:MM:SS" --end ...
    plain_providers.py ecss-http --api-url URL --domain D --client-id C --api-key K \\
        --phone-number N --start "YYYY/MM/DD HH:MM:SS" --end "..."
    plain_providers.py ecss-ws ... --ws-url ws://...

Prints one JSON line: {"records": N, "requests": M, "elapsed_s": S}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence

import requests


def conpeek(args: argparse.Namespace, session: requests.Session) -> Iterator[list[dict]]:
    """``GET /cdr_dialog`` with a start_time filter, limit/offset to an empty page."""
    session.headers["Authorization"] = args.api_key
    filters = json.dumps(
        [
            {"property": "start_time", "operator": "gte", "value": args.start},
            {"property": "start_time", "operator": "lt", "value": args.end},
        ]
    )
    offset = 0
    while True:
        response = session.get(
            args.api_url.rstrip("/") + "/cdr_dialog",
            params={"filter": filters, "limit": str(500), "offset": str(offset)},
            timeout=60,
        )
        response.raise_for_status()
        page = response.json()["data"]
        yield page
        if not page:
            return
        offset += len(page)


def ecss_login(args: argparse.Namespace, session: requests.Session) -> str:
    base = f"{args.api_url.rstrip('/')}/{args.domain}/service/cc/arm"
    form = {"client_id": args.client_id, "api_key": args.api_key, "phone_number": args.phone_number}
    session.post(f"{base}/login", data=form, timeout=60).raise_for_status()
    return base


def ecss_filters(args: argparse.Namespace, tag: str | None) -> dict[str, str]:
    filters = {"offset": "0", "limit": "100", "from_date": args.start, "to_date": args.end}
    if tag:
        filters["tag"] = tag
    return filters


def history_records(history: ET.Element) -> list[dict]:
    records = []
    for call in history:
        record: dict = dict(call.attrib)
        for child in call:
            record[child.tag] = [item.text for item in child] if len(child) else child.text
        records.append(record)
    return records


def follow_tag(ask: Callable[[str | None], ET.Element]) -> Iterator[list[dict]]:
    """Pages of ``operator_call_history``: ``ask(tag)`` answers one command (the root
    ``out`` element); the history's tag asks for the next page, until none or an empty page."""
    tag = None
    while True:
        history = ask(tag).find("response/history")
        assert history is not None
        page = history_records(history)
        yield page
        tag = history.get("tag")
        if not tag or not page:
            return


def ecss_http(args: argparse.Namespace, session: requests.Session) -> Iterator[list[dict]]:
    """POST the XML command, follow the history's tag."""
    base = ecss_login(args, session)

    def ask(tag: str | None) -> ET.Element:
        root = ET.Element("in")
        ET.SubElement(ET.SubElement(root, "request"), "filters", ecss_filters(args, tag))
        response = session.post(
            f"{base}/operator_call_history",
            data=ET.tostring(root, encoding="utf-8", xml_declaration=True),
            headers={"Content-Type": "application/xml; charset=utf-8"},
            timeout=60,
        )
        response.raise_for_status()
        return ET.fromstring(response.content)

    yield from follow_tag(ask)


def _node(node: dict) -> ET.Element:
    """The websocket's JSON form of an element back to an element."""
    element = ET.Element(node["_name"], node.get("_attributes") or {})
    content = node.get("_content")
    if isinstance(content, list):
        element.extend(_node(child) for child in content)
    elif content is not None:
        element.text = content
    return element


def ecss_ws(args: argparse.Namespace, session: requests.Session) -> Iterator[list[dict]]:
    """The same command as frames over the websocket, with the login's cookie."""
    import websocket  # noqa: PLC0415 (only this client needs it; others start faster)

    ecss_login(args, session)
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    connection = websocket.create_connection(args.ws_url, cookie=cookie, timeout=60)
    request_id = 0

    def ask(tag: str | None) -> ET.Element:
        nonlocal request_id
        request_id = request_id % 9999 + 1
        node = {
            "_name": "in",
            "_content": [
                {
                    "_name": "request",
                    "_content": [{"_name": "filters", "_attributes": ecss_filters(args, tag)}],
                }
            ],
        }
        payload = json.dumps([node], ensure_ascii=False)
        size = len(payload.encode("utf-8"))
        connection.send(f"01{size:010d}{request_id:04d}operator_call_history\n{payload}")
        while True:
            frame = str(connection.recv())
            if int(frame[12:16]) == request_id:
                return _node(json.loads(frame[19:].lstrip("\r\n"))[0])

    try:
        yield from follow_tag(ask)
    finally:
        connection.close()


CLIENTS = {"conpeek": conpeek, "ecss-http": ecss_http, "ecss-ws": ecss_ws}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("provider", choices=sorted(CLIENTS))
    for name in ("api-url", "start", "end"):
        parser.add_argument(f"--{name}", required=True)
    for name in ("api-key", "domain", "client-id", "phone-number", "ws-url"):
        parser.add_argument(f"--{name}")
    parser.add_argument("--output", default="/dev/null")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    records = pages = 0
    session = requests.Session()
    dumps = json.dumps
    try:
        with open(args.output, "w", encoding="utf-8") as out:
            for page in CLIENTS[args.provider](args, session):
                pages += 1
                for record in page:
                    out.write(dumps(record, ensure_ascii=False))
                    out.write("\n")
                records += len(page)
    except (requests.RequestException, ValueError, OSError) as exc:
        print(f"plain_providers: {exc}", file=sys.stderr)
        return 1
    elapsed = round(time.perf_counter() - started, 3)
    print(json.dumps({"records": records, "requests": pages, "elapsed_s": elapsed}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The tap's fatal errors and secret redaction.

Every failure a user can cause or meet (bad settings, wrong password, an API's error
answer, a body that is not what the API documents, retries exhausted) ends as one
:class:`CallcenterError`: a one-paragraph message naming the provider, the stream and
the request, with every configured secret replaced by ``***``. The command-line entry
point prints it without a traceback and exits non-zero.

A server may echo what it received (a 401 page quoting the ``Authorization`` header, a
login error quoting the form), so a secret is redacted in every form the tap itself
sends it: raw, base64 of ``user:password`` (HTTP basic), URL-encoded (the ECSS login
form), JSON-escaped; and in the forms an error message may print it: Python ``repr``,
XML-escaped, and, for a secret setting that is not a string (a number, a list), its
JSON and ``repr`` text, so a config error never prints the value either.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, quote_plus, urlsplit

REDACTED = "***"


class CallcenterError(Exception):
    """A fatal, user-facing error: printed as one paragraph, no traceback."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        stream: str | None = None,
        request: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.provider = provider
        self.stream = stream
        self.request = request
        self.hint = hint
        self.detail = message
        super().__init__(self.render())

    def render(self) -> str:
        """One paragraph: where (provider/stream), what request, what the API said."""
        where = " / ".join(part for part in (self.provider, self.stream) if part)
        text = f"{where}: {self.detail}" if where else self.detail
        if self.request:
            text += f" (request: {self.request})"
        if self.hint:
            text += f". {self.hint}"
        return redactor.redact(text)


class Redactor:
    """Replaces known secret values in any text; one shared instance per process."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str]) -> None:
        """Remember secret values (too short ones would redact ordinary text)."""
        self._secrets.update(v for v in values if isinstance(v, str) and len(v) >= 3)
        if self._secrets:
            alternatives = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in alternatives))

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)


redactor = Redactor()


def secret_forms(text: str) -> set[str]:
    """``text`` as the tap sends it or a message may print it: raw, URL-encoded (form
    and path style), JSON-escaped (with and without escaped slashes and non-ASCII),
    Python ``repr``-escaped and XML-escaped (quotes removed where the encoding adds
    them, so the form is found inside a longer string)."""
    json_escaped = {json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}
    json_escaped |= {form.replace("/", "\\/") for form in json_escaped}  # PHP's json_encode
    url_encoded = {quote_plus(text), quote(text, safe=""), quote(text)}
    printed = {repr(text)[1:-1], _xml_escaped(text, quote=True), _xml_escaped(text, quote=False)}
    return {text, *json_escaped, *url_encoded, *printed}


def _value_texts(value: object) -> list[str]:
    """A secret setting's value as text, whatever its type: a string as it is; a number
    or a boolean as JSON and Python print it; a list or object whole (JSON and
    ``repr``) and element by element."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (bool, int, float)):
        return [json.dumps(value), repr(value), str(value)]
    texts = [json.dumps(value, default=str), json.dumps(value, default=str, ensure_ascii=False)]
    texts.append(repr(value))
    items = value.values() if isinstance(value, Mapping) else value
    if isinstance(items, Iterable):
        for item in items:
            texts.extend(_value_texts(item))
    return texts


def _basic_auth_token(username: object, password: object) -> str:
    """The base64 part of ``Authorization: Basic …`` as ``requests`` builds it."""
    pair = f"{username}:{password}"
    try:
        raw = pair.encode("latin1")
    except UnicodeEncodeError:
        raw = pair.encode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def collect_secrets(config: object, keys: frozenset[str]) -> list[str]:
    """Every form of every value under a secret key (``keys``: the settings the schema
    marks secret) anywhere in a (nested) config, whatever the value's type, plus the
    HTTP basic token of each block that has a ``username`` and a ``password``."""
    found: set[str] = set()
    if isinstance(config, Mapping):
        for key, value in config.items():
            if key in keys:
                for text in _value_texts(value):
                    found |= secret_forms(text)
            else:
                found.update(collect_secrets(value, keys))
        if "username" in config and config.get("password") is not None:
            found.add(_basic_auth_token(config["username"], config["password"]))
    elif isinstance(config, (list, tuple)):
        for item in config:
            found.update(collect_secrets(item, keys))
    return sorted(found)


class RedactingFilter(logging.Filter):
    """Logging filter that renders a record's message and removes secrets from it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redactor.redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_log_redaction() -> None:
    """Attach the redacting filter to every root handler (all loggers propagate there)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def snippet(text: str, limit: int) -> str:
    """``text`` on one line, secrets redacted, then cut to ``limit`` characters: redacting
    first means a secret straddling the cut cannot leak its first part."""
    text = redactor.redact(" ".join(text.split()))
    return text[:limit] + ("…" if len(text) > limit else "")


def describe_request(method: str, url: str) -> str:
    """``GET /api/connections?date_from=…`` — the path and query, never the host's auth."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return f"{method} {target}"


def _xml_escaped(text: str, quote: bool) -> str:
    """``html.escape``, written out: importing ``html`` compiles a large regular
    expression (16 ms of every start-up) for a function of five replacements."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if quote:
        text = text.replace('"', "&quot;").replace("'", "&#x27;")
    return text

"""The tap's fatal errors and secret redaction.

Every failure a user can cause or meet (bad settings, wrong password, an API's error
answer, a body that is not what the API documents, retries exhausted) ends as one
:class:`CallcenterError`: a one-paragraph message naming the provider, the stream and
the request, with every configured secret replaced by ``***``. The command-line entry
point prints it without a traceback and exits non-zero.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

REDACTED = "***"

#: Config keys whose values are secrets wherever they appear.
SECRET_KEYS = frozenset({"password", "api_key"})


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


def collect_secrets(config: object) -> list[str]:
    """Every value under a secret key anywhere in a (nested) config mapping."""
    found: list[str] = []
    if isinstance(config, dict):
        for key, value in config.items():
            if key in SECRET_KEYS and isinstance(value, str):
                found.append(value)
            else:
                found.extend(collect_secrets(value))
    return found


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


def describe_request(method: str, url: str) -> str:
    """``GET /api/connections?date_from=…`` — the path and query, never the host's auth."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return f"{method} {target}"

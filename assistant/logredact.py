"""A logging filter that masks secrets in every record: Bot API tokens, Matrix access tokens.

Libraries log URLs and request details (a Bot API URL holds the bot token; a
Matrix URL may carry `access_token=`), and tracebacks repeat them. The filter sits
on the handlers, so it sees records from every logger, and rewrites the message,
its arguments and any formatted traceback before a handler writes them.
"""

from __future__ import annotations

import logging
import re
from typing import Iterable

MASK = "[redacted]"
_PATTERNS = (
    # Bot API token `123456:AA...`, also inside `/bot123456:AA.../getUpdates`: the bot id stays.
    (re.compile(r"(?<![0-9])([0-9]{5,}):[A-Za-z0-9_-]{30,}"), r"\1:" + MASK),
    # Synapse access and refresh tokens (`syt_...`, `syr_...`), MAS tokens (`mat_...`, `mar_...`).
    (re.compile(r"\b(?:syt|syr|mat|mar)_[A-Za-z0-9_-]{8,}"), MASK),
    # Older Synapse tokens are macaroons: base64 starting "MDAx".
    (re.compile(r"\bMDAx[A-Za-z0-9+/_=-]{20,}"), MASK),
    # Tokens in a query string or an Authorization header, whatever their shape.
    (re.compile(r"(access_token=)[^&\s\"']+", re.IGNORECASE), r"\1" + MASK),
    (re.compile(r"(Bearer\s+)[^\s\"']+", re.IGNORECASE), r"\1" + MASK),
)
MIN_SECRET_CHARS = 8  # shorter configured values would mask ordinary words


class RedactingFilter(logging.Filter):
    """Masks token patterns and the configured secrets; never drops a record."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_CHARS},
                              key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001  (a bad format string: the handler reports it)
            return True
        masked = self.redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install(secrets: Iterable[str] = (), logger: logging.Logger | None = None) -> RedactingFilter:
    """Add one filter to every handler of `logger` (the root logger by default)."""
    target = logger or logging.getLogger()
    redactor = RedactingFilter(secrets)
    for handler in target.handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)  # installing again replaces, e.g. with new secrets
        handler.addFilter(redactor)
    return redactor

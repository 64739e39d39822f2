"""Keeping credentials out of every text the product writes: error messages, stored rows, logs.

The pricing clients register each credential they hold (``register_secret``) before they use
it; from then on ``redact`` replaces it, and the forms it travels in (URL-quoted in a query
string, base64 inside an HTTP Basic header), with ``***``. ``install_log_redaction`` puts a
``RedactingFilter`` on the product's loggers, the HTTP libraries' loggers (urllib3 logs every
request line, query string and all, at DEBUG) and the root handlers, so no log line carries a
registered secret whatever the level.
"""

from __future__ import annotations

import base64
import logging
import threading
from urllib.parse import quote, quote_plus

MASK = "***"
# Shorter values are not registered: masking them would mangle ordinary text and hide nothing.
MIN_SECRET_LENGTH = 4
PRODUCT_PACKAGES = (
    "core",
    "storage",
    "ingestion",
    "training",
    "registry",
    "serving",
    "quality",
    "drift",
    "retention",
    "pipelines",
    "eopt",
    "dags",
)
# urllib3.connectionpool logs "GET /api?securityToken=... HTTP/1.1" at DEBUG; the others may
# quote URLs in warnings (retries, redirects, connection problems).
HTTP_LOGGERS = (
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.response",
    "urllib3.poolmanager",
    "urllib3.util.retry",
    "requests",
)

_lock = threading.Lock()
_secrets: set[str] = set()


def _forms(secret: str) -> set[str]:
    """The secret as it appears in a query string, a path or a Basic header."""
    return {secret, quote(secret, safe=""), quote_plus(secret), base64.b64encode(secret.encode()).decode()}


def register_secret(*values: str | None) -> None:
    """Mask these values (and their URL-quoted and base64 forms) in everything ``redact`` sees."""
    with _lock:
        for value in values:
            if value and len(value) >= MIN_SECRET_LENGTH:
                _secrets.update(f for f in _forms(value) if len(f) >= MIN_SECRET_LENGTH)


def register_basic_credentials(login: str | None, password: str | None) -> None:
    """An HTTP Basic pair: each part, and the base64 of ``login:password`` that goes on the wire."""
    register_secret(login, password)
    if login and password:
        register_secret(base64.b64encode(f"{login}:{password}".encode()).decode())


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***`` (longest first)."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_bytes(body: bytes) -> bytes:
    """A payload with every registered secret masked (what is archived must not hold one)."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        raw = secret.encode()
        if raw in body:
            body = body.replace(raw, MASK.encode())
    return body


class RedactingFilter(logging.Filter):
    """Formats a record's message (and its traceback) and masks the registered secrets in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let logging report it as usual
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


REDACTING_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Put the redacting filter on the HTTP libraries' loggers, every product logger created so
    far and the root logger's handlers (idempotent; call again after adding handlers)."""
    names = set(HTTP_LOGGERS)
    names.update(
        name
        for name in list(logging.root.manager.loggerDict)
        if name.split(".", 1)[0] in PRODUCT_PACKAGES or name.split(".", 1)[0] in ("urllib3", "requests")
    )
    for name in names:
        logger = logging.getLogger(name)
        if REDACTING_FILTER not in logger.filters:
            logger.addFilter(REDACTING_FILTER)
    for handler in logging.root.handlers:
        if REDACTING_FILTER not in handler.filters:
            handler.addFilter(REDACTING_FILTER)

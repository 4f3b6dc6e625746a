"""Keeping provider webhook secrets out of logs.

A provider calls back `/webhooks/{provider}/{job id}.{secret}`: the secret is the only credential of that call,
and the URL is what access logs print. `WebhookSecretFilter` rewrites every log record passing through a handler
or logger it is attached to, so the token's secret part reads `***` (the job id stays, which is what one needs to
follow a callback in the log).
"""

from __future__ import annotations

import logging
import re
from typing import Any

# `/webhooks/<provider>/<token>`: the token is everything up to the next '/', '?', '#', quote or whitespace;
# whatever follows its first '.' (the secret) is replaced. A token without a '.' is replaced whole (it is
# malformed, but may still be someone's secret pasted wrongly).
_TOKEN = re.compile(r"(/webhooks/[^/\s?#\"']+/)([^/\s?#\"'.]*)(\.[^/\s?#\"']*)?")
REDACTED = "***"


def redact(text: str) -> str:
    """`text` with every webhook token's secret replaced by `***`."""
    if "/webhooks/" not in text:
        return text
    return _TOKEN.sub(_replace, text)


def _replace(match: re.Match[str]) -> str:
    prefix, head, secret = match.group(1), match.group(2), match.group(3)
    if secret is None:
        return f"{prefix}{REDACTED}"
    return f"{prefix}{head}.{REDACTED}"


def _redact_arg(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class WebhookSecretFilter(logging.Filter):
    """Rewrites a record's message and string arguments (uvicorn's access line passes the path as an argument);
    never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        return True


_FILTER = WebhookSecretFilter()


def install_redaction(*logger_names: str) -> None:
    """Attach the filter to the root logger's handlers, to the named loggers and to their handlers (a logger's
    own filters only see records logged on it; a handler's see everything it writes). Idempotent."""
    targets: list[logging.Filterer] = list(logging.getLogger().handlers)
    for name in logger_names:
        logger = logging.getLogger(name)
        targets.append(logger)
        targets.extend(logger.handlers)
    for target in targets:
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)

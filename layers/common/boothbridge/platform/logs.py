"""Logging for every entry point: one root handler, JSON lines or readable text, request and job ids, no secrets.

The code logs through the standard library (`logging.getLogger(__name__)`), as do uvicorn, Alembic and the SDKs;
`configure_logging` renders all of their records through structlog's `ProcessorFormatter` on the root logger's
one handler:

- `json` (Lambda, and wherever `LOG_FORMAT=json`): one JSON object per line with `timestamp` (ISO 8601, UTC),
  `level`, `logger`, `event` (the message), the bound context (`request_id`, `job_id`, `attempt`), a record's
  `extra` fields, and `exception` as a structured traceback (type, message, frames; never local variables);
- `text` (local): `2025-01-01T12:00:00.000000Z [info ] message   logger=… request_id=…`, tracebacks as text.

Every line passes `redaction.redact_event` last, whatever its source (see platform/redaction.py).

The context is per asyncio task (`contextvars`): `log_scope` binds for a block (a request, a job attempt) and
restores the context on exit; `bind_job` adds the job id for the rest of the enclosing scope.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor

from boothbridge.platform.redaction import redact_event

LogFormat = Literal["text", "json"]
HANDLER_NAME = "boothbridge"
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
# Libraries that print whole requests and answers at DEBUG (botocore prints a Secrets Manager answer: every
# credential; the HTTP clients print headers): never below INFO, whatever LOG_LEVEL asks, because redaction matches
# shapes and a whole answer has too many.
WIRE_LOGGERS = (
    "botocore",
    "aiobotocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "httpcore",
    "httpx",
    "h11",
    "h2",
    "hpack",
    "google_genai",
    "google.auth",
    "psycopg",
)


def _drop_color_message(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """uvicorn passes its message again with ANSI colour codes as an `extra`; the plain one is the event."""
    event_dict.pop("color_message", None)
    return event_dict


# What every record gets, ours and foreign (stdlib) alike: the bound context, level, logger, extras, time.
_SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    _drop_color_message,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def _renderers(log_format: LogFormat, stream: TextIO) -> list[Processor]:
    """Exceptions become data (json) or text (text) before redaction sees them, so redaction covers them too.
    Local variables are never shown: a frame's locals may hold a password or a key."""
    if log_format == "json":
        transformer = structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        return [
            structlog.processors.StackInfoRenderer(),
            structlog.processors.ExceptionRenderer(transformer),
            redact_event,
            structlog.processors.JSONRenderer(),
        ]
    colors = bool(getattr(stream, "isatty", lambda: False)())
    return [
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact_event,
        structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=structlog.dev.plain_traceback),
    ]


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record is emitted, not the object it was at configuration: a
    process (or a test runner) that replaces and closes stderr later must not leave the handler on a closed file."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass  # StreamHandler.__init__ assigns one; the current stderr is always used


def build_handler(log_format: LogFormat, stream: TextIO | None = None) -> logging.Handler:
    """A stream handler (default: the current stderr) rendering every record in `log_format`; named
    HANDLER_NAME."""
    out = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.name = HANDLER_NAME
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *_renderers(log_format, out)],
        )
    )
    return handler


def configure_logging(log_format: LogFormat = "text", level: str | int = "INFO", stream: TextIO | None = None) -> None:
    """Make the root logger's one handler the structured one, at `level` (a name like "INFO", or a number).

    Replaces whatever handlers the root logger had (Lambda's runtime installs its own plain-text one; a second
    call replaces the first's), so it is safe from every entry point and on every warm Lambda invocation. Loggers
    that propagate (uvicorn's, when uvicorn is given `log_config=None`) reach it; structlog's own loggers, if any
    code asks for one, render through the same handler. Call it after starting anything that configures uvicorn's
    loggers (they are brought back to the root handler)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(build_handler(log_format, stream))
    # A uvicorn server started in this process without `log_config=None` (the demo's provider fakes) gave these
    # loggers handlers of their own that do not propagate: their lines would bypass the format and the redaction.
    for name in _UVICORN_LOGGERS:
        adopted = logging.getLogger(name)
        for old in list(adopted.handlers):
            adopted.removeHandler(old)
        adopted.propagate = True
        # ... and maybe a level or a `disabled` flag of their own (an earlier dictConfig, a server's log_level):
        # they follow the root again until a server started after this call sets its log_level.
        adopted.setLevel(logging.NOTSET)
        adopted.disabled = False
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in WIRE_LOGGERS:
        wire = logging.getLogger(name)
        wire.setLevel(max(logging.INFO, root.level, wire.level))
    # SQLAlchemy keeps its loggers at WARNING when it is imported (at INFO its engine logs every statement and its
    # parameters); the same here whichever comes first, unless something set a level of its own.
    if logging.getLogger("sqlalchemy").level == logging.NOTSET:
        logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    logging.captureWarnings(True)
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


@contextmanager
def log_scope(**values: Any) -> Iterator[None]:
    """Bind `values` (e.g. `request_id=…`) to every line logged inside the block, in this task and the tasks it
    starts; on exit the context is restored to what it was, including anything bound inside with `bind_job`."""
    before = structlog.contextvars.get_contextvars()
    structlog.contextvars.bind_contextvars(**values)
    try:
        yield
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**before)


def bound_job(job_id: uuid.UUID | str, attempt: int | None = None) -> AbstractContextManager[None]:
    """`with bound_job(job.id, attempt=job.attempt):` — a `log_scope` naming the job (and the attempt)."""
    values: dict[str, Any] = {"job_id": str(job_id)}
    if attempt is not None:
        values["attempt"] = attempt
    return log_scope(**values)


def bind_job(job_id: uuid.UUID | str) -> None:
    """Name the job on every later line of the enclosing scope (a request's `log_scope`, or the task: each request
    and each worker attempt runs in its own), for code that learns the job id part-way through."""
    structlog.contextvars.bind_contextvars(job_id=str(job_id))

"""The logging pipeline (platform/logs.py, platform/redaction.py): every stdlib record rendered as one JSON object
or one readable line, with the bound request and job ids, secrets replaced, exceptions without local variables."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import structlog
import uvicorn.config

from boothbridge.platform.logs import (
    HANDLER_NAME,
    WIRE_LOGGERS,
    bind_job,
    bound_job,
    configure_logging,
    log_scope,
)
from boothbridge.platform.redaction import redact, redact_value
from boothbridge.settings import Settings

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """The root logger's configuration (and structlog's) as the test found them, whatever the test configures."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(stream)]


def test_json_line_has_time_level_logger_message_and_the_bound_ids(output: io.StringIO) -> None:
    configure_logging("json", "INFO", stream=output)
    log = logging.getLogger("boothbridge.test")
    with log_scope(request_id="req-1"), bound_job("5f0c7f3e-0000-4000-8000-000000000001", attempt=2):
        log.info("job %s attempt %s failed (%s)", "j", 2, "bad_answer", extra={"provider_id": "gemini"})
    log.debug("not at INFO")
    (line,) = json_lines(output)
    assert line["event"] == "job j attempt 2 failed (bad_answer)"
    assert line["level"] == "info" and line["logger"] == "boothbridge.test"
    assert line["request_id"] == "req-1"
    assert line["job_id"] == "5f0c7f3e-0000-4000-8000-000000000001" and line["attempt"] == 2
    assert line["provider_id"] == "gemini"
    assert line["timestamp"].endswith("Z")
    assert datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).utcoffset().total_seconds() == 0


def test_json_exception_is_structured_without_local_variables(output: io.StringIO) -> None:
    configure_logging("json", "INFO", stream=output)
    database_url = "postgresql://booth:hunter2-db-password@db.internal/boothbridge"

    def connect() -> None:
        ingest_password = "local-variable-secret"  # noqa: F841 - a local a traceback with locals would print
        raise ConnectionError(f"could not connect to {database_url}")

    try:
        connect()
    except ConnectionError:
        logging.getLogger("boothbridge.db").exception("start-up failed")
    text = output.getvalue()
    (line,) = json_lines(output)
    assert line["level"] == "error" and line["event"] == "start-up failed"
    (exc,) = line["exception"]
    assert exc["exc_type"] == "ConnectionError"
    assert exc["exc_value"] == "could not connect to postgresql://booth:***@db.internal/boothbridge"
    assert exc["frames"][-1]["name"] == "connect"
    assert all("locals" not in frame for frame in exc["frames"])
    assert "local-variable-secret" not in text and "hunter2-db-password" not in text


def test_text_lines_are_readable_with_the_ids_and_a_plain_traceback(output: io.StringIO) -> None:
    configure_logging("text", "INFO", stream=output)
    log = logging.getLogger("boothbridge.test")
    with log_scope(request_id="req-2"):
        bind_job("job-7")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("claiming jobs failed; retrying after %.1fs", 2.0)
    text = output.getvalue()
    first = lines(output)[0]
    assert not first.startswith("{")
    assert "[error" in first and "claiming jobs failed; retrying after 2.0s" in first
    assert "request_id=req-2" in first and "job_id=job-7" in first and "[boothbridge.test]" in first
    assert "Traceback (most recent call last):" in text and "ValueError: boom" in text
    assert "\x1b[" not in text  # not a terminal: no colour codes


def test_every_format_redacts_what_a_line_may_carry(output: io.StringIO) -> None:
    secrets = ["booth-pw-1", "whsec-2", JWT, "tt-key-3", "dbpw-4", "extra-5"]
    for log_format in ("json", "text"):
        output.seek(0)
        output.truncate()
        configure_logging(log_format, "INFO", stream=output)  # type: ignore[arg-type]
        access = logging.getLogger("uvicorn.access")
        access.info('%s - "%s %s HTTP/%s" %d', "10.0.0.1:5", "POST", "/ingest/slot-001?password=booth-pw-1", "1.1", 401)
        access.info('%s - "%s %s HTTP/%s" %d', "10.0.0.1:5", "POST", "/webhooks/turbotext/j1.whsec-2", "1.1", 404)
        logging.getLogger("httpx").info("HTTP Request: GET https://x.test/v1?key=tt-key-3 headers Bearer %s", JWT)
        logging.getLogger("sqlalchemy").warning("engine postgresql://u:dbpw-4@h/db", extra={"api_key": "extra-5"})
        text = output.getvalue()
        for secret in secrets:
            assert secret not in text, (log_format, secret, text)
        assert "/ingest/slot-001?password=*** HTTP/1.1" in text
        assert "/webhooks/turbotext/j1.*** HTTP/1.1" in text
        assert "?key=***" in text and "Bearer ***" in text and "postgresql://u:***@h/db" in text


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # several keys in one variable: every one goes
        ("env GEMINI_API_KEY=AIzaFIRST000,AIzaSECOND111", "env GEMINI_API_KEY=***"),
        # a password with a separator in it, in a booth's query string
        (
            '"POST /ingest/slot-001?password=ab,cdSECRET HTTP/1.1" 200',
            '"POST /ingest/slot-001?password=*** HTTP/1.1" 200',
        ),
        # a quoted value with spaces, commas and an escaped quote
        ('{"password": "ab cd, ef", "user": "x"}', '{"password": "***", "user": "x"}'),
        (r'{"api_key": "AIza\"ESC666", "n": 1}', '{"api_key": "***", "n": 1}'),
        # (name, value) pairs: a form's or a header list's repr
        (
            "[('password', 'hunter2'), ('x-goog-api-key', 'AIzaT'), ('name', 'bob')]",
            "[('password', '***'), ('x-goog-api-key', '***'), ('name', 'bob')]",
        ),
        # pydantic echoing a refused value
        (
            "[type=string_too_long, input_value='hunter2-too-long', input_type=str]",
            "[type=string_too_long, input_value='***', input_type=str]",
        ),
        # escaped JSON inside a JSON string (botocore's Secrets Manager answer)
        (
            'b\'{"SecretString":"{\\"ingest_password\\": \\"ingPW\\"}","Name":"x"}\'',
            'b\'{"SecretString":"***","Name":"x"}\'',
        ),
        (r"{\"jwt_secret\": \"JWTS\", \"n\": 1}", r"{\"jwt_secret\": \"***\", \"n\": 1}"),
        # a URL-encoded webhook URL
        (
            "webhook=https%3A%2F%2Fh%2Fwebhooks%2Fturbotext%2F1f0e.WHSEC555&x=1",
            "webhook=https%3A%2F%2Fh%2Fwebhooks%2Fturbotext%2F1f0e.***&x=1",
        ),
    ],
)
def test_redaction_covers_the_quoting_a_secret_may_come_in(line: str, expected: str) -> None:
    assert redact(line) == expected


def test_a_list_under_a_secret_name_is_redacted_item_by_item() -> None:
    assert redact_value({"api_keys": ["k1", "k2"], "tokens": None, "n": [1]}) == {
        "api_keys": ["***", "***"],
        "tokens": None,
        "n": [1],
    }


def test_debug_level_never_lets_the_wire_loggers_print_requests_and_answers(output: io.StringIO) -> None:
    configure_logging("json", "DEBUG", stream=output)
    logging.getLogger("botocore.parsers").debug('Response body: b\'{"SecretString": "whole-secret"}\'')
    logging.getLogger("httpcore.http11").debug("send_request_headers.started request=<Request [b'POST']>")
    logging.getLogger("boothbridge.jobs.runner").debug("our own debug line")
    assert [line["event"] for line in json_lines(output)] == ["our own debug line"]
    assert all(logging.getLogger(name).getEffectiveLevel() >= logging.INFO for name in WIRE_LOGGERS)
    # SQLAlchemy's engine stays at WARNING (at INFO it logs every statement), imported before or after.
    assert logging.getLogger("sqlalchemy.engine").getEffectiveLevel() == logging.WARNING


def test_redaction_rules_keep_what_is_not_a_secret() -> None:
    assert redact("GET /api/slots/slot-001?page=2&page_size=10") == "GET /api/slots/slot-001?page=2&page_size=10"
    assert redact('{"username": "admin", "password": "pw"}') == '{"username": "admin", "password": "***"}'
    assert redact("X-Amz-Signature=abc&X-Amz-Date=20250101") == "X-Amz-Signature=***&X-Amz-Date=20250101"
    assert redact("storage_key=media/source/1.jpg at 12:30:05") == "storage_key=media/source/1.jpg at 12:30:05"
    assert redact(f"token {JWT}") == "token ***"
    assert redact_value({"password_sent": True, "fields": {"password": "x", "n": 3}}) == {
        "password_sent": True,
        "fields": {"password": "***", "n": 3},
    }


def test_configure_is_idempotent_and_replaces_other_root_handlers(output: io.StringIO) -> None:
    root = logging.getLogger()
    root.addHandler(logging.StreamHandler(io.StringIO()))  # like Lambda's runtime handler
    configure_logging("text", "WARNING", stream=output)
    configure_logging("json", "info", stream=output)
    assert [h.name for h in root.handlers] == [HANDLER_NAME]
    assert root.level == logging.INFO
    logging.getLogger("x").info("once")
    assert [line["event"] for line in json_lines(output)] == ["once"]


def test_structlog_loggers_render_through_the_same_handler(output: io.StringIO) -> None:
    configure_logging("json", "INFO", stream=output)
    with log_scope(request_id="req-3"):
        structlog.get_logger("boothbridge.native").info("native", password="pw-native")
    (line,) = json_lines(output)
    assert line["event"] == "native" and line["request_id"] == "req-3" and line["password"] == "***"


async def test_scopes_restore_the_context_and_tasks_keep_their_own() -> None:
    structlog.contextvars.clear_contextvars()
    with log_scope(request_id="outer"):
        with bound_job("a", attempt=1):
            bind_job("b")  # later in the same scope
            assert structlog.contextvars.get_contextvars() == {"request_id": "outer", "job_id": "b", "attempt": 1}
        assert structlog.contextvars.get_contextvars() == {"request_id": "outer"}

        async def attempt(job: str) -> dict[str, Any]:
            with bound_job(job):
                await asyncio.sleep(0)
                return structlog.contextvars.get_contextvars()

        seen = await asyncio.gather(attempt("x"), attempt("y"))
        assert [s["job_id"] for s in seen] == ["x", "y"] and all(s["request_id"] == "outer" for s in seen)
        assert structlog.contextvars.get_contextvars() == {"request_id": "outer"}
    assert structlog.contextvars.get_contextvars() == {}


def test_log_format_is_json_on_lambda_and_text_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOG_FORMAT", "LOG_LEVEL", "AWS_LAMBDA_FUNCTION_NAME"):
        monkeypatch.delenv(name, raising=False)
    assert Settings(_env_file=None).log_format == "text"
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "boothbridge-ingest")
    assert Settings(_env_file=None).log_format == "json"
    monkeypatch.setenv("LOG_FORMAT", "TEXT")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = Settings(_env_file=None)
    assert (settings.log_format, settings.log_level) == ("text", "DEBUG")


def test_uvicorn_loggers_configured_by_an_earlier_server_are_brought_to_the_root_handler(output: io.StringIO) -> None:
    uvicorn_loggers = ("uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {
        name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate) for name in uvicorn_loggers
    }
    try:
        logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)  # what uvicorn.Config does by default
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # a server started with log_level=warning
        logging.getLogger("uvicorn.error").disabled = True  # a later dictConfig's disable_existing_loggers
        configure_logging("json", "INFO", stream=output)
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "h:1", "POST", "/webhooks/x/j.s3cr3t", "1.1", 404
        )
        logging.getLogger("uvicorn.error").info("Started server process")
        access, started = json_lines(output)
        assert access["event"] == 'h:1 - "POST /webhooks/x/j.*** HTTP/1.1" 404'
        assert started["event"] == "Started server process"
    finally:
        for name, (handlers, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.propagate = propagate

"""A provider's callback URL carries its secret (`/webhooks/turbotext/{job id}.{secret}`): a real emulator run
(`python -m local`, uvicorn's access log through the log pipeline) prints the job id and `***`, never the secret."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from boothbridge.platform.logs import LogFormat, build_handler
from boothbridge.platform.redaction import redact
from boothbridge.settings import PROJECT_ROOT, Settings
from tests.support.emulator_env import emulator_env, wait_healthy

STARTUP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_emulator_access_log_never_shows_a_webhook_secret(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "emulator.log"
    env = emulator_env(
        settings,
        tmp_path,
        port,
        # A public address turns provider webhooks on, as in production.
        PUBLIC_BASE_URL="https://booth.example.test",
        RUN_WORKER="false",
        RUN_CLEANUP="false",
        LOG_FORMAT="text",
    )
    secrets = [f"s3cr3t{uuid.uuid4().hex}", f"other{uuid.uuid4().hex}"]
    job_id = str(uuid.uuid4())
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "local"],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, process, log_path, STARTUP_TIMEOUT)
        # Turbotext's callback: JSON with the result link, to the attempt's URL (here one no job answers to).
        payload = {"success": True, "uploaded_image": "https://www.turbotext.ru/image/result.png", "asyncid": 1}
        r = httpx.post(f"{base}/webhooks/turbotext/{job_id}.{secrets[0]}", json=payload, timeout=10)
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_callback"
        r = httpx.post(f"{base}/webhooks/turbotext/{job_id}.{secrets[1]}?retry=1", json=payload, timeout=10)
        assert r.status_code == 404
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    output = log_path.read_text(errors="replace")
    access = [line for line in output.splitlines() if "/webhooks/turbotext/" in line]
    assert len(access) == 2, output[-4000:]
    assert all(f"/webhooks/turbotext/{job_id}.***" in line and " 404" in line for line in access), access
    # LOG_FORMAT=text (the default off Lambda): readable lines (time, level, message, logger, request id), not JSON.
    assert not any(line.startswith("{") for line in access), access
    assert all(" [info " in line and "[uvicorn.access]" in line and "request_id=" in line for line in access), access
    for secret in secrets:
        assert secret not in output


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_every_format_rewrites_uvicorn_access_records(log_format: LogFormat) -> None:
    """The log pipeline on uvicorn's record shape: the path is an argument of the message, not part of it."""
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/webhooks/turbotext/abc.SECRET?x=1", "1.1", 200),
        None,
    )
    line = build_handler(log_format).format(record)
    message = json.loads(line)["event"] if log_format == "json" else line
    assert '127.0.0.1:5000 - "POST /webhooks/turbotext/abc.***?x=1 HTTP/1.1" 200' in message
    assert "SECRET" not in line
    assert redact("/webhooks/sleepy/garbage") == "/webhooks/sleepy/***"
    assert redact("GET /api/slots/slot-001") == "GET /api/slots/slot-001"
    assert (
        redact("/webhooks/turbotext/j.s1 and /webhooks/fal/k.s2") == "/webhooks/turbotext/j.*** and /webhooks/fal/k.***"
    )

"""A real emulator run (`python -m local`, LOG_FORMAT=json) through everything that handles a secret: every line
it logs is one JSON object, request lines carry their request id, the job's lines its job id, and no secret the
run handled appears anywhere in its output.

The run: operator sign-in (password), a provider key saved through the settings API, a new ingest password, a
booth post with that password (form field, and in the query string as a misconfigured booth would send it)
processed by Turbotext (a real fake on loopback) which calls our webhook with the attempt's secret, requests with
the operator's bearer token, and a forged webhook call with a secret of its own.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from boothbridge.settings import PROJECT_ROOT, Settings
from local.fakes.turbotext_server import FakeTurbotext
from tests.support.booth import DSLR_FIELDS, credentials, jpeg
from tests.support.emulator_env import emulator_env, wait_healthy

TURBOTEXT_KEY = f"tt-key-{uuid.uuid4().hex}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def turbotext() -> Iterator[FakeTurbotext]:
    fake = FakeTurbotext(TURBOTEXT_KEY, reconnect_rounds=0, webhook_delay_sec=0.1).start()
    try:
        yield fake
    finally:
        fake.stop()


def log_run_env(settings: Settings, tmp_path: Path, port: int, turbotext: FakeTurbotext) -> dict[str, str]:
    return emulator_env(
        settings,
        tmp_path,
        port,
        LOG_FORMAT="json",
        # The fake downloads our photo from a public link and calls our webhook here.
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        TURBOTEXT_BASE_URL=turbotext.api_url,
        TURBOTEXT_API_KEY="",  # the key comes from the settings API only
        RUN_WORKER="true",
        RUN_CLEANUP="false",
        T_SYNC_RESPONSE="15",
        PYTHONUNBUFFERED="1",
    )


def exercise(base: str, creds_path: Path, turbotext: FakeTurbotext) -> dict[str, Any]:
    """Everything that handles a secret, once; returns what the checks need (secrets, ids)."""
    creds = credentials(creds_path)
    forged_secret = f"forged{uuid.uuid4().hex}"
    new_ingest_password = f"booth-{uuid.uuid4().hex}"
    with httpx.Client(base_url=base, timeout=30) as http:
        r = http.post("/api/login", json={"username": "serg", "password": creds["users"]["serg"]})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        r = http.put("/api/settings", json={"turbotext_api_key": TURBOTEXT_KEY}, headers=auth)
        assert r.status_code == 200, r.text
        r = http.put("/api/settings", json={"ingest_password": new_ingest_password}, headers=auth)
        assert r.status_code == 200, r.text
        slot = {"name": "hats", "provider_id": "turbotext", "operation_id": "change_image"}
        r = http.put("/api/slots/slot-001", json={**slot, "settings_json": {"prompt": "x"}}, headers=auth)
        assert r.status_code == 200, r.text
        booth = http.post(
            "/ingest/slot-001",
            params={"password": new_ingest_password},
            data={**DSLR_FIELDS, "password": new_ingest_password},
            files={"fileToUpload": ("IMG_0001.JPG", jpeg(320, 240), "image/jpeg")},
        )
        assert booth.status_code == 200, booth.text
        job_id = booth.headers["x-job-id"]
        r = http.post(f"/webhooks/turbotext/{job_id}.{forged_secret}", json={"success": True}, timeout=10)
        assert r.status_code == 404
        assert http.get("/api/slots", headers=auth).status_code == 200
    (delivery,) = turbotext.deliveries  # the attempt's real callback, secret and all
    return {
        "job_id": job_id,
        "booth_request_id": booth.headers["x-request-id"],
        "secrets": [
            *creds["users"].values(),
            creds["ingest_password"],
            new_ingest_password,
            creds["jwt_secret"],
            creds["ingest_hmac_key"],
            creds["encryption_key"],
            TURBOTEXT_KEY,
            token,
            forged_secret,
            delivery.url.rsplit(".", 1)[1],
        ],
    }


def test_json_logs_carry_ids_and_never_a_secret(settings: Settings, tmp_path: Path, turbotext: FakeTurbotext) -> None:
    port = free_port()
    logs, prints = tmp_path / "emulator.stderr", tmp_path / "emulator.stdout"
    with logs.open("wb") as err, prints.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "local"],
            cwd=PROJECT_ROOT,
            env=log_run_env(settings, tmp_path, port, turbotext),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, process, logs)
        run = exercise(base, settings.credentials_path, turbotext)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    text = logs.read_text(errors="replace")
    lines = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    assert all({"timestamp", "level", "logger", "event"} <= line.keys() for line in lines), text[-4000:]

    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert len(access) >= 8 and all(line.get("request_id") for line in access), access
    (booth_line,) = [line for line in access if "/ingest/slot-001" in line["event"]]
    assert booth_line["request_id"] == run["booth_request_id"]
    assert booth_line["job_id"] == run["job_id"]
    assert "password=***" in booth_line["event"]
    # The job's own lines (the adapter's, the worker's, the webhook's) carry its id, and only those lines name it.
    naming_job = [line for line in lines if run["job_id"] in line["event"]]
    assert len(naming_job) >= 3, naming_job
    assert all(line.get("job_id") == run["job_id"] for line in naming_job), naming_job
    worker_lines = [line for line in naming_job if line["logger"].startswith("boothbridge.providers")]
    assert worker_lines and all(line["attempt"] == 1 for line in worker_lines), naming_job

    everything = text + prints.read_text(errors="replace")
    for secret in run["secrets"]:
        assert secret and secret not in everything, secret

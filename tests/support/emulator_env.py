"""An emulator (`python -m local`) started as a subprocess by an end-to-end test: its environment (the test's own
database, bucket and credentials, on loopback, with no demo fakes; each test adds what it is about) and the wait
for it to answer."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx

from boothbridge.settings import Settings


def emulator_env(settings: Settings, tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    """os.environ plus the test's DATABASE_URL, S3 bucket and CREDENTIALS_PATH, DATA_DIR under `tmp_path`, PORT
    `port` on 127.0.0.1, DEMO_FAKES off; `extra` (upper-case names) is applied last."""
    assert settings.s3_bucket and settings.database_url
    return {
        **os.environ,
        "APP_ENV": "local",
        "DATABASE_URL": settings.database_url,
        "DATA_DIR": str(tmp_path / "data"),
        "S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "S3_BUCKET": settings.s3_bucket,
        "S3_ACCESS_KEY_ID": settings.s3_access_key_id or "",
        "S3_SECRET_ACCESS_KEY": settings.s3_secret_access_key or "",
        "S3_REGION": settings.s3_region,
        "CREDENTIALS_PATH": str(settings.credentials_path),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "DEMO_FAKES": "0",
        **extra,
    }


def wait_healthy(base: str, process: subprocess.Popen[bytes], log: Path, timeout_sec: float = 60.0) -> None:
    """Until `base`/health answers 200 or 503 (up, whatever its parts say); fails with the log's tail if the
    process exits first or `timeout_sec` passes."""
    deadline = time.monotonic() + timeout_sec
    while True:
        assert process.poll() is None, log.read_text(errors="replace")[-4000:]
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code in (200, 503):
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-4000:]
        time.sleep(0.2)

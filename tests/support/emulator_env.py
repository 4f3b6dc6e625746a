"""The environment of an emulator (`python -m local`) started as a subprocess by an end-to-end test: the test's
own database, bucket and credentials, on loopback, with no demo fakes; each test adds what it is about."""

from __future__ import annotations

import os
from pathlib import Path

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

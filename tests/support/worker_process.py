"""A worker process for crash tests: `python -m functions.worker` as a child configured like the test's own
settings (the sleepy provider registered, its calls appended to a file with the process id), killed with SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from boothbridge.settings import PROJECT_ROOT, Settings


class WorkerProcess:
    """`python -m functions.worker` as a child process, configured like the test's own settings; `env` overrides
    or adds environment variables (WORKER_GRACE_SEC, MAX_LEASE_EXPIRIES, ...)."""

    def __init__(self, settings: Settings, calls_file: Path, log_file: Path, **env_overrides: str) -> None:
        assert settings.lease_sec and settings.heartbeat_sec
        self.log_file = log_file
        env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
        env.update(
            {
                "APP_ENV": "test",
                "DATABASE_URL": str(settings.database_url),
                "S3_ENDPOINT_URL": str(settings.s3_endpoint_url),
                "S3_BUCKET": str(settings.s3_bucket),
                "S3_ACCESS_KEY_ID": str(settings.s3_access_key_id),
                "S3_SECRET_ACCESS_KEY": str(settings.s3_secret_access_key),
                "S3_REGION": settings.s3_region,
                "PROVIDERS_CONFIG": str(settings.providers_config),
                "PROVIDER_PLUGINS": json.dumps(["tests.fakes.sleepy:SleepyProvider"]),
                "CREDENTIALS_PATH": str(settings.credentials_path),
                "DATA_DIR": str(settings.data_dir),
                "LEASE_SEC": str(settings.lease_sec),
                "HEARTBEAT_SEC": str(settings.heartbeat_sec),
                "FALLBACK_POLL_SEC": "0.5",
                "DB_POOL_SIZE": "4",
                "WORKER_CONCURRENCY": "4",
                "SLEEPY_CALLS_FILE": str(calls_file),
                "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p),
                "PYTHONUNBUFFERED": "1",
                **env_overrides,
            }
        )
        self._log = log_file.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "functions.worker"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log_file.read_text(errors="replace")

    async def wait_ready(self, timeout: float = 30.0) -> None:
        started = time.monotonic()
        while " ready" not in self.output():
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() - started > timeout:
                raise AssertionError(f"worker not ready after {timeout}s:\n{self.output()}")
            await asyncio.sleep(0.05)

    async def wait_exit(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, f"worker did not exit:\n{self.output()}"
            await asyncio.sleep(0.05)
        self._log.close()
        return self.proc.returncode

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture
def worker_processes() -> Iterator[list[WorkerProcess]]:
    """Whatever a test starts here is killed at teardown, whatever happened."""
    procs: list[WorkerProcess] = []
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()


def sleepy_calls(path: Path) -> list[tuple[str, int, int]]:
    """The sleepy provider's calls in every process: (job id, attempt, pid)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        job_id, attempt, pid = line.split()
        rows.append((job_id, int(attempt), int(pid)))
    return rows

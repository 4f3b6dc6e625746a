"""`bench.big_waiters`'s server: the product as an operator runs it, `python -m local`, in its own process.

`EmulatorProcess` starts it with an embedded PostgreSQL and local media in a temporary folder, JSON logs on its
stderr (read line by line by a thread here, so the pipe never fills), the bench's `zero` and held `slow`
providers (`bench.held_provider`), and the in-process worker on or off (`RUN_WORKER`). It reads the process's
RSS from /proc and releases or holds the `slow` provider's jobs through the release file. `Operator` is the
admin API as an operator uses it: sign-in, slots, the job list, cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.held_provider import RELEASE_ENV
from bench.zero_provider import SLOW_OPERATION_ID, SLOW_PROVIDER_ID, ZERO_OPERATION_ID, ZERO_PROVIDER_ID, zero_catalog

REPO_ROOT = Path(__file__).resolve().parent.parent
ZERO_SLOT = "slot-001"  # -> zero/passthrough: answers at once
HELD_SLOT = "slot-002"  # -> slow/slow (HeldProvider): holds every job until released
HOLD_LIMIT_SEC = 110  # the held slot's delay_sec: the longest a job is held when nobody releases it
PLUGINS = ["bench.zero_provider:ZeroProvider", "bench.held_provider:HeldProvider"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmulatorProcess:
    """`python -m local` in `workdir`; `start()`, then `stop()` (SIGTERM, then kill after 30 s).

    `worker`: whether it runs the in-process worker loop; `parallel`: its WORKER_CONCURRENCY and the bench
    providers' `max_parallel_jobs`."""

    def __init__(self, workdir: Path, *, worker: bool, parallel: int) -> None:
        self.workdir = workdir
        self.worker = worker
        self.parallel = parallel
        self.release_file = workdir / "release"
        self.credentials_path = workdir / "credentials.json"
        self.base_url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.lines: list[dict[str, Any]] = []  # every JSON log line so far, in order (appended by the reader)
        self.other_lines: list[str] = []  # anything on stderr that is not a JSON object
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 120) -> None:
        port = _free_port()
        env = dict(os.environ)
        env.pop("DATABASE_URL", None)  # always an embedded PostgreSQL of its own, in workdir
        env.update(
            DATA_DIR=str(self.workdir / "data"),
            PORT=str(port),
            CREDENTIALS_PATH=str(self.credentials_path),
            PROVIDERS_CONFIG=str(zero_catalog(self.workdir / "providers.json", self.parallel)),
            PROVIDER_PLUGINS=json.dumps(PLUGINS),
            RUN_WORKER="true" if self.worker else "false",
            WORKER_CONCURRENCY=str(self.parallel),
            RUN_CLEANUP="false",
            LOG_FORMAT="json",
            LOG_LEVEL="info",
            **{RELEASE_ENV: str(self.release_file)},
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "local"], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._reader = threading.Thread(target=self._read_stderr, name="emulator-stderr", daemon=True)
        self._reader.start()
        self.base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200:
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"the emulator exited during start-up:\n{self.stderr_tail()}")
            time.sleep(0.3)
        raise RuntimeError(f"the emulator did not become healthy in {timeout:.0f} s:\n{self.stderr_tail()}")

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            text = raw.decode(errors="replace").strip()
            try:
                line = json.loads(text)
            except ValueError:
                line = None
            if isinstance(line, dict):
                self.lines.append(line)
            elif text:
                self.other_lines.append(text)

    def stderr_tail(self, n: int = 15) -> str:
        tail = [json.dumps(line) for line in self.lines[-n:]] + self.other_lines[-n:]
        return "\n".join(tail[-n:])

    def logged(self, key: str, since: int = 0) -> list[Any]:
        """The values of `key` on the JSON log lines from index `since` on (`len(self.lines)` marks a point)."""
        return [line[key] for line in self.lines[since:] if key in line]

    def warnings_summary(self, n: int = 8) -> list[str]:
        """The most frequent warning-or-worse log events, `count x [level] logger: event` (first 160 chars)."""
        counts: dict[str, int] = {}
        for line in self.lines:
            if str(line.get("level", "")).lower() in ("warning", "error", "critical"):
                key = f"[{line.get('level')}] {line.get('logger')}: {str(line.get('event'))[:160]}"
                exc = line.get("exception")
                if isinstance(exc, list) and exc and isinstance(exc[-1], dict):
                    key += f" ({exc[-1].get('exc_type')}: {str(exc[-1].get('exc_value'))[:160]})"
                counts[key] = counts.get(key, 0) + 1
        return [f"{c} x {k}" for k, c in sorted(counts.items(), key=lambda kv: -kv[1])[:n]]

    def _status_kb(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name == key:
                return int(rest.split()[0])
        raise RuntimeError(f"no {key} in /proc/{self.pid}/status")

    def rss_kb(self) -> int:
        """The server process's resident set size now, kB."""
        return self._status_kb("VmRSS")

    def peak_kb(self) -> int:
        """The server process's highest RSS since start or the last `reset_peak()`, kB (the kernel's VmHWM)."""
        return self._status_kb("VmHWM")

    def reset_peak(self) -> None:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS

    def release(self) -> None:
        """Every held attempt of the `slow` provider (and every later one) returns within POLL_SEC."""
        self.release_file.touch()

    def hold(self) -> None:
        self.release_file.unlink(missing_ok=True)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(5)


class Operator:
    """The admin API, signed in as the provisioned operator `serg`."""

    def __init__(self, server: EmulatorProcess) -> None:
        self.creds = json.loads(server.credentials_path.read_text())
        self.http = httpx.AsyncClient(base_url=server.base_url, timeout=60)
        self.auth: dict[str, str] = {}

    @property
    def ingest_password(self) -> str:
        return str(self.creds["ingest_password"])

    async def sign_in(self) -> None:
        r = await self.http.post("/api/login", json={"username": "serg", "password": self.creds["users"]["serg"]})
        if r.status_code != 200:
            raise RuntimeError(f"sign-in failed: {r.status_code} {r.text}")
        self.auth = {"Authorization": f"Bearer {r.json()['access_token']}"}

    async def configure_slots(self) -> None:
        """ZERO_SLOT -> zero/passthrough, HELD_SLOT -> slow/slow; a failed job answers the booth with an error."""
        for slot, provider_id, operation_id, settings in (
            (ZERO_SLOT, ZERO_PROVIDER_ID, ZERO_OPERATION_ID, {}),
            (HELD_SLOT, SLOW_PROVIDER_ID, SLOW_OPERATION_ID, {"delay_sec": HOLD_LIMIT_SEC}),
        ):
            body = {
                "name": f"bench {operation_id}",
                "provider_id": provider_id,
                "operation_id": operation_id,
                "settings_json": settings,
                "failure_policy": "error",
            }
            r = await self.http.put(f"/api/slots/{slot}", json=body, headers=self.auth)
            if r.status_code != 200:
                raise RuntimeError(f"configuring {slot} failed: {r.status_code} {r.text}")

    async def count_jobs(self, slot: str, statuses: str) -> int:
        params: dict[str, str | int] = {"slot_id": slot, "status": statuses, "page_size": 1}
        r = await self.http.get("/api/jobs", params=params, headers=self.auth)
        r.raise_for_status()
        return int(r.json()["meta"]["total"])

    async def cancel_all(self, slot: str, statuses: str = "queued,running") -> int:
        """Cancel every job of `slot` in `statuses` (its waiters are answered 502 job_cancelled); returns how many."""
        ids: list[str] = []
        page = 1
        while True:
            params: dict[str, str | int] = {"slot_id": slot, "status": statuses, "page_size": 100, "page": page}
            r = await self.http.get("/api/jobs", params=params, headers=self.auth)
            r.raise_for_status()
            data = r.json()["data"]
            ids += [job["id"] for job in data]
            if len(data) < 100:
                break
            page += 1
        limit = asyncio.Semaphore(16)

        async def cancel(job_id: str) -> None:
            async with limit:
                r = await self.http.post(f"/api/jobs/{job_id}/cancel", headers=self.auth)
                if r.status_code not in (202, 409):  # 409: it ended meanwhile
                    raise RuntimeError(f"cancel {job_id}: {r.status_code} {r.text}")

        await asyncio.gather(*(cancel(i) for i in set(ids)))
        return len(set(ids))

    async def close(self) -> None:
        await self.http.aclose()

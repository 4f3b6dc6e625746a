"""The local emulator (`make run` / `python -m local`) as a real subprocess: however it is stopped, the embedded
PostgreSQL it started stops with it; a server left behind by a run killed outright is reused by the next run and
stopped when that run ends."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from boothbridge.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow

STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One data directory for the module (initdb once); whatever postgres is still serving it at the end is
    stopped by its pid, so a failing test leaves nothing running."""
    root = tmp_path_factory.mktemp("emulator")
    yield root
    for process in postgres_serving(root / "data" / "pg"):
        with contextlib.suppress(psutil.Error):
            process.terminate()
            process.wait(10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def postgres_serving(pgdata: Path) -> list[psutil.Process]:
    """postgres processes whose command line names `pgdata` (the postmaster: its children go with it)."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        command = process.info["cmdline"] or []
        if process.info["name"] == "postgres" and str(pgdata) in command:
            found.append(process)
    return found


class Emulator:
    """The emulator started as `make run` or `python -m local`, in its own process group (like a terminal job)."""

    def __init__(self, workdir: Path, via: str) -> None:
        self.port = free_port()
        self.pgdata = workdir / "data" / "pg"
        self.log = workdir / f"emulator-{self.port}.log"
        env = {
            **os.environ,
            "APP_ENV": "local",
            "DATA_DIR": str(workdir / "data"),
            "MEDIA_ROOT": str(workdir / "media"),
            "CREDENTIALS_PATH": str(workdir / "runtime_credentials.json"),
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "DATABASE_URL": "",
            "S3_ENDPOINT_URL": "",
            "S3_BUCKET": "",
            "DEMO_FAKES": "0",
        }
        if via == "make":
            # -o: never (re)install the venv from a test; PY: this interpreter, whatever venv runs the tests.
            command = ["make", "-s", "-C", str(PROJECT_ROOT), "-o", ".venv/.installed", "run", f"PY={sys.executable}"]
        else:
            command = [sys.executable, "-m", "local"]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                command,
                cwd=PROJECT_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the emulator exited early:\n{self.output()}"
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"no /health within {STARTUP_TIMEOUT} s:\n{self.output()}")

    def postmaster(self) -> int:
        return int((self.pgdata / "postmaster.pid").read_text().split()[0])

    def wait_exit(self) -> int:
        try:
            return self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the emulator did not stop within {STOP_TIMEOUT} s:\n{self.output()}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def start(workdir: Path) -> Iterator[Callable[[str], Emulator]]:
    started: list[Emulator] = []

    def make(via: str) -> Emulator:
        emulator = Emulator(workdir, via)
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.kill()


def assert_postgres_stopped(emulator: Emulator, postmaster: int) -> None:
    assert not psutil.pid_exists(postmaster) or psutil.Process(postmaster).status() == psutil.STATUS_ZOMBIE, (
        emulator.output()
    )
    assert postgres_serving(emulator.pgdata) == [], emulator.output()
    assert not (emulator.pgdata / "postmaster.pid").exists()


def test_sigterm_to_make_run_stops_the_embedded_postgres(start: Callable[[str], Emulator]) -> None:
    emulator = start("make")
    emulator.wait_healthy()
    postmaster = emulator.postmaster()
    os.kill(emulator.process.pid, signal.SIGTERM)  # make alone: it passes SIGTERM on to its child
    assert emulator.wait_exit() != 0
    assert_postgres_stopped(emulator, postmaster)


@pytest.mark.parametrize(
    ("signum", "whole_group"),
    [(signal.SIGTERM, False), (signal.SIGINT, True), (signal.SIGHUP, True)],
    ids=["SIGTERM to python", "Ctrl-C", "terminal closed"],
)
def test_however_python_is_stopped_the_embedded_postgres_stops(
    start: Callable[[str], Emulator], signum: int, whole_group: bool
) -> None:
    emulator = start("python")
    emulator.wait_healthy()
    postmaster = emulator.postmaster()
    if whole_group:
        os.killpg(emulator.process.pid, signum)  # what a terminal (Ctrl-C) or the shell (hang-up) does
    else:
        os.kill(emulator.process.pid, signum)
    assert emulator.wait_exit() == 128 + signum
    assert_postgres_stopped(emulator, postmaster)


def test_a_server_left_by_a_killed_run_is_reused_then_stopped(start: Callable[[str], Emulator]) -> None:
    killed = start("python")
    killed.wait_healthy()
    left_behind = killed.postmaster()
    killed.kill()  # SIGKILL: no exit hook runs
    assert psutil.pid_exists(left_behind), "the killed run's postgres should still be there"

    emulator = start("python")
    emulator.wait_healthy()
    assert emulator.postmaster() == left_behind
    assert "left running by an earlier run" in emulator.output()
    os.kill(emulator.process.pid, signal.SIGTERM)
    emulator.wait_exit()
    assert_postgres_stopped(emulator, left_behind)

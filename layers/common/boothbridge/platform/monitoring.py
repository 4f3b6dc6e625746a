"""Operational views: health of the parts the service needs, and Prometheus metrics computed from the database
(so every process and every Lambda reports the same totals)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from boothbridge.catalog import Catalog
from boothbridge.db.engine import autocommit
from boothbridge.db.raw import RawDb, db_deadline, is_connection_trouble, retry_safe, trouble_reason
from boothbridge.jobs import statements as sql
from boothbridge.jobs.notifications import NotificationHub
from boothbridge.media.store import ObjectStore
from boothbridge.providers.base import Provider
from boothbridge.providers.declaration import ProbeFacts, ProviderDeclaration, adapter_built
from boothbridge.settings_store import SettingsStore

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

# The hot path's pool answering at all (retried on a fresh connection when a pooled one was dropped).
_PING = retry_safe("SELECT 1 AS ok")

# Upper bounds (ms) of the ingest latency histogram; the booth waits at most T_sync_response (≤ 50 s).
LATENCY_BUCKETS_MS = (100, 250, 500, 1000, 2500, 5000, 10000, 20000, 30000, 40000, 50000)


async def _timed(check: Any, timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    try:
        await asyncio.wait_for(check(), timeout)
    except Exception as exc:  # reported, never raised: health must answer even when parts are down
        report = {"ok": False, "error": type(exc).__name__, "latency_ms": round((time.monotonic() - started) * 1000)}
        if isinstance(exc, TimeoutError):
            report["reason"] = "timeout"
        elif is_connection_trouble(exc):
            report["reason"] = trouble_reason(exc)  # a short code, never the server's message (hosts, users)
        return report
    return {"ok": True, "latency_ms": round((time.monotonic() - started) * 1000)}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Monitoring:
    """Health and metrics, built once per process by `boothbridge.bootstrap` with the parts they look at."""

    def __init__(
        self,
        *,
        declarations: Mapping[str, ProviderDeclaration],
        engine: AsyncEngine,
        pool: RawDb,
        store: ObjectStore,
        hub: NotificationHub | None,
        settings_store: SettingsStore,
        catalog: Catalog,
        providers: Mapping[str, Provider],
    ) -> None:
        self.declarations = declarations  # the catalog providers' (looked up once, by the bootstrap)
        self.engine = engine
        self.pool = pool
        self.store = store
        self.hub = hub
        self.settings_store = settings_store
        self.catalog = catalog
        self.providers = providers

    def provider_configured(self, provider_id: str) -> bool:
        """Whether a provider has what it needs to run, as its declaration's probe says from what this process has:
        its adapter, and its API keys in effect (the settings page's, else the environment's). A provider without a
        declaration (a plugin adapter) is configured when it was built."""
        facts = ProbeFacts(
            built=provider_id in self.providers, keys=tuple(self.settings_store.values.keys.get(provider_id, ()))
        )
        declaration = self.declarations.get(provider_id)
        return declaration.configured(facts) if declaration is not None else adapter_built(facts)

    async def health(self, timeout: float = 3.0) -> dict[str, Any]:
        """`GET /health`: the database (both pools, the LISTEN connection), the object store and each provider's
        availability; never raises (a part that is down is reported with a short reason code)."""

        async def database() -> None:
            # Both pools: the hot path's (ingest, queue, worker) and SQLAlchemy's (operator API, cleanup). A
            # connection the server dropped (a restart) fails once and is replaced: that is not an outage.
            with db_deadline(time.monotonic() + timeout):
                await self.pool.one(_PING)
            for tries_left in (1, 0):
                try:
                    async with autocommit(self.engine).connect() as conn:
                        await conn.execute(text("SELECT 1"))
                    return
                except Exception as exc:
                    if not tries_left or not is_connection_trouble(exc):
                        raise

        db, storage = await asyncio.gather(_timed(database, timeout), _timed(self.store.check, timeout))
        if db.get("reason") in ("no_connection_in_time", "timeout"):
            # The pool only knows it got no connection: a connection attempt of our own says why.
            db["reason"] = await self.pool.probe(timeout) or db["reason"]
        if self.hub is not None:
            # Notifications (a waiting booth woken at once): informational; without them waiters fall back to polling.
            down_for = self.hub.disconnected_for
            db["listen"] = {"connected": down_for is None} | (
                {} if down_for is None else {"down_sec": round(down_for, 1)}
            )
        if self.pool.unreachable_for is not None and not db["ok"]:
            db["unreachable_sec"] = round(self.pool.unreachable_for, 1)
        if db["ok"]:
            try:
                await self.settings_store.refresh()
            except Exception as exc:  # the database went away between the check and this read
                if not is_connection_trouble(exc):
                    raise
        providers = {
            pid: {"available": pid in self.providers, "configured": self.provider_configured(pid)}
            for pid in self.catalog.providers
        }
        ok = db["ok"] and storage["ok"]
        return {
            "status": "ok" if ok else "unavailable",
            "checks": {"database": db, "storage": storage},
            "providers": providers,
        }

    async def metrics_text(self) -> str:
        """The Prometheus text exposition (format 0.0.4)."""
        async with autocommit(self.engine).connect() as conn:
            row = (await conn.exec_driver_sql(sql.METRICS, {"buckets": list(LATENCY_BUCKETS_MS)})).one()
        lines = [
            "# HELP boothbridge_ingest_requests_total Booth requests by outcome (processing log).",
            "# TYPE boothbridge_ingest_requests_total counter",
        ]
        for status in ("SUCCESS", "ERROR", "TIMEOUT"):
            lines.append(
                f'boothbridge_ingest_requests_total{{status="{status}"}} {row.ingest_by_status.get(status, 0)}'
            )
        lines += [
            "# HELP boothbridge_ingest_response_seconds Time from a booth request to its answer.",
            "# TYPE boothbridge_ingest_response_seconds histogram",
        ]
        counts = row.latency["buckets"] or [0] * len(LATENCY_BUCKETS_MS)
        for bound, n in zip(LATENCY_BUCKETS_MS, counts, strict=True):
            lines.append(f'boothbridge_ingest_response_seconds_bucket{{le="{bound / 1000:g}"}} {n}')
        lines.append(f'boothbridge_ingest_response_seconds_bucket{{le="+Inf"}} {row.latency["count"]}')
        lines.append(f"boothbridge_ingest_response_seconds_sum {row.latency['sum'] / 1000:g}")
        lines.append(f"boothbridge_ingest_response_seconds_count {row.latency['count']}")
        for name, helptext, values in (
            ("boothbridge_queue_depth", "Jobs waiting for a worker.", row.queued),
            ("boothbridge_jobs_in_flight", "Jobs running or waiting for a provider callback.", row.in_flight),
        ):
            lines += [f"# HELP {name} {helptext}", f"# TYPE {name} gauge"]
            for provider in sorted(set(self.catalog.providers) | set(values)):
                lines.append(f'{name}{{provider="{_label(provider)}"}} {values.get(provider, 0)}')
        lines += [
            "# HELP boothbridge_provider_errors_total Failed provider attempts by provider and error code.",
            "# TYPE boothbridge_provider_errors_total counter",
        ]
        for provider, code, n in row.errors:
            lines.append(
                f'boothbridge_provider_errors_total{{provider="{_label(provider)}",code="{_label(code)}"}} {n}'
            )
        return "\n".join(lines) + "\n"

"""The async engine (psycopg 3) and the helpers that turn a libpq URL into the two forms we use.

SQLAlchemy's asyncio layer is imported by `create_engine`, when a process builds its engine: the URL helpers
(used by the hot path's psycopg pool and the LISTEN hub) do not load it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from boothbridge.settings import Settings


def sqlalchemy_url(url: str) -> str:
    """`postgresql://…` or `postgres://…` -> `postgresql+psycopg://…` (SQLAlchemy with psycopg 3)."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")


def libpq_url(url: str) -> str:
    """The plain libpq form of a database URL, for psycopg connections outside SQLAlchemy (LISTEN)."""
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def create_engine(url: str, pool_size: int = 20, max_overflow: int | None = None) -> AsyncEngine:
    """`max_overflow` defaults to `pool_size` (up to twice as many connections under a burst)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        # No pre-ping: it costs a round trip on every checkout, the hot path's biggest overhead. A connection
        # the server dropped fails its statement once, SQLAlchemy then invalidates the pool; recycling keeps
        # connections younger than typical idle timeouts (RDS proxies, firewalls).
        pool_pre_ping=False,
        pool_recycle=300,
    )


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The same pool in autocommit mode: a single statement is its own transaction, with no BEGIN/COMMIT
    round trips. Use it for single-statement reads and for writes that are one (CTE) statement."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL when set; otherwise start the embedded PostgreSQL under the data directory (blocking; the
    embedded server's module is imported only then, keeping a Lambda cold start free of it)."""
    if settings.database_url:
        return settings.database_url
    from boothbridge.db.embedded import start_embedded_postgres

    return start_embedded_postgres(settings.data_dir)

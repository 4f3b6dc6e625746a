"""The composition root: builds engine, storage, catalog, providers and the queue once per process."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from boothbridge.catalog import Catalog
from boothbridge.credentials.file import Credentials
from boothbridge.credentials.secret_box import SecretBox
from boothbridge.credentials.source import load_credentials
from boothbridge.db.engine import autocommit, create_engine, libpq_url
from boothbridge.db.raw import RawDb
from boothbridge.images.boundary import use_pixel_limit
from boothbridge.jobs.dispatch import JobDispatcher, LambdaInvokeDispatcher, NotifyDispatcher
from boothbridge.jobs.notifications import NotificationHub
from boothbridge.jobs.queue import JobQueue
from boothbridge.jobs.runner import JobRunner, RetryPolicy
from boothbridge.media.backends import build_object_store
from boothbridge.media.links import PublicLinks
from boothbridge.media.service import MediaService
from boothbridge.media.store import ObjectStore
from boothbridge.providers.base import Provider
from boothbridge.providers.registry import build_providers
from boothbridge.settings import Settings
from boothbridge.settings_store import RuntimeConfig

log = logging.getLogger(__name__)


def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL when set; otherwise start the embedded PostgreSQL under the data directory."""
    if settings.database_url:
        return settings.database_url
    from boothbridge.db.embedded import start_embedded_postgres

    return start_embedded_postgres(settings.data_dir)


async def build_dispatcher(settings: Settings) -> JobDispatcher:
    if settings.worker_dispatch == "notify":
        return NotifyDispatcher()
    assert settings.worker_function_name is not None  # enforced by Settings
    dispatcher = LambdaInvokeDispatcher(
        settings.worker_function_name, region=settings.aws_region, endpoint_url=settings.lambda_endpoint_url
    )
    await dispatcher.open()
    return dispatcher


@dataclass
class Container:
    """Everything a function needs, built once. `close()` releases it in reverse order."""

    settings: Settings
    database_url: str
    engine: AsyncEngine
    db: AsyncEngine  # the same pool in autocommit mode, for single statements
    sql: RawDb  # plain psycopg connections for the hot path (ingest, queue, worker)
    store: ObjectStore
    media: MediaService
    catalog: Catalog
    providers: dict[str, Provider]
    queue: JobQueue
    runner: JobRunner
    credentials: Credentials
    dispatcher: JobDispatcher
    runtime: RuntimeConfig
    hub: NotificationHub | None = None

    async def close(self) -> None:
        if self.hub is not None:
            await self.hub.stop()
        await self.dispatcher.close()
        for provider in self.providers.values():
            await provider.close()
        await self.store.close()
        await self.sql.close()
        await self.engine.dispose()


async def build_container(
    settings: Settings,
    *,
    migrate: bool = False,
    provision: bool = False,
    listen: bool = True,
    database_url: str | None = None,
) -> Container:
    """Build the process's container. `migrate`/`provision` are for the emulator's first start; on Lambda
    migrations run at deploy time. `listen` starts the single LISTEN connection (needed by ingest waiters and
    the in-process worker)."""
    url = database_url if database_url else await asyncio.to_thread(resolve_database_url, settings)
    if migrate:
        from boothbridge.db.migrate import upgrade_to_head

        await asyncio.to_thread(upgrade_to_head, url)
    catalog = Catalog.load(settings.providers_config)
    use_pixel_limit(settings.max_image_pixels)
    creds, created = await load_credentials(settings)
    if created:
        log.warning("generated new credentials at %s", settings.credentials_path.resolve())
    # Two pools of `db_pool_size` each, so at most 2 x db_pool_size connections (as when the engine alone could
    # overflow to twice its size): the hot path's plain psycopg pool, and SQLAlchemy's for everything else.
    engine = create_engine(url, settings.db_pool_size, max_overflow=0)
    raw = RawDb(url, settings.db_pool_size)  # opened last, so a failed build leaves nothing running
    if provision:
        from boothbridge.platform.provision import apply_credentials

        await apply_credentials(engine, creds)
    store = await build_object_store(settings)
    media = MediaService(engine, store)
    providers = build_providers(settings, catalog)
    limits = {p.id: p.ingest.max_parallel_jobs for p in catalog.providers.values()}
    queue = JobQueue(raw, limits, settings.lease_sec, max_lease_expiries=settings.max_lease_expiries)
    runner = JobRunner(
        queue,
        media,
        providers,
        catalog,
        retry=RetryPolicy(settings.retry_base_sec, settings.retry_max_sec),
        heartbeat_sec=settings.heartbeat_sec,
        result_ttl_sec=settings.result_ttl_sec,
        links=PublicLinks(
            media, settings.base_url, settings.public_link_ttl_sec, webhooks=settings.public_base_url is not None
        ),
        max_image_pixels=settings.max_image_pixels,
    )
    dispatcher = await build_dispatcher(settings)
    runtime = RuntimeConfig(engine, settings, SecretBox(creds.encryption_key), providers)
    await runtime.refresh(force=True)  # stored keys override the environment's before any job runs
    runner.runtime = runtime
    await raw.open()
    hub = None
    if listen:
        hub = NotificationHub(libpq_url(url), poll=queue.ended_among, poll_interval_sec=settings.fallback_poll_sec)
        try:
            await hub.start()
        except BaseException:
            await hub.stop()
            await raw.close()
            raise
        # A job that ends in this process wakes its waiters here at once, without the NOTIFY round trip.
        runner.ends = hub
    return Container(
        settings=settings,
        database_url=url,
        engine=engine,
        db=autocommit(engine),
        sql=raw,
        store=store,
        media=media,
        catalog=catalog,
        providers=providers,
        queue=queue,
        runner=runner,
        credentials=creds,
        dispatcher=dispatcher,
        runtime=runtime,
        hub=hub,
    )

"""The composition root: builds the process's parts once and wires each service in its constructor.

`build_container(settings)` makes the two database handles (SQLAlchemy's engine for the operator side, the plain
psycopg pool for the hot path), the object store, the catalog, the provider adapters, the settings store, the
queue, the LISTEN hub, the runner and the services (ingest, webhooks, cleanup, monitoring), each given only the
collaborators it uses. It neither migrates nor provisions: the entry points that need that call
`boothbridge.platform.provision.prepare_database` first (the emulator, `make provision`, the tests); on AWS the
deploy runs it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from boothbridge.catalog import Catalog
from boothbridge.credentials.file import Credentials
from boothbridge.credentials.secret_box import SecretBox
from boothbridge.credentials.source import load_credentials
from boothbridge.db.engine import create_engine, libpq_url, resolve_database_url
from boothbridge.db.raw import RawDb
from boothbridge.images.boundary import use_pixel_limit
from boothbridge.ingest.service import IngestService
from boothbridge.jobs.callbacks import CallbackQueue
from boothbridge.jobs.dispatch import JobDispatcher, LambdaInvokeDispatcher, NotifyDispatcher
from boothbridge.jobs.notifications import NotificationHub
from boothbridge.jobs.queue import JobQueue
from boothbridge.jobs.retry import RetryPolicy
from boothbridge.jobs.runner import JobRunner
from boothbridge.jobs.webhooks import WebhookService
from boothbridge.media.backends import build_object_store
from boothbridge.media.links import PublicLinks
from boothbridge.media.service import MediaService
from boothbridge.media.store import ObjectStore
from boothbridge.platform.cleanup import Cleanup
from boothbridge.platform.memory import keep_big_blocks_returnable
from boothbridge.platform.monitoring import Monitoring
from boothbridge.providers.base import Provider
from boothbridge.providers.registry import build_providers, declarations
from boothbridge.settings import Settings
from boothbridge.settings_store import SettingsStore

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)


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
    """What an entry point needs, built once per process; `close()` releases it in reverse order. Handlers take
    the one service they call from here (never hand the container itself to a service)."""

    settings: Settings
    database_url: str
    engine: AsyncEngine  # SQLAlchemy: the operator side (slots, accounts, media rows, statistics)
    pool: RawDb  # plain psycopg connections: the hot path (ingest, the queue, the worker)
    store: ObjectStore
    media: MediaService
    catalog: Catalog
    providers: dict[str, Provider]
    settings_store: SettingsStore
    queue: JobQueue
    runner: JobRunner
    credentials: Credentials
    dispatcher: JobDispatcher
    hub: NotificationHub | None
    ingest: IngestService
    webhooks: WebhookService
    cleanup: Cleanup
    monitoring: Monitoring

    async def close(self) -> None:
        if self.hub is not None:
            await self.hub.stop()
        await self.dispatcher.close()
        for provider in self.providers.values():
            await provider.close()
        await self.store.close()
        await self.pool.close()
        await self.engine.dispose()


async def build_container(settings: Settings, *, listen: bool = True, database_url: str | None = None) -> Container:
    """Build the process's parts. `listen` starts the single LISTEN connection (needed by ingest waiters and the
    in-process worker). `database_url` overrides the settings' (an entry point that already resolved it).

    Raises whatever a part raises when it cannot start (no database, a missing credentials secret, a bad bucket);
    a failed build leaves nothing running."""
    url = database_url if database_url else await asyncio.to_thread(resolve_database_url, settings)
    catalog = Catalog.load(settings.providers_config)
    use_pixel_limit(settings.max_image_pixels)
    keep_big_blocks_returnable()  # photos' buffers go back to the system when freed (see platform/memory.py)
    creds, created = await load_credentials(settings)
    if created:
        log.warning("generated new credentials at %s", settings.credentials_path.resolve())
    # Two pools of `db_pool_size` each, so at most 2 x db_pool_size connections: the hot path's plain psycopg
    # pool, and SQLAlchemy's for everything else.
    engine = create_engine(url, settings.db_pool_size, max_overflow=0)
    pool = RawDb(url, settings.db_pool_size)  # opened last, so a failed build leaves nothing running
    store = await build_object_store(settings)
    media = MediaService(engine, store)
    providers = build_providers(settings, catalog)
    settings_store = SettingsStore(engine, settings, SecretBox(creds.encryption_key), providers)
    await settings_store.refresh(force=True)  # stored keys override the environment's before any job runs
    limits = {p.id: p.ingest.max_parallel_jobs for p in catalog.providers.values()}
    queue = JobQueue(pool, limits, settings.lease_sec, max_lease_expiries=settings.max_lease_expiries)
    dispatcher = await build_dispatcher(settings)
    await pool.open()
    hub = None
    if listen:
        hub = NotificationHub(libpq_url(url), poll=queue.ended_among, poll_interval_sec=settings.fallback_poll_sec)
        try:
            await hub.start()
        except BaseException:
            await hub.stop()
            await pool.close()
            raise
    retry = RetryPolicy(settings.retry_base_sec, settings.retry_max_sec)
    callbacks = CallbackQueue(pool)  # the statements of jobs parked at a provider that answers by webhook
    runner = JobRunner(
        queue,
        media,
        providers,
        catalog,
        callbacks=callbacks,
        retry=retry,
        heartbeat_sec=settings.heartbeat_sec,
        result_ttl_sec=settings.result_ttl_sec,
        links=PublicLinks(
            media, settings.base_url, settings.public_link_ttl_sec, webhooks=settings.public_base_url is not None
        ),
        max_image_pixels=settings.max_image_pixels,
        settings_store=settings_store,
        # A job that ends in this process wakes its waiters here at once, without the NOTIFY round trip.
        ends=hub,
        delivery_allows_private=settings.fetch_allows_private,
    )
    ingest = IngestService(
        settings=settings,
        settings_store=settings_store,
        pool=pool,
        catalog=catalog,
        providers=providers,
        ingest_hmac_key=creds.ingest_hmac_key,
        queue=queue,
        media=media,
        dispatcher=dispatcher,
        hub=hub,
    )
    webhooks = WebhookService(
        settings=settings,
        retry=retry,
        catalog=catalog,
        providers=providers,
        queue=queue,
        callbacks=callbacks,
        media=media,
        hub=hub,
    )
    cleanup = Cleanup(
        engine=engine,
        media=media,
        callbacks=callbacks,
        dispatcher=dispatcher,
        hub=hub,
        log_retention_days=settings.log_retention_days,
        delivery_allows_private=settings.fetch_allows_private,
    )
    monitoring = Monitoring(
        declarations=declarations(settings, catalog.providers),
        engine=engine,
        pool=pool,
        store=store,
        hub=hub,
        settings_store=settings_store,
        catalog=catalog,
        providers=providers,
    )
    return Container(
        settings=settings,
        database_url=url,
        engine=engine,
        pool=pool,
        store=store,
        media=media,
        catalog=catalog,
        providers=providers,
        settings_store=settings_store,
        queue=queue,
        runner=runner,
        credentials=creds,
        dispatcher=dispatcher,
        hub=hub,
        ingest=ingest,
        webhooks=webhooks,
        cleanup=cleanup,
        monitoring=monitoring,
    )

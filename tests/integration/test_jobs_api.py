"""The operator's job endpoints: list/filter/paginate, detail and timings, the live status stream (SSE, over a
real HTTP server and without a LISTEN hub), and cancel: queued (a waiting booth gets 502 job_cancelled), running
(the heartbeat stops the provider call), a late result discarded by the completion fence, finished (409)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text

import functions.admin.routes.jobs as jobs_api
from boothbridge.bootstrap import Container
from boothbridge.db.engine import libpq_url
from boothbridge.jobs.model import JobRecord
from boothbridge.jobs.queue import CHANNEL_DONE
from boothbridge.jobs.statements import attempt_error
from boothbridge.jobs.worker_loop import WorkerLoop
from boothbridge.media.service import MediaRef
from boothbridge.providers.base import ProviderParked, ProviderRequest, ProviderResult
from boothbridge.settings import Settings
from functions.admin.app import create_app as create_admin
from local.app import Emulator
from tests.fakes.sleepy import SleepyProvider
from tests.integration.test_queue import PHOTO, new_job, result_ref
from tests.support.booth import configure_slot, credentials, operator_token, post_photo
from tests.support.live_server import serving

NO_WORKER = {"run_worker": False}
# The booth's waiter must be woken by the cancel itself: no fallback poll during the test.
NO_WORKER_NO_POLL = {"run_worker": False, "fallback_poll_sec": 5.0}
EXPIRE = text("UPDATE media_objects SET expires_at = now() - interval '1 s' WHERE id = :id")


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Per-test overrides through indirect parametrisation."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
async def token(client: httpx.AsyncClient, settings: Settings) -> str:
    return await operator_token(client, settings.credentials_path)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    return str(r.json()["error"]["code"])


async def scalar(c: Container, sql: str, **params: Any) -> Any:
    async with c.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def wait_for_status(client: httpx.AsyncClient, token: str, job_id: uuid.UUID, status: str) -> dict[str, Any]:
    for _ in range(200):
        body: dict[str, Any] = (await client.get(f"/api/jobs/{job_id}", headers=auth(token))).json()
        if body["status"] == status:
            return body
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} never became {status}: {body}")


async def finish(c: Container, job: JobRecord, *, fail: bool = False) -> None:
    """Claim the job and end it here (no worker needed)."""
    [claimed] = await c.queue.claim("test", 1, only_id=job.id)
    if fail:
        assert await c.queue.fail_attempt(job.id, claimed.attempt, "upstream_rejected", "no", False, None) == "failed"
    else:
        ref = await result_ref(c)
        assert await c.queue.complete(job.id, claimed.attempt, ref, datetime.now(UTC) + timedelta(hours=1), 0.25)


def collapsed(events: list[Any]) -> list[Any]:
    """Stream events (tuples whose first two items are the event and its data) without those that repeat the one
    before's event, status and attempt: a phase within one attempt (the short `uploading_image` after the provider
    answered) is an event only if the stream's poll happened to see it."""
    kept: list[Any] = []
    for event in events:
        key = (event[0], event[1].get("status"), event[1].get("attempt")) if isinstance(event[1], dict) else event
        if not kept or key != kept[-1][0]:
            kept.append((key, event))
    return [event for _, event in kept]


def parse_sse(body: str) -> list[tuple[str, Any]]:
    """(event, data) per message; comments come out as ("comment", text), `retry:` lines are skipped."""
    out: list[tuple[str, Any]] = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        if block.startswith(":"):
            out.append(("comment", block[1:].strip()))
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n") if not line.startswith("retry:"))
        if fields:
            out.append((fields["event"], json.loads(fields["data"])))
    return out


# ---- list ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [NO_WORKER], indirect=True)
async def test_list_is_the_operators_own_jobs_newest_first_paginated_and_filtered(
    client: httpx.AsyncClient, container: Container, token: str
) -> None:
    mine = [await new_job(container, slot_id="slot-001") for _ in range(4)]
    mine += [await new_job(container, slot_id="slot-002") for _ in range(2)]
    theirs = await new_job(container, slot_id="slot-041")  # igor's slot
    await finish(container, mine[0])
    await finish(container, mine[4], fail=True)
    newest_first = [str(j.id) for j in reversed(mine)]

    r = await client.get("/api/jobs", headers=auth(token))
    assert r.status_code == 200, r.text
    body = r.json()
    assert [j["id"] for j in body["data"]] == newest_first
    assert body["meta"] == {"page": 1, "page_size": 20, "total": 6}
    assert str(theirs.id) not in {j["id"] for j in body["data"]}

    page2 = (await client.get("/api/jobs?page=2&page_size=4", headers=auth(token))).json()
    assert [j["id"] for j in page2["data"]] == newest_first[4:]
    assert page2["meta"] == {"page": 2, "page_size": 4, "total": 6}
    past_end = (await client.get("/api/jobs?page=9&page_size=4", headers=auth(token))).json()
    assert past_end == {"data": [], "meta": {"page": 9, "page_size": 4, "total": 6}}

    on_slot = (await client.get("/api/jobs?slot_id=slot-002", headers=auth(token))).json()
    assert [j["id"] for j in on_slot["data"]] == [str(mine[5].id), str(mine[4].id)]
    failed = (await client.get("/api/jobs?status=failed", headers=auth(token))).json()
    assert [(j["id"], j["status"]) for j in failed["data"]] == [(str(mine[4].id), "failed")]
    ended = (await client.get("/api/jobs?status=succeeded,failed", headers=auth(token))).json()
    assert {j["id"] for j in ended["data"]} == {str(mine[0].id), str(mine[4].id)}
    queued_on_1 = (await client.get("/api/jobs?status=queued&slot_id=slot-001", headers=auth(token))).json()
    assert [j["id"] for j in queued_on_1["data"]] == [str(j.id) for j in reversed(mine[1:4])]
    # Another operator's slot is just empty for me; igor sees his job only.
    assert (await client.get("/api/jobs?slot_id=slot-041", headers=auth(token))).json()["meta"]["total"] == 0
    igor = await operator_token(client, container.settings.credentials_path, "igor")
    assert [j["id"] for j in (await client.get("/api/jobs", headers=auth(igor))).json()["data"]] == [str(theirs.id)]


@pytest.mark.parametrize(
    "query", ["status=done", "status=queued,bogus", "page=0", "page=-1", "page_size=0", "page_size=101"]
)
async def test_list_refuses_invalid_parameters(client: httpx.AsyncClient, token: str, query: str) -> None:
    r = await client.get(f"/api/jobs?{query}", headers=auth(token))
    assert error_code(r, 400) == "invalid_parameter"
    assert r.json()["error"]["details"]["parameter"] == query.split("=")[0]


async def test_list_accepts_the_page_size_bounds(client: httpx.AsyncClient, token: str) -> None:
    for size in (1, 100):
        r = await client.get(f"/api/jobs?page_size={size}", headers=auth(token))
        assert r.status_code == 200, r.text
        assert r.json()["meta"]["page_size"] == size


async def test_job_endpoints_need_a_token(client: httpx.AsyncClient, container: Container) -> None:
    job = await new_job(container)
    for method, path in (
        ("GET", "/api/jobs"),
        ("GET", f"/api/jobs/{job.id}"),
        ("GET", f"/api/jobs/{job.id}/events"),
        ("POST", f"/api/jobs/{job.id}/cancel"),
    ):
        r = await client.request(method, path, headers={"Authorization": "Bearer nope"})
        assert error_code(r, 401) == "invalid_token", path
        assert error_code(await client.request(method, path), 401) == "unauthorized", path


@pytest.mark.parametrize("settings_overrides", [NO_WORKER], indirect=True)
async def test_unknown_invalid_and_foreign_jobs_are_not_found(
    client: httpx.AsyncClient, container: Container, token: str
) -> None:
    theirs = await new_job(container, slot_id="slot-041")
    for job_id in (str(uuid.uuid4()), "not-a-uuid", str(theirs.id)):
        for method, path in (("GET", ""), ("GET", "/events"), ("POST", "/cancel")):
            r = await client.request(method, f"/api/jobs/{job_id}{path}", headers=auth(token))
            assert error_code(r, 404) == "job_not_found", (job_id, path)
    # The foreign job was left alone.
    assert await scalar(container, "SELECT status FROM jobs WHERE id = :id", id=theirs.id) == "queued"


# ---- detail ----------------------------------------------------------------------------------------------


async def test_detail_shows_attempts_errors_cost_timings_and_the_live_result_link(
    client: httpx.AsyncClient, container: Container, settings: Settings, token: str
) -> None:
    job = await new_job(container, settings_json={"delay_sec": 0.3, "fail_first": 1})
    body = await wait_for_status(client, token, job.id, "succeeded")

    assert {k: body[k] for k in ("id", "slot_id", "provider_id", "operation_id", "is_test")} == {
        "id": str(job.id),
        "slot_id": "slot-001",
        "provider_id": "sleepy",
        "operation_id": "echo",
        "is_test": False,
    }
    assert (body["attempt"], body["max_attempts"], body["cost"], body["error"]) == (2, 3, 0.01, None)
    [first_error] = body["attempt_errors"]
    assert first_error["attempt"] == 1
    assert (first_error["code"], first_error["retryable"]) == ("upstream_unavailable", True)
    t = body["timings"]
    assert t["created_at"] <= t["started_at"] < t["finished_at"]
    assert t["run_ms"] >= 600  # two attempts of 0.3 s each
    assert t["queued_ms"] >= 0
    assert abs(t["queued_ms"] + t["run_ms"] - t["total_ms"]) <= 1
    # The result link serves the result while it is kept, and disappears once the result expired.
    row = await scalar(container, "SELECT result_media_id FROM jobs WHERE id = :id", id=job.id)
    assert body["result_url"] == f"{settings.base_url}/public/media/{row}"
    served = await client.get(f"/public/media/{row}")
    assert (served.status_code, served.content) == (200, PHOTO)
    async with container.engine.begin() as conn:
        await conn.execute(
            text("UPDATE media_objects SET expires_at = now() - interval '1 s' WHERE id = :id"), {"id": row}
        )
    assert (await client.get(f"/api/jobs/{job.id}", headers=auth(token))).json()["result_url"] is None


@pytest.mark.parametrize("settings_overrides", [NO_WORKER], indirect=True)
async def test_detail_of_waiting_and_failed_jobs(client: httpx.AsyncClient, container: Container, token: str) -> None:
    queued = await new_job(container)
    await asyncio.sleep(0.05)
    body = (await client.get(f"/api/jobs/{queued.id}", headers=auth(token))).json()
    assert (body["status"], body["attempt"], body["result_url"], body["error"], body["cost"]) == (
        "queued",
        0,
        None,
        None,
        None,
    )
    t = body["timings"]
    # Still waiting: queued so far == total so far; it never ran.
    assert (t["started_at"], t["finished_at"], t["run_ms"]) == (None, None, None)
    assert t["queued_ms"] >= 50 and t["total_ms"] >= t["queued_ms"]

    failing = await new_job(container)
    await finish(container, failing, fail=True)
    body = (await client.get(f"/api/jobs/{failing.id}", headers=auth(token))).json()
    assert body["status"] == "failed"
    assert body["error"] == {"code": "upstream_rejected", "message": "no"}
    assert [e["code"] for e in body["attempt_errors"]] == ["upstream_rejected"]
    assert body["timings"]["finished_at"] is not None and body["result_url"] is None


@pytest.mark.parametrize("settings_overrides", [NO_WORKER], indirect=True)
async def test_attempt_errors_are_answered_as_recorded_details_only_when_known(
    client: httpx.AsyncClient, container: Container, token: str
) -> None:
    job = await new_job(container)
    recorded = [
        attempt_error(1, "upstream_unavailable", "503 from the provider", True),
        attempt_error(2, "quota_exhausted", "daily quota", True, {"retry_after_sec": 30, "scope": "day"}),
    ]
    async with container.engine.begin() as conn:
        await conn.execute(
            text("UPDATE jobs SET attempt_errors = CAST(:errors AS jsonb) WHERE id = :id"),
            {"errors": json.dumps(recorded), "id": job.id},
        )
    detail = (await client.get(f"/api/jobs/{job.id}", headers=auth(token))).json()
    listed = (await client.get("/api/jobs", headers=auth(token))).json()["data"]
    for body in (detail, next(j for j in listed if j["id"] == str(job.id))):
        # The first has no `details` key at all (not a null one); the second has its details as stored.
        assert body["attempt_errors"] == recorded
        assert "details" not in body["attempt_errors"][0]


# ---- the status stream -----------------------------------------------------------------------------------


@pytest.fixture
async def live(emulator: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    """The emulator behind a real HTTP server (httpx's in-process transport buffers whole responses, so a
    stream's timing can only be seen over a socket)."""
    async with serving(emulator) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        yield http


async def _events(response: httpx.Response) -> AsyncIterator[tuple[str, Any, float]]:
    """Parse a live SSE response message by message, with the time each was received."""
    buffer = ""
    async for chunk in response.aiter_text():
        buffer += chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            for event, data in parse_sse(block + "\n\n"):
                yield event, data, time.monotonic()


@pytest.mark.parametrize("settings_overrides", [NO_WORKER], indirect=True)
async def test_events_stream_queued_running_succeeded_as_they_happen(
    live: httpx.AsyncClient, container: Container, settings: Settings
) -> None:
    token = await operator_token(live, settings.credentials_path)
    job = await new_job(container, settings_json={"delay_sec": 1.0})
    worker = WorkerLoop(container.queue, container.runner, container.hub, concurrency=2, poll_sec=1.0)
    seen: list[tuple[str, Any, float]] = []
    try:
        async with live.stream("GET", f"/api/jobs/{job.id}/events", headers=auth(token)) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["cache-control"] == "no-cache"
            async for event in _events(r):
                seen.append(event)
                if event[0] == "status" and event[1]["status"] == "queued":
                    await worker.start()  # only now can the job start: the first event is certainly "queued"
    finally:
        await worker.stop()

    seen = collapsed(seen)
    assert [(e, d.get("status"), d.get("attempt")) for e, d, _ in seen] == [
        ("status", "queued", 0),
        ("status", "running", 1),
        ("status", "succeeded", 1),
        ("end", "succeeded", None),
    ]
    assert set(seen[0][1]) == {
        "status",
        "attempt",
        "at",
        "error",
        "step_index",
        "step_count",
        "alternative",
        "phase",
        "progress",
    }
    assert [(d["phase"], d["progress"]) for _, d, _ in seen[:3]] == [
        ("queued", 0.0),
        ("processing_echo", 0.3),
        ("succeeded", 1.0),
    ]
    # Delivered as it happened: "running" arrived while the provider still worked (1 s), not with the end.
    assert seen[2][2] - seen[1][2] >= 0.7
    finished = await scalar(container, "SELECT finished_at FROM jobs WHERE id = :id", id=job.id)
    assert seen[2][1]["at"] == finished.isoformat()


@pytest.mark.parametrize("settings_overrides", [NO_WORKER], indirect=True)
async def test_events_without_a_hub_poll_the_row_and_send_keep_alives(
    container: Container, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs_api, "KEEPALIVE_SEC", 0.3)
    # The admin function as deployed on Lambda: no LISTEN connection in its container.
    app = create_admin(settings, dataclasses.replace(container, hub=None))
    worker = WorkerLoop(container.queue, container.runner, container.hub, concurrency=1, poll_sec=1.0)
    job = await new_job(container, settings_json={"delay_sec": 1.2})

    async def start_worker_later() -> None:
        await asyncio.sleep(1.0)
        await worker.start()

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as http:
        token = await operator_token(http, settings.credentials_path)
        starter = asyncio.create_task(start_worker_later())
        try:
            r = await http.get(f"/api/jobs/{job.id}/events", headers=auth(token))  # ends with the job
        finally:
            await starter
            await worker.stop()
    assert r.status_code == 200
    events = collapsed(parse_sse(r.text))
    statuses = [(e, d) if e == "comment" else (e, d["status"]) for e, d in events]
    assert ("comment", "keep-alive") in statuses[: statuses.index(("status", "running"))]
    assert [s for s in statuses if s[0] != "comment"] == [
        ("status", "queued"),
        ("status", "running"),
        ("status", "succeeded"),
        ("end", "succeeded"),
    ]


@pytest.mark.parametrize("settings_overrides", [NO_WORKER], indirect=True)
async def test_a_client_that_goes_away_ends_its_stream_on_the_server(
    live: httpx.AsyncClient, container: Container, settings: Settings
) -> None:
    hub = container.hub
    assert hub is not None
    token = await operator_token(live, settings.credentials_path)
    job = await new_job(container)  # stays queued: its stream would go on for MAX_STREAM_SEC
    async with live.stream("GET", f"/api/jobs/{job.id}/events", headers=auth(token)) as r:
        async for event, data, _ in _events(r):
            assert (event, data["status"]) == ("status", "queued")
            break
        assert hub.waiting == 1  # the stream's watch of the job
    # The connection is closed: the server cancels the stream and its watch, without waiting for the job.
    for _ in range(100):
        if hub.waiting == 0:
            break
        await asyncio.sleep(0.02)
    assert hub.waiting == 0


@pytest.mark.parametrize("settings_overrides", [NO_WORKER], indirect=True)
async def test_events_of_a_finished_job_are_its_status_and_end(
    client: httpx.AsyncClient, container: Container, token: str
) -> None:
    job = await new_job(container)
    await finish(container, job, fail=True)
    r = await client.get(f"/api/jobs/{job.id}/events", headers=auth(token))
    assert r.status_code == 200
    assert parse_sse(r.text) == [
        (
            "status",
            {
                "status": "failed",
                "attempt": 1,
                "at": (await scalar(container, "SELECT finished_at FROM jobs WHERE id = :id", id=job.id)).isoformat(),
                "error": {"code": "upstream_rejected", "message": "no"},
                "step_index": 0,
                "step_count": 1,
                "alternative": 0,
                "phase": "failed",
                "progress": 0.0,
            },
        ),
        ("end", {"status": "failed"}),
    ]


# ---- cancel ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings_overrides", "policy"),
    [(NO_WORKER_NO_POLL, "error"), (NO_WORKER_NO_POLL, "original")],
    indirect=["settings_overrides"],
)
async def test_cancel_of_a_queued_job_ends_it_at_once_and_answers_the_waiting_booth(
    client: httpx.AsyncClient,
    container: Container,
    settings: Settings,
    token: str,
    policy: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # This process's waiters must be woken by the cancel directly (hub.job_ended), so the hub here ignores
    # bb_job_done; that the NOTIFY is sent (for other processes) is checked on a connection of our own.
    hub = container.hub
    assert hub is not None
    dispatch = hub._dispatch
    monkeypatch.setattr(
        hub, "_dispatch", lambda channel, payload: channel == CHANNEL_DONE or dispatch(channel, payload)
    )
    listener = await psycopg.AsyncConnection.connect(libpq_url(container.database_url), autocommit=True)
    await listener.execute(f"LISTEN {CHANNEL_DONE}")
    r = await configure_slot(client, token, "slot-001", "sleepy", "echo", {}, failure_policy=policy)
    assert r.status_code == 200, r.text
    password = credentials(settings.credentials_path)["ingest_password"]
    booth = asyncio.create_task(post_photo(client, "slot-001", PHOTO, password))
    for _ in range(200):
        listed = (await client.get("/api/jobs?slot_id=slot-001", headers=auth(token))).json()["data"]
        if listed:
            break
        await asyncio.sleep(0.02)
    [job] = listed
    assert job["status"] == "queued"
    await asyncio.sleep(0.2)  # the booth is waiting for it now

    cancelled_at = time.monotonic()
    r = await client.post(f"/api/jobs/{job['id']}/cancel", headers=auth(token))
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["id"], body["status"], body["attempt"]) == (job["id"], "cancelled", 0)
    assert body["error"] == {"code": "cancelled", "message": "cancelled by operator serg"}
    assert body["attempt_errors"] == []  # nothing was running
    assert body["timings"]["finished_at"] is not None and body["timings"]["run_ms"] is None

    answer = await booth
    assert time.monotonic() - cancelled_at < 0.8  # woken by the cancel, not by a poll or T_sync (10 s)
    async with listener:
        note = await anext(aiter(listener.notifies(timeout=2.0)))
    assert note.payload == job["id"]
    assert answer.headers["x-job-id"] == job["id"]
    if policy == "error":
        assert error_code(answer, 502) == "job_cancelled"
    else:
        assert (answer.status_code, answer.headers["x-fallback"], answer.content) == (200, "original", PHOTO)
    log = await scalar(container, "SELECT error_code FROM processing_log WHERE job_id = :id", id=uuid.UUID(job["id"]))
    assert log == "job_cancelled"
    # Nobody will run it, and a second cancel is refused.
    assert await container.queue.claim("late-worker", 5) == []
    assert SleepyProvider.calls == []
    again = await client.post(f"/api/jobs/{job['id']}/cancel", headers=auth(token))
    assert error_code(again, 409) == "job_finished"
    assert again.json()["error"]["details"]["status"] == "cancelled"


def _record_cancellation(container: Container, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Wrap the sleepy provider's call: how each call ended ("returned" or "cancelled")."""
    provider = container.providers["sleepy"]
    original = provider.run
    endings: list[str] = []

    async def run(request: ProviderRequest) -> Any:
        try:
            result: ProviderResult | ProviderParked = await original(request)
        except asyncio.CancelledError:
            endings.append("cancelled")
            raise
        endings.append("returned")
        return result

    monkeypatch.setattr(provider, "run", run)
    return endings


@pytest.mark.parametrize("settings_overrides", [{"heartbeat_sec": 0.2}], indirect=True)
async def test_cancel_of_a_running_job_stops_the_provider_call_at_the_next_heartbeat(
    client: httpx.AsyncClient,
    container: Container,
    emulator: Emulator,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    endings = _record_cancellation(container, monkeypatch)
    job = await new_job(container, settings_json={"delay_sec": 2.0})
    await wait_for_status(client, token, job.id, "running")
    # "running" is set by the claim; the provider is called once the inputs are prepared (later under load).
    for _ in range(500):
        if SleepyProvider.calls:
            break
        await asyncio.sleep(0.02)
    assert SleepyProvider.calls == [(str(job.id), 1)]

    with caplog.at_level(logging.WARNING, logger="boothbridge.jobs.runner"):
        cancelled_at = time.monotonic()
        r = await client.post(f"/api/jobs/{job.id}/cancel", headers=auth(token))
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "cancelled"
        assert emulator.worker is not None
        while emulator.worker.running:
            await asyncio.sleep(0.02)
        stopped_after = time.monotonic() - cancelled_at

    # The call was cancelled (at the next heartbeat), not left to run its 2 s: it never returned. No wall-clock
    # bound here (a loaded machine makes one flaky); the recorded ending is the proof.
    assert endings == ["cancelled"]
    assert "lost its lease" in caplog.text
    await asyncio.sleep(max(0.0, 2.2 - stopped_after))  # past the moment the call would have finished
    row = (await client.get(f"/api/jobs/{job.id}", headers=auth(token))).json()
    assert (row["status"], row["attempt"], row["result_url"]) == ("cancelled", 1, None)
    assert [(e["attempt"], e["code"]) for e in row["attempt_errors"]] == [(1, "cancelled")]
    assert await scalar(container, "SELECT result_media_id FROM jobs WHERE id = :id", id=job.id) is None
    assert await scalar(container, "SELECT count(*) FROM media_objects WHERE kind = 'result'") == 0
    assert SleepyProvider.calls == [(str(job.id), 1)]  # no retry either


@pytest.mark.parametrize("settings_overrides", [{"heartbeat_sec": 30.0}], indirect=True)
async def test_a_late_result_of_a_cancelled_job_is_discarded_by_the_completion_fence(
    client: httpx.AsyncClient,
    container: Container,
    emulator: Emulator,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    endings = _record_cancellation(container, monkeypatch)
    written: list[MediaRef] = []
    write_bytes = container.media.write_bytes

    async def recording_write(kind: str, data: bytes, mime: str) -> MediaRef:
        ref = await write_bytes(kind, data, mime)
        written.append(ref)
        return ref

    monkeypatch.setattr(container.media, "write_bytes", recording_write)
    job = await new_job(container, settings_json={"delay_sec": 0.8})
    await wait_for_status(client, token, job.id, "running")

    with caplog.at_level(logging.WARNING, logger="boothbridge.jobs.runner"):
        r = await client.post(f"/api/jobs/{job.id}/cancel", headers=auth(token))
        assert r.status_code == 202, r.text
        assert emulator.worker is not None
        while emulator.worker.running:  # no heartbeat comes in time: the call runs to its end
            await asyncio.sleep(0.02)

    assert endings == ["returned"]
    assert "finished late; result discarded" in caplog.text
    [result] = [ref for ref in written if ref.kind == "result"]
    assert not await container.store.exists(result.storage_key)  # its bytes were deleted
    body = (await client.get(f"/api/jobs/{job.id}", headers=auth(token))).json()
    assert (body["status"], body["result_url"], body["cost"]) == ("cancelled", None, None)
    assert await scalar(container, "SELECT count(*) FROM media_objects WHERE kind = 'result'") == 0


async def test_cancel_of_a_finished_job_is_409(client: httpx.AsyncClient, container: Container, token: str) -> None:
    job = await new_job(container)
    body = await wait_for_status(client, token, job.id, "succeeded")
    r = await client.post(f"/api/jobs/{job.id}/cancel", headers=auth(token))
    assert error_code(r, 409) == "job_finished"
    assert r.json()["error"]["details"] == {"job_id": str(job.id), "status": "succeeded"}
    assert (await client.get(f"/api/jobs/{job.id}", headers=auth(token))).json() == body  # nothing changed

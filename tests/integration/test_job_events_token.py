"""Stream tokens for the job event stream (`POST /api/jobs/{id}/events/token`, `GET /api/jobs/{id}/events?token=`):
a browser's EventSource cannot send the bearer header, so it opens the stream with a short-lived token for one
job of one operator's session. Refused alike (401 `invalid_token`, the uniform error body) when expired, for
another job, of another operator, tampered, or an access token; a logout ends them; never a bearer token."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from mangum import Mangum

import functions.admin.routes.jobs as jobs_api
from boothbridge.accounts.auth import decode_token, issue_token
from boothbridge.accounts.stream_tokens import STREAM_TOKEN_TTL_SEC, issue_stream_token
from boothbridge.bootstrap import Container
from boothbridge.jobs.worker_loop import WorkerLoop
from boothbridge.settings import Settings
from functions.admin.app import create_app as create_admin
from local.app import Emulator
from tests.integration.test_jobs_api import _events, auth, collapsed, finish, parse_sse
from tests.integration.test_lambda_ingest import EVENTS, FakeLambdaContext
from tests.integration.test_queue import new_job
from tests.support.booth import operator_token
from tests.support.live_server import serving

REFUSED = {"error": {"code": "invalid_token", "message": "the token is invalid or expired", "details": {}}}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"run_worker": False}  # jobs stay queued until a test finishes or runs them


@pytest.fixture
async def live(emulator: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    """Over a real socket: httpx's in-process transport would only hand over the stream once it ended."""
    async with serving(emulator) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        yield http


@pytest.fixture
async def token(client: httpx.AsyncClient, settings: Settings) -> str:
    return await operator_token(client, settings.credentials_path)


async def stream_token(client: httpx.AsyncClient, access: str, job_id: uuid.UUID) -> dict[str, Any]:
    r = await client.post(f"/api/jobs/{job_id}/events/token", headers=auth(access))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def assert_refused(r: httpx.Response, code: str = "invalid_token") -> None:
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"] == "Bearer"
    if code == "invalid_token":
        assert r.json() == REFUSED
    else:
        assert r.json()["error"]["code"] == code


async def test_the_token_opens_the_stream_which_delivers_each_status_then_end(
    live: httpx.AsyncClient, container: Container, settings: Settings
) -> None:
    access = await operator_token(live, settings.credentials_path)
    job = await new_job(container, settings_json={"delay_sec": 0.5})
    grant = await stream_token(live, access, job.id)
    assert set(grant) == {"token", "expires_in_sec", "events_path"}
    assert grant["expires_in_sec"] == STREAM_TOKEN_TTL_SEC
    assert grant["events_path"] == f"/api/jobs/{job.id}/events?token={grant['token']}"

    worker = WorkerLoop(container.queue, container.runner, container.hub, concurrency=1, poll_sec=1.0)
    seen: list[tuple[str, Any]] = []
    try:
        async with live.stream("GET", grant["events_path"]) as r:  # no Authorization header, as EventSource
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            async for event, data, _ in _events(r):
                seen.append((event, {"status": data.get("status"), "attempt": data.get("attempt")}))
                if (event, data.get("status")) == ("status", "queued"):
                    await worker.start()
    finally:
        await worker.stop()
    assert [(e, d["status"]) for e, d in collapsed(seen)] == [
        ("status", "queued"),
        ("status", "running"),
        ("status", "succeeded"),
        ("end", "succeeded"),
    ]


async def test_the_wire_format_is_the_documented_one(
    client: httpx.AsyncClient, container: Container, token: str
) -> None:
    job = await new_job(container)
    await finish(container, job)
    grant = await stream_token(client, token, job.id)
    for _ in range(2):  # EventSource reopens with the same URL: accepted again within the token's life
        r = await client.get(grant["events_path"])
        assert r.status_code == 200
        assert r.headers["cache-control"] == "no-cache"
        assert r.text.startswith('retry: 1000\n\nevent: status\ndata: {"status":"succeeded","attempt":1,')
        assert r.text.endswith('\n\nevent: end\ndata: {"status":"succeeded"}\n\n')
        assert "\r" not in r.text
        assert [e for e, _ in parse_sse(r.text)] == ["status", "end"]


async def test_refused_tokens_get_the_same_401(
    client: httpx.AsyncClient, container: Container, settings: Settings, token: str
) -> None:
    secret = container.credentials.jwt_secret
    mine = await new_job(container, slot_id="slot-001")
    other_of_mine = await new_job(container, slot_id="slot-002")
    theirs = await new_job(container, slot_id="slot-041")  # igor's slot
    await finish(container, mine)  # so that the accepted stream ends at once
    igor = await operator_token(client, settings.credentials_path, "igor")
    session = decode_token(secret, token)
    valid = (await stream_token(client, token, mine.id))["token"]
    head, payload, signature = valid.split(".")
    flipped = signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")
    igor_claims = decode_token(secret, igor)

    refused = {
        "expired": issue_stream_token(secret, session, mine.id, now=time.time() - STREAM_TOKEN_TTL_SEC - 5)[0],
        "for another job": (await stream_token(client, token, other_of_mine.id))["token"],
        "another operator's, for their job": (await stream_token(client, igor, theirs.id))["token"],
        # Signed with the real secret (not obtainable through the API): names igor, who cannot see this job.
        "another operator's, for this job": issue_stream_token(secret, igor_claims, mine.id)[0],
        "tampered signature": f"{head}.{payload}.{flipped}",
        "tampered payload": f"{head}.{payload[:-2]}xy.{signature}",
        "an access token": token,
        "an access token for this operator's job": issue_token(secret, session.user_id, "serg", 3600),
        "garbage": "not-a-token",
        "empty": "",
    }
    for why, bad in refused.items():
        r = await client.get(f"/api/jobs/{mine.id}/events", params={"token": bad})
        assert r.status_code == 401, (why, r.text)
        assert_refused(r)
        # The token alone decides: a valid bearer header beside it does not rescue it.
        r = await client.get(f"/api/jobs/{mine.id}/events", params={"token": bad}, headers=auth(token))
        assert r.status_code == 401, why
    assert (await client.get(f"/api/jobs/{mine.id}/events", params={"token": valid})).status_code == 200


async def test_a_stream_token_is_no_bearer_token(client: httpx.AsyncClient, container: Container, token: str) -> None:
    job = await new_job(container)
    stream = (await stream_token(client, token, job.id))["token"]
    for method, path in (
        ("GET", "/api/jobs"),
        ("GET", f"/api/jobs/{job.id}"),
        ("GET", f"/api/jobs/{job.id}/events"),
        ("POST", f"/api/jobs/{job.id}/events/token"),
        ("POST", f"/api/jobs/{job.id}/cancel"),
        ("GET", "/api/slots"),
        ("POST", "/api/logout"),
    ):
        assert_refused(await client.request(method, path, headers=auth(stream)))
    assert (await client.get(f"/api/jobs/{job.id}", headers=auth(token))).json()["status"] == "queued"


async def test_a_logout_ends_the_sessions_stream_tokens(
    client: httpx.AsyncClient, container: Container, settings: Settings, token: str
) -> None:
    job = await new_job(container)
    await finish(container, job)
    other_session = await operator_token(client, settings.credentials_path)
    ended = await stream_token(client, token, job.id)
    kept = await stream_token(client, other_session, job.id)
    assert (await client.get(ended["events_path"])).status_code == 200

    assert (await client.post("/api/logout", headers=auth(token))).status_code == 204
    assert_refused(await client.get(ended["events_path"]), "session_ended")
    assert (await client.get(kept["events_path"])).status_code == 200  # the operator's other session goes on


async def test_a_token_is_issued_only_for_the_operators_own_job(
    client: httpx.AsyncClient, container: Container, token: str
) -> None:
    theirs = await new_job(container, slot_id="slot-041")
    for job_id in (str(theirs.id), str(uuid.uuid4()), "not-a-uuid"):
        r = await client.post(f"/api/jobs/{job_id}/events/token", headers=auth(token))
        assert (r.status_code, r.json()["error"]["code"]) == (404, "job_not_found"), job_id
    assert_refused(await client.post(f"/api/jobs/{theirs.id}/events/token", headers=auth("nope")))
    r = await client.post(f"/api/jobs/{theirs.id}/events/token")
    assert_refused(r, "unauthorized")


def function_url_get(path: str, query: str) -> dict[str, Any]:
    """A Lambda function-URL event for `GET path?query` without an Authorization header (as EventSource sends)."""
    event: dict[str, Any] = json.loads((EVENTS / "ingest_function_url.json").read_text())
    event.update(rawPath=path, rawQueryString=query, body="", isBase64Encoded=False)
    event["headers"] = {k: v for k, v in event["headers"].items() if k not in {"content-type", "expect"}}
    event["headers"]["accept"] = "text/event-stream"
    event["requestContext"]["http"].update(method="GET", path=path, userAgent="Mozilla/5.0")
    return event


def invoke_admin(settings: Settings, event: dict[str, Any]) -> dict[str, Any]:
    """The admin function in its own Lambda environment (thread, loop, cold container), through Mangum."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app = create_admin(settings)
    try:
        return Mangum(app, lifespan="off")(event, FakeLambdaContext())  # type: ignore[arg-type]
    finally:
        loop.run_until_complete(app.state.holder.close())
        # Ended as asyncio.run ends a loop: what still runs on it (sse-starlette's shutdown watcher) is cancelled.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        asyncio.set_event_loop(None)
        loop.close()


async def test_on_lambda_the_buffered_stream_ends_at_its_cap_and_is_reopened_with_the_same_token(
    client: httpx.AsyncClient,
    container: Container,
    settings: Settings,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jobs_api, "MAX_STREAM_SEC", 1.0)  # 20 s on Lambda; the same end, sooner
    job = await new_job(container)  # stays queued
    grant = await stream_token(client, token, job.id)
    query = grant["events_path"].split("?", 1)[1]
    event = function_url_get(f"/api/jobs/{job.id}/events", query)

    capped = await asyncio.to_thread(invoke_admin, settings, event)
    assert capped["statusCode"] == 200, capped
    assert capped["headers"]["content-type"].startswith("text/event-stream")
    # No `end`: the response stopped at the cap, and EventSource reopens it (after `retry`) with the same URL.
    assert capped["body"].startswith("retry: 1000\n\n")
    assert [(e, d["status"]) for e, d in parse_sse(capped["body"])] == [("status", "queued")]

    await finish(container, job)
    reopened = await asyncio.to_thread(invoke_admin, settings, event)
    assert reopened["statusCode"] == 200, reopened
    assert [(e, d["status"]) for e, d in parse_sse(reopened["body"])] == [("status", "succeeded"), ("end", "succeeded")]
    refused = await asyncio.to_thread(invoke_admin, settings, function_url_get(f"/api/jobs/{job.id}/events", "token=x"))
    assert (refused["statusCode"], json.loads(refused["body"])) == (401, REFUSED)

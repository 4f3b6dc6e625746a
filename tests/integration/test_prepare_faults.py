"""A fault while an attempt is being prepared (before any provider call): a database blink gives the job back
without spending an attempt; any other surprise fails the attempt (retryably) instead of leaving the job to wait out
its lease (which is what happened after a database restart: the first query hit a connection the restart closed)."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from tests.fakes.sleepy import SleepyProvider
from tests.support.booth import configure_slot, credentials, jpeg, operator_token, post_photo


def _failing_once(container: Container, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    """The worker's first read of the booth's photo (only the worker reads it this way) fails once."""
    media = container.runner.media
    real = media.read_described
    failures = [error]

    async def read_described(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await real(*args, **kwargs)

    monkeypatch.setattr(media, "read_described", read_described)


async def _post(client: httpx.AsyncClient, settings: Settings) -> httpx.Response:
    token = await operator_token(client, settings.credentials_path)
    r = await configure_slot(client, token, "slot-001", "sleepy", "echo", {})
    assert r.status_code == 200, r.text
    return await post_photo(
        client, "slot-001", jpeg(300, 200), credentials(settings.credentials_path)["ingest_password"]
    )


async def _attempts(container: Container, job_id: str) -> tuple[int, list[Any]]:
    async with container.engine.connect() as conn:
        row = (
            await conn.execute(text("SELECT attempt, attempt_errors FROM jobs WHERE id = :id"), {"id": job_id})
        ).one()
    return row.attempt, row.attempt_errors


async def test_a_database_blink_while_preparing_spends_no_attempt(
    client: httpx.AsyncClient, settings: Settings, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    _failing_once(container, monkeypatch, psycopg.OperationalError("server closed the connection unexpectedly"))
    r = await _post(client, settings)
    assert r.status_code == 200, r.text
    assert await _attempts(container, r.headers["x-job-id"]) == (1, [])
    assert len(SleepyProvider.calls) == 1


async def test_a_surprise_while_preparing_fails_the_attempt_not_the_lease(
    client: httpx.AsyncClient, settings: Settings, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    _failing_once(container, monkeypatch, RuntimeError("a bug of ours"))
    r = await _post(client, settings)
    assert r.status_code == 200, r.text  # long before the 30 s lease would have run out
    attempt, errors = await _attempts(container, r.headers["x-job-id"])
    assert attempt == 2
    assert [(e["code"], e["retryable"]) for e in errors] == [("worker_internal_error", True)]

"""Statistics against a hand-computed fixture: processing_log and jobs rows inserted with SQL at known times.

Expected p95 values use percentile_cont's definition: sorted values v[0..n-1], position 0.95 * (n - 1),
linear interpolation between the two neighbours (nearest-rank would give a different value in each case).
Money is counted per job (jobs.cost), so the re-post of photo A (a second SUCCESS row for job A) is not
billed twice: a sum over log rows would be 0.5 higher.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from tests.support.booth import configure_slot, credentials, jpeg, operator_token, post_photo

TEMPLATE_ID = "6f1c1d7e-1f0a-4f52-9d39-6a1a6f0a1b2c"


def at(moment: str | datetime) -> datetime:
    return moment if isinstance(moment, datetime) else datetime.fromisoformat(moment).replace(tzinfo=UTC)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return str(body["error"]["code"])


async def add_job(
    c: Container,
    slot: str,
    created: str | datetime,
    cost: float,
    *,
    finished: str | None = None,
    is_test: bool = False,
    provider: str = "local",
) -> str:
    job_id = uuid.uuid4()
    start = at(created)
    async with c.engine.begin() as conn:
        await conn.execute(
            text(
                """
                INSERT INTO jobs (id, slot_id, status, provider_id, operation_id, source_media_id, source_sha256,
                                  deadline_at, cost, is_test, created_at, finished_at)
                VALUES (:id, :slot, 'succeeded', :provider, 'resize', :src, :sha, :deadline, :cost, :test,
                        :created, :finished)
                """
            ),
            {
                "id": job_id,
                "slot": slot,
                "provider": provider,
                "src": uuid.uuid4(),
                "sha": uuid.uuid4().hex,
                "deadline": start + timedelta(hours=1),
                "cost": cost,
                "test": is_test,
                "created": start,
                "finished": at(finished) if finished else start + timedelta(seconds=10),
            },
        )
    return str(job_id)


async def add_log(
    c: Container,
    slot: str,
    created: str | datetime,
    status: str,
    ms: int,
    job: str | None = None,
    cost: float | None = None,
    *,
    is_test: bool = False,
    fallback: bool = False,
) -> None:
    http = 200 if status == "SUCCESS" or fallback else (504 if status == "TIMEOUT" else 502)
    async with c.engine.begin() as conn:
        await conn.execute(
            text(
                """
                INSERT INTO processing_log (slot_id, requested_slot, job_id, created_at, status, http_status,
                                            response_time_ms, cost, is_test, fallback)
                VALUES (:slot, :slot, CAST(:job AS uuid), :created, :status, :http, :ms, :cost, :test, :fallback)
                """
            ),
            {
                "slot": slot,
                "job": job,
                "created": at(created),
                "status": status,
                "http": http,
                "ms": ms,
                "cost": cost,
                "test": is_test,
                "fallback": fallback,
            },
        )


@pytest.fixture
async def history(container: Container) -> None:
    """serg owns slot-001 (provider local, a template) and slot-002 (gemini); igor owns slot-041.

    The database's TimeZone is Newfoundland's (a half-hour offset): UTC buckets must not depend on it."""
    async with container.engine.begin() as conn:
        name = (await conn.execute(text("SELECT current_database()"))).scalar_one()
        await conn.execute(text(f"ALTER DATABASE \"{name}\" SET timezone TO 'America/St_Johns'"))
    await container.engine.dispose()  # new connections take the setting
    async with container.engine.begin() as conn:
        assert (await conn.execute(text("SHOW timezone"))).scalar_one() == "America/St_Johns"
        await conn.execute(
            text(
                "UPDATE slots SET provider_id = 'local', operation_id = 'frame', name = 'Frame',"
                " settings_json = CAST(:settings AS jsonb) WHERE id = 'slot-001'"
            ),
            {"settings": f'{{"template_media_id": "{TEMPLATE_ID}", "x": 0}}'},
        )
        await conn.execute(text("UPDATE slots SET provider_id = 'gemini' WHERE id = 'slot-002'"))
    job_a = await add_job(container, "slot-001", "2024-04-01T10:05:00", 0.5)
    job_b = await add_job(container, "slot-001", "2024-04-01T10:40:00", 0.25)
    job_c = await add_job(container, "slot-001", "2024-04-01T11:00:00", 0.75, finished="2024-04-01T11:20:00")
    job_d = await add_job(container, "slot-001", "2024-04-01T23:59:59", 1.0)
    job_e = await add_job(container, "slot-001", "2024-04-03T00:00:00", 0.1)
    job_f = await add_job(container, "slot-001", "2024-04-07T23:59:59", 0.2)
    job_t = await add_job(container, "slot-001", "2024-04-03T09:00:00", 9.0, is_test=True)
    await add_log(container, "slot-001", "2024-04-01T10:05:00", "SUCCESS", 1000, job_a, 0.5)
    await add_log(container, "slot-001", "2024-04-01T10:40:00", "SUCCESS", 2000, job_b, 0.25)
    await add_log(container, "slot-001", "2024-04-01T10:50:00", "SUCCESS", 50, job_a, 0.5)  # re-post of A
    await add_log(container, "slot-001", "2024-04-01T10:59:59.999", "ERROR", 300)
    await add_log(container, "slot-001", "2024-04-01T11:00:00", "TIMEOUT", 48000, job_c)
    await add_log(container, "slot-001", "2024-04-01T11:30:00", "SUCCESS", 500, job_c, 0.75)
    await add_log(container, "slot-001", "2024-04-01T23:59:59", "SUCCESS", 1500, job_d, 1.0)
    await add_log(container, "slot-001", "2024-04-03T00:00:00", "SUCCESS", 800, job_e, 0.1)
    await add_log(container, "slot-001", "2024-04-03T09:00:00", "SUCCESS", 99999, job_t, 9.0, is_test=True)
    await add_log(container, "slot-001", "2024-04-07T23:59:59", "SUCCESS", 700, job_f, 0.2)
    await add_log(container, "slot-001", "2024-04-08T12:00:00", "ERROR", 100, fallback=True)
    job_g = await add_job(container, "slot-002", "2024-04-02T09:00:00", 2.0)
    await add_log(container, "slot-002", "2024-04-02T09:00:00", "SUCCESS", 400, job_g, 2.0)
    await add_log(container, "slot-002", "2024-05-15T10:00:00", "ERROR", 200)
    job_x = await add_job(container, "slot-041", "2024-04-01T10:10:00", 100.0)
    await add_log(container, "slot-041", "2024-04-01T10:10:00", "SUCCESS", 5000, job_x, 100.0)


@pytest.fixture
async def token(client: httpx.AsyncClient, settings: Settings) -> str:
    return await operator_token(client, settings.credentials_path)


def empty(period: str) -> dict[str, Any]:
    return {
        "period_start": period,
        "success": 0,
        "errors": 0,
        "timeouts": 0,
        "avg_response_ms": None,
        "p95_response_ms": None,
        "cost": 0.0,
    }


def metric(period: str, s: int, e: int, t: int, avg: int, p95: int, cost: float) -> dict[str, Any]:
    return {
        "period_start": period,
        "success": s,
        "errors": e,
        "timeouts": t,
        "avg_response_ms": avg,
        "p95_response_ms": p95,
        "cost": pytest.approx(cost),
    }


async def test_slot_series_by_day_with_empty_days(client: httpx.AsyncClient, token: str, history: None) -> None:
    r = await client.get("/api/stats/slot-001", params={"from": "2024-04-01", "to": "2024-04-08"}, headers=auth(token))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["slot_id"] == "slot-001"
    assert body["range"] == {"from": "2024-04-01", "to": "2024-04-08", "group_by": "day"}
    # 04-01: 7 requests (ms 1000, 2000, 50, 300, 48000, 500, 1500): avg 53350/7 = 7621.4;
    # sorted 50 300 500 1000 1500 2000 48000, pos 5.7 -> 2000 + 0.7 * 46000 = 34200; jobs A+B+C+D = 2.5.
    assert body["metrics"] == [
        metric("2024-04-01", 5, 1, 1, 7621, 34200, 2.5),
        empty("2024-04-02"),
        metric("2024-04-03", 1, 0, 0, 800, 800, 0.1),  # the test run that day is not counted
        empty("2024-04-04"),
        empty("2024-04-05"),
        empty("2024-04-06"),
        metric("2024-04-07", 1, 0, 0, 700, 700, 0.2),  # 23:59:59 stays on Sunday
        metric("2024-04-08", 0, 1, 0, 100, 100, 0.0),  # a date-only `to` includes that day
    ]


async def test_slot_series_by_hour_and_offsets(client: httpx.AsyncClient, token: str, history: None) -> None:
    # 12:00+02:00 is 10:00 UTC; the unencoded '+' (decoded as a space) is understood too.
    url = "/api/stats/slot-001?from=2024-04-01T12:00:00+02:00&to=2024-04-01T12:00:00Z&group_by=hour"
    r = await client.get(url, headers=auth(token))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["range"] == {"from": "2024-04-01T10:00:00Z", "to": "2024-04-01T12:00:00Z", "group_by": "hour"}
    # 10:00: ms 1000 2000 50 300 (10:59:59.999 is still 10:xx): avg 837.5 -> 838, pos 2.85 -> 1000 + 0.85 * 1000.
    # 11:00: ms 48000 500: avg 24250, pos 0.95 -> 500 + 0.95 * 47500 = 45625; job C arrived at 11:00.
    assert body["metrics"] == [
        metric("2024-04-01T10:00:00Z", 3, 1, 0, 838, 1850, 0.75),
        metric("2024-04-01T11:00:00Z", 1, 0, 1, 24250, 45625, 0.75),
    ]
    half = await client.get(
        "/api/stats/slot-001",
        params={"from": "2024-04-01T10:30:00Z", "to": "2024-04-01T11:00:00Z", "group_by": "hour"},
        headers=auth(token),
    )
    # The period meeting the range is listed from its start; only rows inside [from, to) count.
    assert half.json()["metrics"] == [metric("2024-04-01T10:00:00Z", 2, 1, 0, 783, 1830, 0.25)]
    day = await client.get(
        "/api/stats/slot-001",
        params={"from": "2024-04-01T00:00:00Z", "to": "2024-04-01T23:59:59Z"},
        headers=auth(token),
    )
    # `to` is exclusive: the 23:59:59 request (and job D) are left out. ms 1000 2000 50 300 48000 500:
    # avg 51850/6 = 8641.7; sorted 50 300 500 1000 2000 48000, pos 4.75 -> 2000 + 0.75 * 46000 = 36500.
    assert day.json()["metrics"] == [metric("2024-04-01", 4, 1, 1, 8642, 36500, 1.5)]


async def test_slot_series_by_week_starts_on_monday(client: httpx.AsyncClient, token: str, history: None) -> None:
    r = await client.get(
        "/api/stats/slot-001",
        params={"from": "2024-04-03", "to": "2024-04-09", "group_by": "week"},
        headers=auth(token),
    )
    assert r.status_code == 200, r.text
    assert r.json()["metrics"] == [
        metric("2024-04-01", 2, 0, 0, 750, 795, 0.3),  # Wed 04-03 and Sun 04-07 23:59:59
        metric("2024-04-08", 0, 1, 0, 100, 100, 0.0),  # Mon 04-08
    ]


async def test_global_by_day_sorting_and_pages(client: httpx.AsyncClient, token: str, history: None) -> None:
    async def days(**params: Any) -> dict[str, Any]:
        base = {"from": "2024-04-01", "to": "2024-04-08", "group_by": "day"}
        r = await client.get("/api/stats/global", params={**base, **params}, headers=auth(token))
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    first = await days(page_size=3)
    assert first["meta"] == {"page": 1, "page_size": 3, "total": 8}
    assert [d["period_start"] for d in first["data"]] == ["2024-04-08", "2024-04-07", "2024-04-06"]  # desc default
    last = await days(page_size=3, page=3)
    assert [d["period_start"] for d in last["data"]] == ["2024-04-02", "2024-04-01"]
    assert last["data"][1] == {
        "period_start": "2024-04-01",
        "period_end": "2024-04-01",
        "success": 5,
        "errors": 1,
        "timeouts": 1,
        "avg_response_ms": 7621,
        "p95_response_ms": 34200,
        "cost": pytest.approx(2.5),  # igor's slot-041 (cost 100) that day is not serg's
    }
    assert last["data"][0]["cost"] == pytest.approx(2.0)  # slot-002
    beyond = await days(page_size=3, page=4)
    assert beyond["data"] == [] and beyond["meta"]["total"] == 8

    by_cost = await days(sort_by="cost", page_size=4)
    assert [d["period_start"] for d in by_cost["data"]] == ["2024-04-01", "2024-04-02", "2024-04-07", "2024-04-03"]
    by_success = await days(sort_by="success", sort_order="asc", page_size=50)
    assert [d["period_start"][-2:] for d in by_success["data"]] == ["04", "05", "06", "08", "02", "03", "07", "01"]
    by_errors = await days(sort_by="errors", page_size=3)
    assert [d["period_start"] for d in by_errors["data"]] == ["2024-04-08", "2024-04-01", "2024-04-07"]
    chronological = await days(sort_by="period_start", sort_order="asc", page_size=2)
    assert [d["period_start"] for d in chronological["data"]] == ["2024-04-01", "2024-04-02"]

    local = await days(provider_id="local", sort_order="asc", page_size=2)
    assert [(d["success"], d["cost"]) for d in local["data"]] == [(5, 2.5), (0, 0.0)]  # slot-002 is gemini
    only_two = await days(slot_id="slot-002", sort_by="success", page_size=1)
    assert [(d["period_start"], d["success"]) for d in only_two["data"]] == [("2024-04-02", 1)]
    assert only_two["meta"]["total"] == 8
    nothing = await days(provider_id="turbotext", sort_by="success", page_size=1)
    assert nothing["data"][0]["success"] == 0 and nothing["meta"]["total"] == 8


async def test_global_by_week_and_month(client: httpx.AsyncClient, token: str, history: None) -> None:
    r = await client.get(
        "/api/stats/global", params={"from": "2024-04-01", "to": "2024-05-31", "group_by": "month"}, headers=auth(token)
    )
    assert r.status_code == 200, r.text
    months = r.json()
    assert months["meta"] == {"page": 1, "page_size": 10, "total": 2}
    may, april = months["data"]
    assert (may["period_start"], may["period_end"], may["success"], may["errors"]) == (
        "2024-05-01",
        "2024-05-31",
        0,
        1,
    )
    assert (april["period_start"], april["period_end"]) == ("2024-04-01", "2024-04-30")
    assert (april["success"], april["errors"], april["timeouts"]) == (8, 2, 1)
    assert april["cost"] == pytest.approx(4.8)  # 2.8 on slot-001 (jobs, not log rows) + 2.0 on slot-002
    r = await client.get(
        "/api/stats/global", params={"from": "2024-04-01", "to": "2024-04-14", "sort_order": "asc"}, headers=auth(token)
    )
    weeks = r.json()["data"]  # group_by defaults to week
    assert [(w["period_start"], w["period_end"]) for w in weeks] == [
        ("2024-04-01", "2024-04-07"),
        ("2024-04-08", "2024-04-14"),
    ]
    assert [(w["success"], w["errors"]) for w in weeks] == [(8, 1), (0, 1)]


async def test_summary_since_reset_and_reset(
    client: httpx.AsyncClient, token: str, history: None, container: Container, settings: Settings
) -> None:
    r = await client.get("/api/stats/summary", headers=auth(token))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["processed_all_time"] == 8
    rows = {s["id"]: s for s in body["data"]}
    assert list(rows) == [f"slot-{n:03d}" for n in range(1, 41)]
    # slot-001: 10 booth requests, 7 SUCCESS, 2 ERROR + 1 TIMEOUT; sorted ms 50 100 300 500 700 800 1000 1500
    # 2000 48000, pos 8.55 -> 2000 + 0.55 * 46000 = 27300; jobs A..F = 2.8; job F finished last.
    assert rows["slot-001"] == {
        "id": "slot-001",
        "name": "Frame",
        "template_media_id": TEMPLATE_ID,
        "template_url": f"{settings.base_url}/public/media/{TEMPLATE_ID}",
        "processed": 7,
        "requests": 10,
        "p95_response_ms": 27300,
        "error_pct": 30.0,
        "last_cost": pytest.approx(0.2),
        "last_cost_currency": "USD",
        "total_cost": pytest.approx(2.8),
        "total_cost_by_currency": {"USD": pytest.approx(2.8)},
        "last_reset_at": None,
    }
    two = rows["slot-002"]
    assert (two["processed"], two["requests"], two["p95_response_ms"], two["error_pct"]) == (1, 2, 390, 50.0)
    assert (two["last_cost"], two["total_cost"], two["template_media_id"], two["template_url"]) == (
        2.0,
        2.0,
        None,
        None,
    )
    three = rows["slot-003"]
    assert (three["processed"], three["requests"], three["p95_response_ms"], three["error_pct"]) == (0, 0, None, None)
    assert (three["last_cost"], three["total_cost"]) == (None, 0.0)

    # Concurrent resets are harmless; a body of {} or none is accepted.
    resets = await asyncio.gather(
        *(client.post("/api/slots/slot-001/reset_stats", json={}, headers=auth(token)) for _ in range(4)),
        client.post("/api/slots/slot-001/reset_stats", headers=auth(token)),
    )
    assert [x.status_code for x in resets] == [204] * 5
    assert all(x.content == b"" for x in resets)
    after = (await client.get("/api/stats/summary", headers=auth(token))).json()
    one = after["data"][0]
    assert (one["processed"], one["requests"], one["p95_response_ms"], one["error_pct"]) == (0, 0, None, None)
    assert (one["last_cost"], one["total_cost"]) == (None, 0.0)
    assert datetime.fromisoformat(one["last_reset_at"]) > datetime.now(UTC) - timedelta(minutes=1)
    assert after["data"][1]["processed"] == 1  # slot-002 is not reset
    assert after["processed_all_time"] == 8  # all time ignores resets

    # New traffic after the reset counts; the history stays in the series.
    later = datetime.now(UTC) + timedelta(seconds=5)
    job = await add_job(container, "slot-001", later, 0.3)
    await add_log(container, "slot-001", later, "SUCCESS", 900, job, 0.3)
    one = (await client.get("/api/stats/summary", headers=auth(token))).json()["data"][0]
    assert (one["processed"], one["requests"], one["last_cost"], one["total_cost"]) == (1, 1, 0.3, 0.3)
    series = await client.get(
        "/api/stats/slot-001", params={"from": "2024-04-01", "to": "2024-04-01"}, headers=auth(token)
    )
    assert series.json()["metrics"][0]["success"] == 5

    igor = await operator_token(client, settings.credentials_path, "igor")
    theirs = (await client.get("/api/stats/summary", headers=auth(igor))).json()
    assert theirs["processed_all_time"] == 1
    assert theirs["data"][0]["id"] == "slot-041" and theirs["data"][0]["total_cost"] == 100.0


async def test_summary_gives_a_slots_spending_per_currency(
    client: httpx.AsyncClient, token: str, container: Container
) -> None:
    # slot-005 changed providers since its reset: Gemini bills in USD, Turbotext in RUB; `sleepy` has no pricing
    # and `retired` is no longer in the catalog. The last job to finish was Turbotext's.
    for provider, cost, finished in [
        ("gemini", 0.039, "2024-04-01T10:00:00"),
        ("gemini", 0.041, "2024-04-01T11:00:00"),
        ("turbotext", 25.0, "2024-04-01T13:00:00"),
        ("sleepy", 1.0, "2024-04-01T09:00:00"),
        ("retired", 2.0, "2024-04-01T08:00:00"),
    ]:
        await add_job(container, "slot-005", "2024-04-01T07:00:00", cost, finished=finished, provider=provider)
    await add_job(container, "slot-005", "2024-04-01T07:00:00", 99.0, finished="2024-04-02", is_test=True)

    r = await client.get("/api/stats/summary", headers=auth(token))
    assert r.status_code == 200, r.text
    five = next(s for s in r.json()["data"] if s["id"] == "slot-005")
    assert (five["last_cost"], five["last_cost_currency"]) == (25.0, "RUB")
    assert five["total_cost_by_currency"] == {
        "USD": pytest.approx(0.08),
        "RUB": pytest.approx(25.0),
        "unknown": pytest.approx(3.0),
    }
    assert five["total_cost"] == pytest.approx(28.08)  # the plain sum, as before
    untouched = next(s for s in r.json()["data"] if s["id"] == "slot-006")
    assert (untouched["last_cost_currency"], untouched["total_cost_by_currency"]) == (None, {})


async def test_defaults_are_the_last_7_and_30_days(client: httpx.AsyncClient, token: str, container: Container) -> None:
    await add_log(container, "slot-003", datetime.now(UTC) - timedelta(hours=1), "SUCCESS", 640)
    r = await client.get("/api/stats/slot-003", headers=auth(token))
    assert r.status_code == 200, r.text
    body = r.json()
    start, end = (datetime.fromisoformat(body["range"][k]) for k in ("from", "to"))
    assert (end - start, body["range"]["group_by"]) == (timedelta(days=7), "day")
    assert abs(end - datetime.now(UTC)) < timedelta(minutes=1)
    days = (end - timedelta(microseconds=1)).date() - start.date()
    assert len(body["metrics"]) == days.days + 1
    assert body["metrics"][0]["period_start"] == start.date().isoformat()
    assert sum(m["success"] for m in body["metrics"]) == 1

    r = await client.get("/api/stats/global", params={"page_size": 50}, headers=auth(token))
    body = r.json()
    start, end = (datetime.fromisoformat(body["range"][k]) for k in ("from", "to"))
    assert (end - start, body["range"]["group_by"]) == (timedelta(days=30), "week")
    assert body["meta"]["total"] == len(body["data"]) in (5, 6)
    starts = [d["period_start"] for d in body["data"]]
    assert starts == sorted(starts, reverse=True)
    assert all(datetime.fromisoformat(s).weekday() == 0 for s in starts)
    assert [d["success"] for d in body["data"]].count(1) == 1


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        ("/api/stats/slot-001", {"from": "2024-04-08", "to": "2024-04-01"}, "invalid_range"),
        ("/api/stats/slot-001", {"from": "2024-04-01T10:00:00Z", "to": "2024-04-01T10:00:00Z"}, "invalid_range"),
        ("/api/stats/slot-001", {"from": "2024-04-01", "to": "2024-05-02"}, "invalid_range"),  # 32 days
        ("/api/stats/slot-001", {"from": "2024-04-01T00:00:00Z", "to": "2024-05-02T00:00:01Z"}, "invalid_range"),
        ("/api/stats/slot-001", {"group_by": "month"}, "invalid_parameter"),
        ("/api/stats/slot-001", {"from": "yesterday"}, "invalid_parameter"),
        ("/api/stats/slot-001", {"to": "2024-02-30"}, "invalid_parameter"),
        ("/api/stats/global", {"from": "2024-01-01", "to": "2024-03-31"}, "invalid_range"),  # 91 days
        ("/api/stats/global", {"group_by": "hour"}, "invalid_parameter"),
        ("/api/stats/global", {"page_size": "0"}, "invalid_parameter"),
        ("/api/stats/global", {"page_size": "51"}, "invalid_parameter"),
        ("/api/stats/global", {"page": "0"}, "invalid_parameter"),
        ("/api/stats/global", {"sort_by": "avg_response_ms"}, "invalid_parameter"),
        ("/api/stats/global", {"sort_order": "up"}, "invalid_parameter"),
        ("/api/stats/global", {"page": "two"}, "validation_error"),
    ],
)
async def test_invalid_parameters_are_400(
    client: httpx.AsyncClient, token: str, path: str, params: dict[str, str], code: str
) -> None:
    assert error_code(await client.get(path, params=params, headers=auth(token)), 400) == code


async def test_longest_ranges_are_accepted(client: httpx.AsyncClient, token: str) -> None:
    r = await client.get("/api/stats/slot-001", params={"from": "2020-01-01"}, headers=auth(token))
    assert r.status_code == 200, r.text  # with only `from`, `to` is from + 7 days (not now, 4 years later)
    assert r.json()["range"] == {"from": "2020-01-01", "to": "2020-01-08T00:00:00Z", "group_by": "day"}
    r = await client.get("/api/stats/slot-001", params={"from": "2024-04-01", "to": "2024-05-01"}, headers=auth(token))
    assert r.status_code == 200, r.text
    assert len(r.json()["metrics"]) == 31
    r = await client.get(
        "/api/stats/global",
        params={"from": "2024-01-01", "to": "2024-03-30", "group_by": "day", "page_size": 50, "page": 2},
        headers=auth(token),
    )
    assert r.status_code == 200, r.text
    assert r.json()["meta"]["total"] == 90 and len(r.json()["data"]) == 40


async def test_foreign_and_unknown_slots_are_404(client: httpx.AsyncClient, token: str) -> None:
    for path in ("/api/stats/slot-041", "/api/stats/slot-999"):
        assert error_code(await client.get(path, headers=auth(token)), 404) == "slot_not_found"
    r = await client.get("/api/stats/global", params={"slot_id": "slot-041"}, headers=auth(token))
    assert error_code(r, 404) == "slot_not_found"
    for slot in ("slot-041", "slot-999"):
        r = await client.post(f"/api/slots/{slot}/reset_stats", json={}, headers=auth(token))
        assert error_code(r, 404) == "slot_not_found"


async def test_statistics_need_a_token(client: httpx.AsyncClient) -> None:
    for path in ("/api/stats/summary", "/api/stats/global", "/api/stats/slot-001"):
        assert error_code(await client.get(path), 401) == "unauthorized"
    r = await client.post("/api/slots/slot-001/reset_stats", headers={"Authorization": "Bearer nope"})
    assert error_code(r, 401) == "invalid_token"


async def test_a_real_booth_post_shows_up_in_the_summary(
    client: httpx.AsyncClient, token: str, settings: Settings
) -> None:
    r = await configure_slot(client, token, "slot-005", "local", "resize", {"width": 64})
    assert r.status_code == 200, r.text
    password = credentials(settings.credentials_path)["ingest_password"]
    assert (await post_photo(client, "slot-005", jpeg(320, 240), password)).status_code == 200
    assert (await post_photo(client, "slot-005", jpeg(320, 240), "wrong")).status_code == 401
    body = (await client.get("/api/stats/summary", headers=auth(token))).json()
    row = next(s for s in body["data"] if s["id"] == "slot-005")
    assert (row["processed"], row["requests"], row["error_pct"]) == (1, 2, 50.0)
    assert (row["last_cost"], row["total_cost"]) == (0.0, 0.0)  # local work is free
    assert row["p95_response_ms"] is not None and row["p95_response_ms"] >= 0
    assert body["processed_all_time"] == 1
    series = (await client.get("/api/stats/slot-005", headers=auth(token))).json()["metrics"]
    assert (sum(m["success"] for m in series), sum(m["errors"] for m in series)) == (1, 1)

"""Unauthenticated requests cannot write into our tables, authenticated ones write a bounded record, and the
append-only tables keep LOG_RETENTION_DAYS of rows without breaking what the statistics promise."""

from __future__ import annotations

from typing import Any

import httpx
from psycopg.types.json import Jsonb
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.errors import AppError
from boothbridge.ingest.model import IngestOutcome, UploadedForm, log_fields, public_fields
from boothbridge.settings import Settings
from tests.support.booth import configure_slot, credentials, jpeg, multipart_fields, operator_token, post_photo

# 100 fields of 2,000 characters: 200 KB of form that anybody can send to a valid slot's URL.
BIG_FIELDS = {f"survey{i}_answer": "x" * 2000 for i in range(100)}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def logged_sizes(container: Container) -> list[Any]:
    async with container.engine.connect() as conn:
        return list(
            (
                await conn.execute(
                    text(
                        "SELECT http_status, pg_column_size(request_fields) AS stored,"
                        " octet_length(request_fields::text) AS as_text, request_fields"
                        " FROM processing_log ORDER BY id"
                    )
                )
            ).all()
        )


async def test_wrong_password_with_200_kb_of_fields_stores_a_small_fixed_size_row(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    assert (await configure_slot(client, token, "slot-001", "local", "resize", {"width": 64})).status_code == 200

    r = await post_photo(client, "slot-001", jpeg(64, 64), "wrong", extra=BIG_FIELDS)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_password"

    [row] = await logged_sizes(container)
    assert row.http_status == 401
    assert row.as_text < 300 and row.stored < 300, (row.stored, row.as_text)
    facts = row.request_fields["_refused"]
    assert facts["field_count"] == len(multipart_fields("wrong", BIG_FIELDS))  # the password counted too
    assert facts["field_chars"] > 200_000 and facts["password_sent"] is True
    assert "xxxx" not in str(row.request_fields)


async def test_refused_form_is_recorded_as_facts_only_in_the_jsonb_column(container: Container) -> None:
    """What log_fields gives the log row for a request refused before the password was verified, stored in the
    real column: a few dozen bytes whatever was sent."""
    form = UploadedForm(file=b"\xff\xd8" * 1000, filename="x" * 5000, declared_type="y" * 5000, fields=BIG_FIELDS)
    refused = IngestOutcome(status=401, log_status="ERROR", error=AppError(401, "invalid_password", "wrong"))
    async with container.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO processing_log (slot_id, requested_slot, status, http_status, response_time_ms,"
                " request_fields) VALUES ('slot-001', 'slot-001', 'ERROR', 401, 1, :f)"
            ),
            {"f": Jsonb(log_fields(form, refused))},
        )
    [row] = await logged_sizes(container)
    assert row.stored < 300, row.stored
    assert row.request_fields == {
        "_refused": {
            "field_count": 100,
            "field_chars": sum(len(k) + len(v) for k, v in BIG_FIELDS.items()),
            "password_sent": False,
            "file_bytes": 2000,
        }
    }
    # Once the password is verified the booth's own fields are kept, capped.
    done = IngestOutcome(status=200, log_status="SUCCESS")
    assert log_fields(form, done) == public_fields(form)


async def test_authenticated_booth_fields_are_kept_but_capped(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    assert (await configure_slot(client, token, "slot-001", "local", "resize", {"width": 64})).status_code == 200
    password = credentials(settings.credentials_path)["ingest_password"]

    r = await post_photo(client, "slot-001", jpeg(64, 64), password, extra=BIG_FIELDS)
    assert r.status_code == 200, r.text

    [row] = await logged_sizes(container)
    fields = row.request_fields
    assert fields["hash"] == "7b6c683e1d3fd29c8701791c54e3c12a236f5a5b"  # the booth's own fields come first
    assert "password" not in fields
    assert fields["_truncated"]["fields_dropped"] > 0 and fields["_truncated"]["values_cut"] > 0
    assert all(len(v) <= 512 for k, v in fields.items() if not k.startswith("_"))
    assert row.as_text < 12_000, row.as_text  # 8,192 characters of values at most, plus names
    async with container.engine.connect() as conn:
        meta = (await conn.execute(text("SELECT octet_length(request_meta::text) FROM jobs"))).scalar_one()
    assert meta < 12_000


async def _insert_log(container: Container, slot: str, status: str, days_ago: float, *, is_test: bool = False) -> None:
    async with container.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO processing_log (slot_id, requested_slot, status, http_status, response_time_ms,"
                " is_test, created_at) VALUES (:slot, :slot, :status, :http, 100, :test,"
                " now() - make_interval(secs => :ago))"
            ),
            {
                "slot": slot,
                "status": status,
                "http": 200 if status == "SUCCESS" else 502,
                "test": is_test,
                "ago": days_ago * 86400,
            },
        )


async def _summary(client: httpx.AsyncClient, token: str, slot: str) -> tuple[dict[str, Any], int]:
    body = (await client.get("/api/stats/summary", headers=auth(token))).json()
    return next(s for s in body["data"] if s["id"] == slot), body["processed_all_time"]


async def test_cleanup_deletes_rows_past_the_retention_and_keeps_the_counts(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    # slot-002: reset 200 days ago, so rows from 150 days ago count "since reset"; slot-003: never reset.
    async with container.engine.begin() as conn:
        await conn.execute(text("UPDATE slots SET last_reset_at = now() - interval '200 days' WHERE id = 'slot-002'"))
    for ago in (300, 150, 120):
        await _insert_log(container, "slot-002", "SUCCESS", ago)
    await _insert_log(container, "slot-002", "ERROR", 100)
    await _insert_log(container, "slot-002", "SUCCESS", 100, is_test=True)  # a test run: never booth traffic
    await _insert_log(container, "slot-002", "SUCCESS", 10)
    await _insert_log(container, "slot-003", "TIMEOUT", 95)
    await _insert_log(container, "slot-003", "SUCCESS", 1)
    async with container.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO processing_log (slot_id, requested_slot, status, http_status, response_time_ms,"
                " created_at) VALUES (NULL, 'slot-999', 'ERROR', 404, 1, now() - interval '91 days')"
            )
        )
        for days in (100, 1):
            await conn.execute(
                text(
                    "INSERT INTO login_failures (username, client_address, created_at)"
                    " VALUES ('serg', '10.0.0.1', now() - make_interval(days => :d))"
                ),
                {"d": days},
            )
    before_2, all_time_before = await _summary(client, token, "slot-002")
    before_3, _ = await _summary(client, token, "slot-003")
    assert (before_2["processed"], before_2["requests"], before_2["error_pct"]) == (3, 4, 25.0)
    assert all_time_before == 5

    # Batches of 2 (several transactions), retention 90 days.
    removed = await container.cleanup.purge_old_logs(90, batch=2)
    assert removed == {"processing_log": 7, "login_failures": 1}

    async with container.engine.connect() as conn:
        kept = (await conn.execute(text("SELECT slot_id, status FROM processing_log ORDER BY created_at"))).all()
        failures = (await conn.execute(text("SELECT count(*) FROM login_failures"))).scalar_one()
    assert [(r.slot_id, r.status) for r in kept] == [("slot-002", "SUCCESS"), ("slot-003", "SUCCESS")]
    assert failures == 1

    after_2, all_time_after = await _summary(client, token, "slot-002")
    after_3, _ = await _summary(client, token, "slot-003")
    # The counts the stats page promises are unchanged; the since-reset p95 is over the kept rows only.
    assert all_time_after == all_time_before == 5
    for before, after in ((before_2, after_2), (before_3, after_3)):
        assert (after["processed"], after["requests"], after["error_pct"]) == (
            before["processed"],
            before["requests"],
            before["error_pct"],
        )

    # A reset starts the since-reset counts afresh, folded rows included; the all-time count stays.
    r = await client.post("/api/slots/slot-002/reset_stats", headers=auth(token))
    assert r.status_code == 204, r.text
    reset_2, all_time = await _summary(client, token, "slot-002")
    assert (reset_2["processed"], reset_2["requests"], reset_2["error_pct"]) == (0, 0, None)
    assert all_time == 5

    # A second pass finds nothing more; the scheduled cleanup applies LOG_RETENTION_DAYS itself.
    assert await container.cleanup.purge_old_logs(90, batch=2) == {"processing_log": 0, "login_failures": 0}
    report = await container.cleanup.run()
    assert report.logs_removed == {"processing_log": 0, "login_failures": 0}


async def test_retention_setting_is_what_the_scheduled_cleanup_uses(settings: Settings, container: Container) -> None:
    assert settings.log_retention_days == 90  # the default
    await _insert_log(container, "slot-001", "SUCCESS", 91)
    await _insert_log(container, "slot-001", "SUCCESS", 89)
    report = await container.cleanup.run()
    assert report.logs_removed["processing_log"] == 1
    assert report.as_dict()["processing_log_removed"] == 1
    async with container.engine.connect() as conn:
        totals = (await conn.execute(text("SELECT slot_id, requests, processed FROM processing_log_totals"))).all()
    assert [tuple(r) for r in totals] == [("slot-001", 1, 1)]

"""A booth photo through the whole bridge: API-configured slot → ingest → queue → worker → image back."""

from __future__ import annotations

import io

import httpx
from PIL import Image
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from tests.support.booth import configure_slot, credentials, jpeg, operator_token, post_photo


async def test_reframe_square_through_the_queue(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    r = await configure_slot(client, token, "slot-001", "local", "reframe", {"aspect_ratio": "1:1"})
    assert r.status_code == 200, r.text
    ingest_pw = credentials(settings.credentials_path)["ingest_password"]

    photo = jpeg(1200, 800)
    r = await post_photo(client, "slot-001", photo, ingest_pw, extra={"eventkitesessionid": "abc", "survey1_q": "y"})

    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    assert int(r.headers["x-processing-ms"]) >= 0
    img = Image.open(io.BytesIO(r.content))
    assert img.size == (800, 800)
    async with container.engine.connect() as conn:
        job = (
            await conn.execute(text("SELECT status, attempt FROM jobs WHERE id = :id"), {"id": r.headers["x-job-id"]})
        ).one()
        log_row = (await conn.execute(text("SELECT status, http_status, request_fields FROM processing_log"))).one()
    assert (job.status, job.attempt) == ("succeeded", 1)
    assert (log_row.status, log_row.http_status) == ("SUCCESS", 200)
    assert log_row.request_fields["hash"] == "7b6c683e1d3fd29c8701791c54e3c12a236f5a5b"
    assert log_row.request_fields["eventkitesessionid"] == "abc"
    assert "password" not in log_row.request_fields

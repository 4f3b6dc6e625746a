"""Faults found by a review of issue 13's work, against the real parts: a body that ends inside the photo part
(no closing boundary) is a malformed form and stores nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from tests.integration.test_ingest_streaming import BOUNDARY, error_code, nothing_stored, part, post_body, ready_slot
from tests.support.booth import jpeg


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, Any]:
    from tests.fakes.sleepy import sleepy_catalog

    return {"providers_config": sleepy_catalog(tmp_path / "wide.json", max_parallel_jobs=100)}


@pytest.mark.parametrize("cut", [0, 2, 7], ids=["at-the-photo's-end", "mid-crlf", "mid-boundary"])
async def test_a_body_ending_inside_the_photo_part_is_malformed_and_stores_nothing(
    client: httpx.AsyncClient, settings: Settings, container: Container, cut: int
) -> None:
    password = await ready_slot(client, settings)
    whole = part("password", password.encode()) + part("fileToUpload", jpeg(64, 48), "IMG_0003.JPG")
    # `part` ends the photo with CRLF; the closing boundary never comes (`cut`: how much of it did).
    body = whole[:-2] + f"\r\n--{BOUNDARY}".encode()[:cut]

    r = await post_body(client, body)

    assert error_code(r) == (400, "invalid_form"), r.text
    await nothing_stored(container)

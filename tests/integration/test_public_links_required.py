"""A provider that downloads our images by URL cannot run without a public address: the booth is told why."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from boothbridge.settings import Settings
from tests.support.booth import configure_slot, credentials, jpeg, operator_token, post_photo


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # No PUBLIC_BASE_URL: our links would point at localhost. Nothing listens at this base URL: the adapter
    # must fail before it ever calls Turbotext.
    return {
        "turbotext_api_key": "test-key",
        "turbotext_base_url": "http://127.0.0.1:9/api_ai",
    }


async def test_turbotext_without_public_base_url_fails_clearly(client: httpx.AsyncClient, settings: Settings) -> None:
    token = await operator_token(client, settings.credentials_path)
    r = await configure_slot(client, token, "slot-001", "turbotext", "change_image", {"prompt": "make it sunny"})
    assert r.status_code == 200, r.text
    answer = await post_photo(client, "slot-001", jpeg(), credentials(settings.credentials_path)["ingest_password"])
    assert answer.status_code == 502
    details = answer.json()["error"]["details"]
    assert details["reason"] == "public_links_unavailable"
    assert details["attempts"] == 1  # not retried: nothing would change

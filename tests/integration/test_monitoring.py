"""/health and /metrics."""

from __future__ import annotations

import re

import httpx
import pytest

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from tests.support.booth import configure_slot, credentials, jpeg, operator_token, post_photo


async def test_health_reports_database_storage_and_providers(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["storage"]["ok"] is True
    assert body["providers"]["local"] == {"available": True, "configured": True}
    assert body["providers"]["gemini"]["configured"] is False  # no key in the test settings


async def test_health_is_503_when_storage_is_down(
    client: httpx.AsyncClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken() -> None:
        raise ConnectionError("bucket unreachable")

    monkeypatch.setattr(container.store, "check", broken)
    r = await client.get("/health")
    assert r.status_code == 503
    storage = r.json()["checks"]["storage"]
    assert (storage["ok"], storage["error"]) == (False, "ConnectionError")
    assert r.json()["checks"]["database"]["ok"] is True


async def test_metrics_count_ingests_and_provider_errors(client: httpx.AsyncClient, settings: Settings) -> None:
    token = await operator_token(client, settings.credentials_path)
    await configure_slot(client, token, "slot-001", "local", "resize", {"width": 64})
    await configure_slot(client, token, "slot-002", "sleepy", "echo", {"fail_always": True})
    pw = credentials(settings.credentials_path)["ingest_password"]
    assert (await post_photo(client, "slot-001", jpeg(), pw)).status_code == 200
    assert (await post_photo(client, "slot-002", jpeg(), pw)).status_code == 502
    assert (await post_photo(client, "slot-001", jpeg(), "wrong")).status_code == 401

    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text

    def value(sample: str) -> float:
        match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
        assert match, f"{sample} missing from\n{text}"
        return float(match.group(1))

    assert value('boothbridge_ingest_requests_total{status="SUCCESS"}') == 1
    assert value('boothbridge_ingest_requests_total{status="ERROR"}') == 2
    assert value("boothbridge_ingest_response_seconds_count") == 3
    assert value('boothbridge_ingest_response_seconds_bucket{le="+Inf"}') == 3
    assert value('boothbridge_ingest_response_seconds_bucket{le="50"}') == 3
    assert value('boothbridge_queue_depth{provider="local"}') == 0
    assert value('boothbridge_jobs_in_flight{provider="sleepy"}') == 0
    assert value('boothbridge_provider_errors_total{provider="sleepy",code="upstream_rejected"}') == 1
    buckets = [
        float(v)
        for v in re.findall(r'^boothbridge_ingest_response_seconds_bucket\{le="[^+]\S*"\} (\S+)$', text, re.MULTILINE)
    ]
    assert buckets == sorted(buckets)  # cumulative


async def test_health_counts_keys_set_on_the_settings_page(client: httpx.AsyncClient, settings: Settings) -> None:
    token = await operator_token(client, settings.credentials_path)
    r = await client.put(
        "/api/settings", json={"turbotext_api_key": "tt-from-settings"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200
    assert (await client.get("/health")).json()["providers"]["turbotext"]["configured"] is True

"""Adding a provider is one declaration plus its catalog entry: a made-up keyed provider `acme`, declared in this
module and registered through PROVIDER_PLUGINS, gets its key field in the settings API, its key stored encrypted
and applied to the running adapter, its environment read, and its /health entry — with no other file touched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.catalog import Catalog
from boothbridge.providers.base import ProviderError, ProviderRequest, ProviderResult, in_memory
from boothbridge.providers.declaration import ApiKeySpec, EnvVar, ProviderDeclaration
from boothbridge.settings import Settings
from tests.fakes.sleepy import sleepy_catalog
from tests.support.booth import operator_token

DECLARATION = ProviderDeclaration(
    id="acme",
    factory=f"{__name__}:AcmeProvider",
    api_key=ApiKeySpec(
        env="ACME_TOKEN",
        field="acme_token",
        label="Acme token",
        help="Tokens, comma-separated.",
        several=True,
        max_length=100,
    ),
    env=(EnvVar("ACME_REGION", "eu-1"),),
)


class AcmeProvider:
    """Echoes the photo; remembers the keys it was given and the region its environment named."""

    id = "acme"

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.keys = DECLARATION.env_keys(settings)
        self.region = DECLARATION.env_value(settings, "ACME_REGION")

    def set_keys(self, keys: list[str]) -> None:
        self.keys = list(keys)

    async def run(self, request: ProviderRequest) -> ProviderResult:
        if not self.keys:
            raise ProviderError("api_key_missing", "no Acme token", retryable=False)
        return ProviderResult(await in_memory(request.source))

    async def close(self) -> None:
        return None


def acme_catalog(path: Path) -> Path:
    """The test catalog (product + sleepy) plus `acme`, which offers sleepy's `echo` operation."""
    catalog = json.loads(sleepy_catalog(path).read_text())
    sleepy = next(p for p in catalog["providers"] if p["id"] == "sleepy")
    catalog["providers"].append({**sleepy, "id": "acme", "title": "Acme (test)"})
    path.write_text(json.dumps(catalog))
    return path


@pytest.fixture
def settings_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> dict[str, Any]:
    env_token = getattr(request, "param", "acme-env-token-0001")
    if env_token:
        monkeypatch.setenv("ACME_TOKEN", env_token)  # read like every other setting, though Settings never names it
    else:
        monkeypatch.delenv("ACME_TOKEN", raising=False)
    monkeypatch.delenv("ACME_REGION", raising=False)
    return {
        "providers_config": acme_catalog(tmp_path / "acme-providers.json"),
        "provider_plugins": ["tests.fakes.sleepy:SleepyProvider", f"{__name__}:DECLARATION"],
    }


async def _headers(client: httpx.AsyncClient, settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {await operator_token(client, settings.credentials_path)}"}


async def test_a_declared_provider_gets_its_key_field_stored_encrypted_and_applied(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    acme = container.providers["acme"]
    assert isinstance(acme, AcmeProvider)
    assert (acme.keys, acme.region) == (["acme-env-token-0001"], "eu-1")  # its environment, its default
    headers = await _headers(client, settings)

    before = (await client.get("/api/settings", headers=headers)).json()
    assert before["provider_keys"]["acme"] == {"configured": True, "source": "environment", "masked": ["acme…0001"]}
    field = next(f for f in before["key_fields"] if f["provider"] == "acme")
    assert field == {
        "provider": "acme",
        "env": "ACME_TOKEN",
        "field": "acme_token",
        "label": "Acme token",
        "help": "Tokens, comma-separated.",
        "several": True,
        "max_length": 100,
    }
    assert "sleepy" not in before["provider_keys"]  # a provider that declares no key gets no field

    r = await client.put(
        "/api/settings", json={"acme_token": "acme-saved-AAAA1111, acme-saved-BBBB2222"}, headers=headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["provider_keys"]["acme"] == {
        "configured": True,
        "source": "settings",
        "masked": ["acme…1111", "acme…2222"],
    }
    assert "acme-saved" not in r.text
    async with container.engine.connect() as conn:
        raw = (await conn.execute(text("SELECT value::text FROM app_settings WHERE key = 'provider_keys'"))).scalar()
    assert raw and '"acme"' in raw and "acme-saved" not in raw  # stored under its id, encrypted
    assert acme.keys == ["acme-saved-AAAA1111", "acme-saved-BBBB2222"]  # applied to the running adapter

    too_long = await client.put("/api/settings", json={"acme_token": "x" * 101}, headers=headers)
    assert too_long.status_code == 400
    assert too_long.json()["error"]["code"] == "validation_error"
    assert [f["field"] for f in too_long.json()["error"]["details"]["fields"]] == ["acme_token"]
    assert acme.keys == ["acme-saved-AAAA1111", "acme-saved-BBBB2222"]  # a refused request changes nothing

    cleared = await client.put("/api/settings", json={"acme_token": ""}, headers=headers)
    assert cleared.json()["provider_keys"]["acme"]["source"] == "environment"
    assert acme.keys == ["acme-env-token-0001"]


@pytest.mark.parametrize("settings_overrides", [""], indirect=True)
async def test_health_asks_the_declared_probe(client: httpx.AsyncClient, settings: Settings) -> None:
    health = (await client.get("/health")).json()["providers"]
    assert health["acme"] == {"available": True, "configured": False}  # no token anywhere
    assert health["sleepy"] == {"available": True, "configured": True}  # no declaration: built is configured

    r = await client.put(
        "/api/settings", json={"acme_token": "acme-saved-CCCC3333"}, headers=await _headers(client, settings)
    )
    assert r.status_code == 200
    assert (await client.get("/health")).json()["providers"]["acme"] == {"available": True, "configured": True}

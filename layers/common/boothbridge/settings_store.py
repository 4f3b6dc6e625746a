"""Settings an operator changes at run time (the settings page), stored in `app_settings` and applied in every
process: provider API keys (encrypted; they override the environment), T_SYNC_RESPONSE and the result TTL.

Each process re-reads them at most every `refresh_sec` (one small query), so a change reaches other workers
and Lambda environments within seconds; the process that saved a change applies it at once. The ingest
password is not here: ingest reads its digest with the slot on every request, so a new one works at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from boothbridge.credentials.secret_box import SecretBox, mask
from boothbridge.db.engine import autocommit
from boothbridge.providers.base import KeyedProvider
from boothbridge.providers.declaration import ApiKeySpec, ProviderDeclaration, split_keys
from boothbridge.providers.registry import declarations
from boothbridge.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

KEYS_ROW = "provider_keys"  # {"<provider id>": "<sealed keys, comma-separated>", ...}
RUNTIME_ROW = "runtime"  # {"t_sync_response": 30.0, "result_ttl_sec": 3600}


@dataclass
class RuntimeValues:
    t_sync_response: float
    result_ttl_sec: int
    keys: dict[str, list[str]] = field(default_factory=dict)
    key_source: dict[str, str] = field(default_factory=dict)  # "settings" | "environment" | "none"


_READ = text("SELECT key, value FROM app_settings WHERE key IN (:keys_row, :runtime_row)")
_UPSERT = text(
    "INSERT INTO app_settings (key, value) VALUES (:key, :value)"
    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()"
).bindparams(bindparam("value", type_=JSONB))


class SettingsStore:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        box: SecretBox,
        providers: Mapping[str, Any],
        refresh_sec: float = 5.0,
    ) -> None:
        self.db = autocommit(engine)
        self.settings = settings
        self.box = box
        self.providers = providers
        # The providers of this process that declare API keys, in the catalog's order (the settings page's).
        self.keyed: dict[str, ProviderDeclaration] = {
            pid: d for pid, d in declarations(settings, providers).items() if d.api_key is not None
        }
        self.refresh_sec = refresh_sec
        self._read_at = float("-inf")
        self.values = self._compose({}, {})

    # ---- reading ---------------------------------------------------------------------------------------

    async def refresh(self, force: bool = False) -> RuntimeValues:
        """The current values, re-read from the database when older than `refresh_sec`."""
        if force or time.monotonic() - self._read_at >= self.refresh_sec:
            async with self.db.connect() as conn:
                rows = {
                    r.key: r.value
                    for r in await conn.execute(_READ, {"keys_row": KEYS_ROW, "runtime_row": RUNTIME_ROW})
                }
            self._apply(self._compose(rows.get(KEYS_ROW) or {}, rows.get(RUNTIME_ROW) or {}))
            self._read_at = time.monotonic()
        return self.values

    def _compose(self, sealed: dict[str, str], runtime: dict[str, Any]) -> RuntimeValues:
        keys: dict[str, list[str]] = {}
        source: dict[str, str] = {}
        for provider, declaration in self.keyed.items():
            stored = self.box.open(sealed[provider]) if sealed.get(provider) else None
            if stored:
                keys[provider], source[provider] = split_keys(stored), "settings"
            else:
                keys[provider] = declaration.env_keys(self.settings)
                source[provider] = "environment" if keys[provider] else "none"
        return RuntimeValues(
            t_sync_response=float(runtime.get("t_sync_response", self.settings.t_sync_response)),
            result_ttl_sec=int(runtime.get("result_ttl_sec", self.settings.result_ttl_sec)),
            keys=keys,
            key_source=source,
        )

    def _apply(self, values: RuntimeValues) -> None:
        changed = {p for p in self.keyed if values.keys.get(p) != self.values.keys.get(p)}
        self.values = values
        for provider_id in changed:
            provider = self.providers.get(provider_id)
            if isinstance(provider, KeyedProvider):
                provider.set_keys(list(values.keys[provider_id]))

    def public_view(self) -> dict[str, Any]:
        """For the settings page: keys masked, never in clear; `key_fields` says how to ask for each provider's
        keys (the request field, label, help text, whether several are allowed, the longest value)."""
        v = self.values
        return {
            "t_sync_response": v.t_sync_response,
            "result_ttl_sec": v.result_ttl_sec,
            "provider_keys": {
                p: {
                    "configured": bool(v.keys.get(p)),
                    "source": v.key_source.get(p, "none"),
                    "masked": [mask(k) for k in v.keys.get(p, [])],
                }
                for p in self.keyed
            },
            "key_fields": [{"provider": p, **asdict(d.api_key)} for p, d in self.keyed.items() if d.api_key],
        }

    def key_specs(self) -> dict[str, ApiKeySpec]:
        """Provider id -> its API key spec, for every keyed provider of this process."""
        return {p: d.api_key for p, d in self.keyed.items() if d.api_key is not None}

    # ---- writing ---------------------------------------------------------------------------------------

    async def save(
        self,
        *,
        keys: Mapping[str, str | None] | None = None,
        t_sync_response: float | None = None,
        result_ttl_sec: int | None = None,
    ) -> RuntimeValues:
        """Store changes (a key value of "" or None removes the stored key: the environment's applies again)."""
        async with self.db.connect() as conn:
            rows = {
                r.key: r.value for r in await conn.execute(_READ, {"keys_row": KEYS_ROW, "runtime_row": RUNTIME_ROW})
            }
            if keys:
                sealed = dict(rows.get(KEYS_ROW) or {})
                for provider_id, value in keys.items():
                    if value and split_keys(value):
                        sealed[provider_id] = self.box.seal(",".join(split_keys(value)))
                    else:
                        sealed.pop(provider_id, None)
                await conn.execute(_UPSERT, {"key": KEYS_ROW, "value": sealed})
            if t_sync_response is not None or result_ttl_sec is not None:
                runtime = dict(rows.get(RUNTIME_ROW) or {})
                if t_sync_response is not None:
                    runtime["t_sync_response"] = t_sync_response
                if result_ttl_sec is not None:
                    runtime["result_ttl_sec"] = result_ttl_sec
                await conn.execute(_UPSERT, {"key": RUNTIME_ROW, "value": json.loads(json.dumps(runtime))})
        return await self.refresh(force=True)

"""The settings page's API: ingest password, provider API keys (stored encrypted, shown masked),
T_SYNC_RESPONSE, result TTL, and clearing the media cache."""

from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends

from boothbridge.accounts.ingest_password import set_ingest_password
from boothbridge.http.openapi import AUTH, BODY, errors
from functions.admin.deps import CredentialsDep, EngineDep, MediaDep, SettingsStoreDep, current_operator
from functions.admin.schemas_settings import ClearedCache, SettingsUpdate, SettingsView, provider_keys

if TYPE_CHECKING:  # it imports SQLAlchemy and the credentials' cryptography: they come with the first request
    from boothbridge.settings_store import SettingsStore

router = APIRouter(dependencies=[Depends(current_operator)], tags=["settings"], responses=errors(*AUTH))


async def _view(store: "SettingsStore") -> SettingsView:
    await store.refresh()  # re-read once stale: another process may have saved since
    return SettingsView.model_validate(store.public_view())


@router.get("/api/settings", response_model=SettingsView)
async def get_settings(store: SettingsStoreDep) -> SettingsView:
    """Current settings; API keys are masked."""
    return await _view(store)


@router.put("/api/settings", response_model=SettingsView, responses=errors(*BODY))
async def put_settings(
    body: SettingsUpdate, store: SettingsStoreDep, engine: EngineDep, credentials: CredentialsDep
) -> SettingsView:
    """Change settings; a new ingest password replaces the old one at once."""
    keys = provider_keys(body, store.key_specs())
    if body.ingest_password is not None:
        await set_ingest_password(engine, credentials.ingest_hmac_key, body.ingest_password)
    await store.save(keys=keys, t_sync_response=body.t_sync_response, result_ttl_sec=body.result_ttl_sec)
    return await _view(store)


@router.post("/api/settings/clear_media_cache", response_model=ClearedCache)
async def clear_media_cache(media: MediaDep) -> ClearedCache:
    """Delete every kept result now (normally kept for the result TTL)."""
    return ClearedCache(deleted=await media.clear_results())

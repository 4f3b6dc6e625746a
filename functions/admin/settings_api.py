"""The settings page's API: ingest password, provider API keys (stored encrypted, shown masked),
T_SYNC_RESPONSE, result TTL, and clearing the media cache."""

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from boothbridge.bootstrap import Container
from boothbridge.http.openapi import AUTH, BODY, errors
from boothbridge.platform.cleanup import clear_results
from boothbridge.platform.provision import set_ingest_password


class SettingsUpdate(BaseModel):
    """Only the fields present change. A provider key of "" removes the stored key (the environment's applies)."""

    ingest_password: str | None = Field(default=None, min_length=6, max_length=200)
    gemini_api_key: str | None = Field(
        default=None, max_length=2000, pattern=r"^[\x20-\x7e]*$", description="one key or several, comma-separated"
    )
    turbotext_api_key: str | None = Field(default=None, max_length=500, pattern=r"^[\x20-\x7e]*$")
    t_sync_response: float | None = Field(default=None, ge=5, le=50)
    result_ttl_sec: int | None = Field(default=None, ge=60, le=30 * 24 * 3600)


def settings_router(get_container: Any, operator_dep: Any) -> APIRouter:
    router = APIRouter(dependencies=[Depends(operator_dep)], tags=["settings"], responses=errors(*AUTH))

    async def view(c: Container) -> dict[str, Any]:
        await c.runtime.refresh()
        return c.runtime.public_view()

    @router.get("/api/settings")
    async def get_settings() -> dict[str, Any]:
        """Current settings; API keys are masked."""
        return await view(await get_container())

    @router.put("/api/settings", responses=errors(*BODY))
    async def put_settings(body: SettingsUpdate) -> dict[str, Any]:
        """Change settings; a new ingest password replaces the old one at once."""
        c: Container = await get_container()
        if body.ingest_password is not None:
            await set_ingest_password(c.engine, c.credentials.ingest_hmac_key, body.ingest_password)
        keys = {
            provider: value
            for provider, value in (("gemini", body.gemini_api_key), ("turbotext", body.turbotext_api_key))
            if value is not None
        }
        await c.runtime.save(keys=keys, t_sync_response=body.t_sync_response, result_ttl_sec=body.result_ttl_sec)
        return await view(c)

    @router.post("/api/settings/clear_media_cache")
    async def clear_media_cache() -> dict[str, Any]:
        """Delete every kept result now (normally kept for the result TTL)."""
        return {"deleted": await clear_results(await get_container())}

    return router

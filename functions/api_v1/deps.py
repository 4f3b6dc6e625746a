"""The machine-client API's dependencies (`/api/v1/*`, issue 15), as `Annotated` types a handler declares.

`ClientDep` is the caller: the `MachineClient` of the live API key in `Authorization: Bearer <key>`, counted
against its per-key rate limit. Errors: 401 `invalid_api_key` (with `WWW-Authenticate: Bearer`) for a missing,
malformed, unknown or revoked key (an operator's JWT is no API key), then 429 `rate_limited` (with
`Retry-After`) over API_KEY_RATE_LIMIT. A route documents them with `errors(*KEY_AUTH, ...)`.

Everything comes from the app's `ContainerHolder` and its `KeyRateLimiter` (`request.app.state`, set by
`functions.api_v1.app.create_app`), so the module-level routers serve any app they are included in. As in the
operator API (functions/admin/deps.py), importing this module stays cheap: the container's parts are named as
strings for the type checker only, and the key service's module (psycopg) is imported when a request needs it;
the modules that declare routes with these types do not use `from __future__ import annotations`.
"""

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from boothbridge.accounts.machine_client import MachineClient

if TYPE_CHECKING:
    from boothbridge.accounts.rate_limit import KeyRateLimiter
    from boothbridge.bootstrap import Container
    from boothbridge.http.holder import ContainerHolder
    from boothbridge.settings import Settings
    from boothbridge.tasks.service import TaskService

# What every route behind `ClientDep` can answer besides its own errors.
KEY_AUTH = ("401 invalid_api_key", "429 rate_limited")


async def get_container(request: Request) -> "Container":
    """The process's container (built on the first request on Lambda; given by tests and the emulator)."""
    holder: ContainerHolder = request.app.state.holder
    return await holder.get()


ContainerDep = Annotated["Container", Depends(get_container)]


async def get_settings(c: ContainerDep) -> "Settings":
    return c.settings


SettingsDep = Annotated["Settings", Depends(get_settings)]

# auto_error=False: a missing key (or another scheme) is our uniform 401 `invalid_api_key`, not FastAPI's 403.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="an API key (`bbk_…`) an operator created on the settings page",
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def current_client(request: Request, c: ContainerDep, creds: BearerDep) -> MachineClient:
    """The request's API key as a `MachineClient`, then one request counted against its rate limit (errors: see
    the module docstring)."""
    from boothbridge.accounts.api_keys import KeyAuthenticator  # deferred: it imports psycopg and SQLAlchemy

    client = await KeyAuthenticator(c.pool).authenticate(creds.credentials if creds else None)
    limiter: KeyRateLimiter = request.app.state.key_limiter
    await limiter.admit(str(client.key_id))
    return client


ClientDep = Annotated[MachineClient, Depends(current_client)]


async def task_service(c: "Container") -> "TaskService":
    """The task engine (`boothbridge.tasks.service`) over the container's parts, with the result TTL in effect now
    (an operator may have changed it on the settings page). Shared by the task and the AIGE routes."""
    from boothbridge.tasks.service import TaskService  # deferred: psycopg (see the module docstring)

    values = await c.settings_store.refresh()
    return TaskService(
        settings=c.settings,
        pool=c.pool,
        engine=c.engine,
        media=c.media,
        catalog=c.catalog,
        providers=c.providers,
        dispatcher=c.dispatcher,
        hub=c.hub,
        result_ttl_sec=values.result_ttl_sec,
        queue=c.queue,
    )

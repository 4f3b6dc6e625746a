"""The operator API's dependencies, as `Annotated` types a handler declares in its signature.

Everything comes from the app's `ContainerHolder` (`request.app.state.holder`, set by `create_app`), never from a
closure, so the module-level routers serve any app they are included in (each test builds its own). A service a
route uses is built here from the container's parts (`SlotService(engine, catalog)`), not from the container.
FastAPI resolves each dependency once per request, so the container is fetched once however many use it. The
small ones are `async def` although they do not await: FastAPI would run a plain `def` in its thread pool.

Importing this module stays cheap (issue 13: the operator API's cold start): the container's parts are named as
strings (in the `Annotated` types and the dependencies' return types), for the type checker only. FastAPI reads
only the `Depends(...)` of such a parameter, never its type, and skips return types it cannot resolve, so the
modules need not be loaded at import; a dependency that builds a service imports its module (SQLAlchemy,
psycopg) when it runs, after the first request's container has loaded it. So the modules that declare routes
with these types do not use `from __future__ import annotations`: FastAPI would then resolve the strings.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from boothbridge.accounts.auth import InvalidToken, TokenClaims, decode_token
from boothbridge.accounts.login_guard import LoginGuard
from boothbridge.accounts.sessions import is_revoked
from boothbridge.accounts.sign_in import Operator
from boothbridge.accounts.stream_tokens import decode_stream_token
from boothbridge.db.engine import autocommit
from boothbridge.errors import AppError
from boothbridge.http.url_checks import no_nul_in_url as no_nul_in_url  # the admin app's (moved to the layer)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from boothbridge.bootstrap import Container
    from boothbridge.catalog import Catalog
    from boothbridge.credentials.file import Credentials
    from boothbridge.http.holder import ContainerHolder
    from boothbridge.ingest.service import IngestService
    from boothbridge.jobs.notifications import NotificationHub
    from boothbridge.jobs.view import JobsView
    from boothbridge.media.service import MediaService
    from boothbridge.settings import Settings
    from boothbridge.settings_store import SettingsStore
    from boothbridge.slots.service import SlotService


async def get_container(request: Request) -> "Container":
    """The process's container (built on the first request on Lambda; given by tests and the emulator)."""
    holder: ContainerHolder = request.app.state.holder
    return await holder.get()


ContainerDep = Annotated["Container", Depends(get_container)]


async def get_settings(c: ContainerDep) -> "Settings":
    return c.settings


async def get_engine(c: ContainerDep) -> "AsyncEngine":
    return c.engine


async def get_catalog(c: ContainerDep) -> "Catalog":
    return c.catalog


async def get_credentials(c: ContainerDep) -> "Credentials":
    return c.credentials


async def get_media(c: ContainerDep) -> "MediaService":
    return c.media


async def get_settings_store(c: ContainerDep) -> "SettingsStore":
    return c.settings_store


async def get_hub(c: ContainerDep) -> "NotificationHub | None":
    return c.hub


async def get_ingest(c: ContainerDep) -> "IngestService":
    return c.ingest


SettingsDep = Annotated["Settings", Depends(get_settings)]
EngineDep = Annotated["AsyncEngine", Depends(get_engine)]  # SQLAlchemy: the operator side's database handle
CatalogDep = Annotated["Catalog", Depends(get_catalog)]
CredentialsDep = Annotated["Credentials", Depends(get_credentials)]
MediaDep = Annotated["MediaService", Depends(get_media)]
SettingsStoreDep = Annotated["SettingsStore", Depends(get_settings_store)]  # what operators change live
# The process's LISTEN connection; None where the container was built without one (then jobs are polled).
HubDep = Annotated["NotificationHub | None", Depends(get_hub)]
IngestDep = Annotated["IngestService", Depends(get_ingest)]  # the booth's pipeline (slot test runs use it too)


async def slot_service(engine: EngineDep, catalog: CatalogDep) -> "SlotService":
    from boothbridge.slots.service import SlotService  # deferred: it imports SQLAlchemy (see the module docstring)

    return SlotService(engine, catalog)


async def login_guard(engine: EngineDep) -> LoginGuard:
    return LoginGuard(engine)


async def jobs_view(engine: EngineDep, settings: SettingsDep) -> "JobsView":
    from boothbridge.jobs.view import JobsView  # deferred: it imports psycopg (see the module docstring)

    # Every read of the view is one statement: autocommit spares the BEGIN/COMMIT round trips.
    return JobsView(autocommit(engine), settings.base_url)


SlotsDep = Annotated["SlotService", Depends(slot_service)]
LoginGuardDep = Annotated[LoginGuard, Depends(login_guard)]
JobsViewDep = Annotated["JobsView", Depends(jobs_view)]

# auto_error=False: a missing token is our uniform 401 `unauthorized` (with WWW-Authenticate), not FastAPI's 403.
bearer = HTTPBearer(auto_error=False)


BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _refused(code: str, message: str) -> AppError:
    return AppError(401, code, message, headers={"WWW-Authenticate": "Bearer"})


async def current_claims(credentials: CredentialsDep, engine: EngineDep, creds: BearerDep) -> TokenClaims:
    """The request's bearer token's claims. Errors (401, each with `WWW-Authenticate: Bearer`): `unauthorized`
    without a token, `invalid_token` when it does not verify or has expired, `session_ended` once it was logged
    out."""
    if creds is None:
        raise _refused("unauthorized", "missing bearer token")
    try:
        claims = decode_token(credentials.jwt_secret, creds.credentials)
    except InvalidToken:
        raise token_refused() from None
    if await is_revoked(engine, claims):
        raise _refused("session_ended", "this session was logged out")
    return claims


ClaimsDep = Annotated[TokenClaims, Depends(current_claims)]


async def current_operator(claims: ClaimsDep) -> Operator:
    """The signed-in operator (errors as `current_claims`)."""
    return Operator(claims.user_id, claims.username)


OperatorDep = Annotated[Operator, Depends(current_operator)]


def token_refused() -> AppError:
    """The one answer to every defect of a token (which check failed is not told): 401 `invalid_token`."""
    return _refused("invalid_token", "the token is invalid or expired")


@dataclass(frozen=True)
class StreamCaller:
    operator: Operator
    by_token: bool  # True: a stream token (scoped to the path's job), False: the bearer header


TOKEN_PARAM = (
    "a stream token from `POST /api/jobs/{id}/events/token`, for clients that cannot send the bearer header "
    "(a browser's EventSource); when present it alone authenticates the request"
)


async def stream_caller(
    job_id: str,
    credentials: CredentialsDep,
    engine: EngineDep,
    creds: BearerDep,
    token: Annotated[str | None, Query(max_length=4000, description=TOKEN_PARAM)] = None,
) -> StreamCaller:
    """Who opens a job's event stream: the bearer header as everywhere (errors as `current_claims`), or
    `?token=`, a stream token for the path's job (then only that): 401 `invalid_token` for any defect of it,
    `session_ended` once its session was logged out; 404 `job_not_found` for a path that is no job id."""
    if token is None:
        claims = await current_claims(credentials, engine, creds)
        return StreamCaller(Operator(claims.user_id, claims.username), by_token=False)
    from boothbridge.jobs.view import parse_job_id  # deferred: see jobs_view

    try:
        stream = decode_stream_token(credentials.jwt_secret, token, parse_job_id(job_id))
    except InvalidToken:
        raise token_refused() from None
    if await is_revoked(engine, stream.session):  # a logout ends the session's stream tokens too
        raise _refused("session_ended", "this session was logged out")
    return StreamCaller(Operator(stream.user_id, stream.username), by_token=True)


StreamCallerDep = Annotated[StreamCaller, Depends(stream_caller)]

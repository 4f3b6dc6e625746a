"""The operator API's dependencies, as `Annotated` types a handler declares in its signature.

Everything comes from the app's `ContainerHolder` (`request.app.state.holder`, set by `create_app`), never from a
closure, so the module-level routers serve any app they are included in (each test builds its own). A service a
route uses is built here from the container's parts (`SlotService(engine, catalog)`), not from the container.
FastAPI resolves each dependency once per request, so the container is fetched once however many use it. The
small ones are `async def` although they do not await: FastAPI would run a plain `def` in its thread pool.
"""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine

from boothbridge.accounts.auth import InvalidToken, TokenClaims, decode_token
from boothbridge.accounts.login_guard import LoginGuard
from boothbridge.accounts.sessions import is_revoked
from boothbridge.accounts.sign_in import Operator
from boothbridge.bootstrap import Container
from boothbridge.catalog import Catalog
from boothbridge.credentials.file import Credentials
from boothbridge.errors import AppError
from boothbridge.http.holder import ContainerHolder
from boothbridge.media.service import MediaService
from boothbridge.settings import Settings
from boothbridge.slots.service import SlotService


async def get_container(request: Request) -> Container:
    """The process's container (built on the first request on Lambda; given by tests and the emulator)."""
    holder: ContainerHolder = request.app.state.holder
    return await holder.get()


ContainerDep = Annotated[Container, Depends(get_container)]


async def get_settings(c: ContainerDep) -> Settings:
    return c.settings


async def get_engine(c: ContainerDep) -> AsyncEngine:
    return c.engine


async def get_catalog(c: ContainerDep) -> Catalog:
    return c.catalog


async def get_credentials(c: ContainerDep) -> Credentials:
    return c.credentials


async def get_media(c: ContainerDep) -> MediaService:
    return c.media


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[AsyncEngine, Depends(get_engine)]  # SQLAlchemy: the operator side's database handle
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
CredentialsDep = Annotated[Credentials, Depends(get_credentials)]
MediaDep = Annotated[MediaService, Depends(get_media)]


async def slot_service(engine: EngineDep, catalog: CatalogDep) -> SlotService:
    return SlotService(engine, catalog)


async def login_guard(engine: EngineDep) -> LoginGuard:
    return LoginGuard(engine)


SlotsDep = Annotated[SlotService, Depends(slot_service)]
LoginGuardDep = Annotated[LoginGuard, Depends(login_guard)]

# auto_error=False: a missing token is our uniform 401 `unauthorized` (with WWW-Authenticate), not FastAPI's 403.
bearer = HTTPBearer(auto_error=False)


BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def verify_bearer(c: Container, creds: HTTPAuthorizationCredentials | None) -> TokenClaims:
    """The bearer token's claims. Errors (401, each with `WWW-Authenticate: Bearer`): `unauthorized` without a
    token, `invalid_token` when it does not verify or has expired, `session_ended` once it was logged out."""
    if creds is None:
        raise AppError(401, "unauthorized", "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    try:
        claims = decode_token(c.credentials.jwt_secret, creds.credentials)
    except InvalidToken:
        raise AppError(
            401,
            "invalid_token",
            "the token is invalid or expired",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
    if await is_revoked(c.engine, claims):
        raise AppError(401, "session_ended", "this session was logged out", headers={"WWW-Authenticate": "Bearer"})
    return claims


async def current_claims(c: ContainerDep, creds: BearerDep) -> TokenClaims:
    """The request's bearer token's claims (errors as `verify_bearer`)."""
    return await verify_bearer(c, creds)


ClaimsDep = Annotated[TokenClaims, Depends(current_claims)]


async def current_operator(claims: ClaimsDep) -> Operator:
    """The signed-in operator (errors as `current_claims`)."""
    return Operator(claims.user_id, claims.username)


OperatorDep = Annotated[Operator, Depends(current_operator)]


def _query_names(dependant: Dependant) -> set[str]:
    return {p.alias for p in dependant.query_params}.union(*(_query_names(d) for d in dependant.dependencies))


async def no_nul_in_url(request: Request) -> None:
    """Path and query values are matched against text columns: one with a NUL is a 400, not a database error.
    (Query parameters the route does not declare are ignored, as FastAPI ignores them.)"""
    route = request.scope.get("route")
    declared = _query_names(route.dependant) if isinstance(route, APIRoute) else set()
    query = [(name, value) for name, value in request.query_params.multi_items() if name in declared]
    fields = [
        {"field": f"{where}.{name}", "message": "must not contain NUL characters"}
        for where, items in (("path", list(request.path_params.items())), ("query", query))
        for name, value in items
        if "\x00" in str(value)
    ]
    if fields:
        raise AppError(400, "validation_error", "the request is not valid", {"fields": fields})

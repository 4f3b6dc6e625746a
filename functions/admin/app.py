"""Operator API facade: authentication, the provider catalog, and slot configuration."""
# No `from __future__ import annotations`: FastAPI must resolve the dependency annotations defined in create_app.

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from boothbridge.accounts.auth import InvalidToken, TokenClaims, decode_token, issue_token
from boothbridge.accounts.login_guard import LoginGuard, client_key, viewer_host
from boothbridge.accounts.sessions import is_revoked, revoke
from boothbridge.accounts.sign_in import Operator, authenticate
from boothbridge.bootstrap import Container
from boothbridge.errors import AppError
from boothbridge.http.errors import install_error_handlers
from boothbridge.http.holder import ContainerHolder, LazyMangum
from boothbridge.http.openapi import AUTH, BODY, INVALID, errors, install_openapi
from boothbridge.http.request_id import RequestIdMiddleware
from boothbridge.settings import Settings
from boothbridge.slots import SlotService, SlotUpdate, SlotView
from functions.admin.jobs import jobs_router
from functions.admin.media import media_router
from functions.admin.ops import ops_router
from functions.admin.settings_api import settings_router
from functions.admin.slot_test_runs import slot_test_router
from functions.admin.stats import stats_router

# PostgreSQL text cannot hold NUL (U+0000): input that would reach a query with one is refused as invalid (400).
NO_NUL = r"^[^\x00]*$"


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=100, pattern=NO_NUL)
    password: str = Field(min_length=1, max_length=200)


class LoginResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in_sec: int


class SlotPut(BaseModel):
    name: str = Field(max_length=200, pattern=NO_NUL)
    provider_id: str = Field(min_length=1, max_length=100)
    operation_id: str = Field(min_length=1, max_length=100)
    settings_json: dict[str, Any] = Field(default_factory=dict)
    failure_policy: str | None = Field(default=None, description="'error' (502/504) or 'original' (booth photo)")
    version: int | None = Field(default=None, description="the version last read; 409 if the slot changed since")


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


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    app = FastAPI(
        title="boothbridge operator API",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        dependencies=[Depends(no_nul_in_url)],
    )
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)  # X-Request-Id; the id on every log line of the request
    install_openapi(app)
    # Resolved once, here (first invocation on Lambda, not import): CORS needs it now, the container later.
    settings = settings or (container.settings if container else Settings())
    origins = settings.web_origin_list
    if origins:  # the web UI deployed as a static site on another origin calls this API from the browser
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Retry-After", "X-Job-Id", "X-Processing-Ms"],
            max_age=600,
        )
    # listen=True: slot test runs and job event streams wait on jobs through the process's LISTEN connection.
    holder = app.state.holder = ContainerHolder(settings, container, listen=True)
    bearer = HTTPBearer(auto_error=False)

    async def current_claims(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> TokenClaims:
        c = await holder.get()
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

    async def current_operator(claims: Annotated[TokenClaims, Depends(current_claims)]) -> Operator:
        return Operator(claims.user_id, claims.username)

    OperatorDep = Annotated[Operator, Depends(current_operator)]

    def slot_json(c: Container, slot: SlotView) -> dict[str, Any]:
        return {
            "id": slot.id,
            "name": slot.name,
            "provider_id": slot.provider_id,
            "operation_id": slot.operation_id,
            "settings_json": slot.settings_json,
            "ingest_url": f"{c.settings.base_url}/ingest/{slot.id}",
            "is_configured": slot.is_configured,
            "failure_policy": slot.failure_policy,
            "version": slot.version,
            "last_reset_at": slot.last_reset_at.isoformat() if slot.last_reset_at else None,
            "updated_at": slot.updated_at.isoformat(),
        }

    @app.post(
        "/api/login",
        response_model=LoginResponse,
        tags=["auth"],
        responses=errors(*BODY, "401 invalid_credentials", "429 too_many_attempts"),
    )
    async def login(body: LoginRequest, request: Request) -> LoginResponse:
        """Exchange an operator's username and password for a 60-minute JWT. After 10 failures for a username
        from one address within 15 minutes: 429 too_many_attempts with Retry-After, even with the right password."""
        c = await holder.get()
        # The TCP peer (on Lambda, Mangum sets it from the Function URL event's sourceIp), or behind CloudFront
        # the viewer's address when the request proves it came through CloudFront (see login_guard).
        peer = request.client.host if request.client else None
        address = client_key(viewer_host(peer, request.headers, c.settings.origin_verify_secret))
        guard = LoginGuard(c.engine)
        await guard.admit(body.username, address)  # 429 when throttled; otherwise counted as a failure for now
        operator = await authenticate(c.engine, body.username, body.password)
        if operator is None:
            raise AppError(401, "invalid_credentials", "wrong username or password")
        await guard.succeeded(body.username, address)
        ttl = c.settings.jwt_ttl_sec
        token = issue_token(c.credentials.jwt_secret, operator.id, operator.username, ttl)
        return LoginResponse(access_token=token, expires_in_sec=ttl)

    @app.post("/api/logout", tags=["auth"], status_code=204, response_class=Response, responses=errors(*AUTH))
    async def logout(claims: Annotated[TokenClaims, Depends(current_claims)]) -> Response:
        """End this session: the token is refused from now on (other sessions of the operator stay)."""
        c = await holder.get()
        await revoke(c.engine, claims)
        return Response(status_code=204)

    @app.get("/api/providers", tags=["providers"], responses=errors(*AUTH))
    async def providers(_: OperatorDep) -> dict[str, Any]:
        """The provider catalog with each operation's settings schema."""
        c = await holder.get()
        out = []
        for p in c.catalog.providers.values():
            ops = []
            for op_id in p.operations:
                op = c.catalog.operations[op_id]
                ops.append(
                    {
                        "id": op.id,
                        "name": op.title,
                        "description": op.description,
                        "required_settings": list(op.required_settings),
                        "settings_schema": op.settings_schema,
                    }
                )
            out.append(
                {
                    "id": p.id,
                    "name": p.title,
                    "description": p.description,
                    "available": p.id in c.providers,
                    "currency": c.catalog.currency_of(p.id),
                    "ingest": {
                        "max_parallel_jobs": p.ingest.max_parallel_jobs,
                        "timeout_sec": p.ingest.timeout_sec,
                        "allowed_mime": list(p.ingest.allowed_mime),
                        "max_file_size_mb": p.ingest.max_file_size_mb,
                    },
                    "operations": ops,
                }
            )
        return {"providers": out}

    @app.get("/api/slots", tags=["slots"], responses=errors(*AUTH, INVALID))
    async def list_slots(
        operator: OperatorDep,
        provider_id: Annotated[str | None, Query(max_length=100)] = None,
        operation_id: Annotated[str | None, Query(max_length=100)] = None,
        search: Annotated[str | None, Query(max_length=200)] = None,
    ) -> dict[str, Any]:
        """The operator's slots, optionally filtered."""
        c = await holder.get()
        slots = await SlotService(c.engine, c.catalog).list(operator.id, provider_id, operation_id, search)
        return {"data": [slot_json(c, s) for s in slots], "meta": {"total": len(slots)}}

    @app.get("/api/slots/{slot_id}", tags=["slots"], responses=errors(*AUTH, INVALID, "404 slot_not_found"))
    async def get_slot(slot_id: str, operator: OperatorDep) -> dict[str, Any]:
        """One slot of the operator's."""
        c = await holder.get()
        return slot_json(c, await SlotService(c.engine, c.catalog).get(operator.id, slot_id))

    @app.put(
        "/api/slots/{slot_id}",
        tags=["slots"],
        responses=errors(
            *AUTH,
            *BODY,
            "404 slot_not_found",
            "409 version_conflict",
            "422 unknown_provider",
            "422 unsupported_operation",
            "422 invalid_settings",
            "422 invalid_failure_policy",
            "422 media_not_found",
        ),
    )
    async def put_slot(slot_id: str, body: SlotPut, operator: OperatorDep) -> dict[str, Any]:
        """Configure a slot; settings are validated against the operation's schema."""
        c = await holder.get()
        update = SlotUpdate(
            name=body.name,
            provider_id=body.provider_id,
            operation_id=body.operation_id,
            settings_json=body.settings_json,
            failure_policy=body.failure_policy,
            version=body.version,
        )
        slot = await SlotService(c.engine, c.catalog).update(operator.id, slot_id, update)
        return {"id": slot.id, "updated_at": slot.updated_at.isoformat(), "version": slot.version}

    @app.post("/api/slots/{slot_id}/reset", tags=["slots"], responses=errors(*AUTH, INVALID, "404 slot_not_found"))
    async def reset_slot(slot_id: str, operator: OperatorDep) -> dict[str, Any]:
        """Clear the slot's configuration (it shows as free); id, owner, ingest URL and statistics stay."""
        c = await holder.get()
        return slot_json(c, await SlotService(c.engine, c.catalog).reset(operator.id, slot_id))

    app.include_router(media_router(holder.get, current_operator))
    app.include_router(stats_router(holder.get, current_operator))
    app.include_router(ops_router(holder.get))
    app.include_router(jobs_router(holder.get, current_operator, current_claims))
    app.include_router(slot_test_router(holder.get, current_operator))
    app.include_router(settings_router(holder.get, current_operator))
    return app


handler = LazyMangum(create_app)

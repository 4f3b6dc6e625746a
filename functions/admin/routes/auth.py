"""Sign-in and sign-out: an operator's username and password for a JWT, and ending that token's session."""

from fastapi import APIRouter, Request, Response

from boothbridge.accounts.auth import issue_token
from boothbridge.accounts.login_guard import client_key, viewer_host
from boothbridge.accounts.sessions import revoke
from boothbridge.accounts.sign_in import authenticate
from boothbridge.errors import AppError
from boothbridge.http.openapi import AUTH, BODY, errors
from functions.admin.deps import ClaimsDep, CredentialsDep, EngineDep, LoginGuardDep, SettingsDep
from functions.admin.schemas import LoginRequest, LoginResponse

router = APIRouter(tags=["auth"])


@router.post(
    "/api/login",
    response_model=LoginResponse,
    responses=errors(*BODY, "401 invalid_credentials", "429 too_many_attempts"),
)
async def login(
    body: LoginRequest,
    request: Request,
    settings: SettingsDep,
    engine: EngineDep,
    credentials: CredentialsDep,
    guard: LoginGuardDep,
) -> LoginResponse:
    """Exchange an operator's username and password for a 60-minute JWT. After 10 failures for a username
    from one address within 15 minutes: 429 too_many_attempts with Retry-After, even with the right password."""
    # The TCP peer (on Lambda, Mangum sets it from the Function URL event's sourceIp), or behind CloudFront
    # the viewer's address when the request proves it came through CloudFront (see login_guard).
    peer = request.client.host if request.client else None
    address = client_key(viewer_host(peer, request.headers, settings.origin_verify_secret))
    await guard.admit(body.username, address)  # 429 when throttled; otherwise counted as a failure for now
    operator = await authenticate(engine, body.username, body.password)
    if operator is None:
        raise AppError(401, "invalid_credentials", "wrong username or password")
    await guard.succeeded(body.username, address)
    ttl = settings.jwt_ttl_sec
    token = issue_token(credentials.jwt_secret, operator.id, operator.username, ttl)
    return LoginResponse(access_token=token, expires_in_sec=ttl)


@router.post("/api/logout", status_code=204, response_class=Response, responses=errors(*AUTH))
async def logout(claims: ClaimsDep, engine: EngineDep) -> Response:
    """End this session: the token is refused from now on (other sessions of the operator stay)."""
    await revoke(engine, claims)
    return Response(status_code=204)

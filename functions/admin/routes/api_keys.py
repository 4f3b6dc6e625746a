"""An operator's API keys for machine clients (issue 15): create (the key shown once), list (no secrets), revoke.
Thin over `boothbridge.accounts.api_keys`; an operator's JWT is required, and an API key is no operator token."""

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Response

from boothbridge.http.openapi import AUTH, BODY, INVALID, errors
from functions.admin.deps import EngineDep, OperatorDep
from functions.admin.schemas_api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyInfo, ApiKeyList

if TYPE_CHECKING:  # the service's module imports SQLAlchemy: it comes with the first request's container
    from boothbridge.accounts.api_keys import ApiKeys

router = APIRouter(tags=["api keys"])


async def api_keys(engine: EngineDep) -> "ApiKeys":
    from boothbridge.accounts.api_keys import ApiKeys  # deferred: see functions/admin/deps.py

    return ApiKeys(engine)


ApiKeysDep = Annotated["ApiKeys", Depends(api_keys)]


@router.post(
    "/api/keys",
    status_code=201,
    response_model=ApiKeyCreated,
    responses=errors(*AUTH, *BODY, "409 too_many_api_keys", "422 invalid_name"),
)
async def create_key(body: ApiKeyCreate, operator: OperatorDep, keys: ApiKeysDep) -> ApiKeyCreated:
    """A new API key named `name`. The key itself is in this answer only (it is stored hashed). At most 50 live
    keys per operator (409 too_many_api_keys)."""
    new = await keys.create(operator.id, body.name)
    return ApiKeyCreated(
        id=new.id, name=new.name, prefix=new.prefix, key=new.key, created_at=new.created_at.isoformat()
    )


@router.get("/api/keys", response_model=ApiKeyList, responses=errors(*AUTH))
async def list_keys(operator: OperatorDep, keys: ApiKeysDep) -> ApiKeyList:
    """The operator's API keys, newest first, revoked ones included; never a key or its hash."""
    return ApiKeyList(
        data=[
            ApiKeyInfo(
                id=k.id,
                name=k.name,
                prefix=k.prefix,
                created_at=k.created_at.isoformat(),
                last_used_at=k.last_used_at.isoformat() if k.last_used_at else None,
                revoked_at=k.revoked_at.isoformat() if k.revoked_at else None,
            )
            for k in await keys.list_keys(operator.id)
        ]
    )


@router.delete(
    "/api/keys/{key_id}",
    status_code=204,
    response_class=Response,
    responses=errors(*AUTH, INVALID, "404 api_key_not_found"),
)
async def revoke_key(key_id: str, operator: OperatorDep, keys: ApiKeysDep) -> Response:
    """Revoke the key: its next request is refused (401 invalid_api_key). Revoking a revoked key again is a 204;
    another operator's key or an unknown id is 404 api_key_not_found."""
    await keys.revoke(operator.id, key_id)
    return Response(status_code=204)

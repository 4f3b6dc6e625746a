"""Operator sessions ended before their token expires: logout revokes the token's id, and every authenticated
request checks it. Tokens stay stateless JWTs otherwise; the table only holds ended, not yet expired tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from boothbridge.accounts.auth import TokenClaims
from boothbridge.db.engine import autocommit

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

# Plain strings wrapped in `text()` where they run: the operator API imports this module, and SQLAlchemy's import
# (~0.1 s) belongs to its first request, not to its cold start.
_REVOKE = "INSERT INTO revoked_tokens (token_id, expires_at) VALUES (:id, :expires) ON CONFLICT (token_id) DO NOTHING"
_IS_REVOKED = "SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE token_id = :id)"
# Once a token has expired it is refused for that reason; its revocation row is no longer needed.
_PURGE = "DELETE FROM revoked_tokens WHERE expires_at < now()"


async def revoke(engine: AsyncEngine, claims: TokenClaims) -> None:
    """End the session of this token (idempotent)."""
    from sqlalchemy import text  # deferred: see the statements above

    async with autocommit(engine).connect() as conn:
        await conn.execute(
            text(_REVOKE), {"id": claims.token_id, "expires": datetime.fromtimestamp(claims.expires_at, UTC)}
        )


async def is_revoked(engine: AsyncEngine, claims: TokenClaims) -> bool:
    """Whether this token's session was ended (one read on every authenticated request)."""
    from sqlalchemy import text  # deferred: see the statements above

    async with autocommit(engine).connect() as conn:
        return bool((await conn.execute(text(_IS_REVOKED), {"id": claims.token_id})).scalar())


async def purge_expired(engine: AsyncEngine) -> int:
    """Drop the revocations of tokens that have expired anyway; returns how many."""
    from sqlalchemy import text  # deferred: see the statements above

    async with autocommit(engine).connect() as conn:
        return (await conn.execute(text(_PURGE))).rowcount or 0

"""Logout ends a session on the server: its token is refused from then on, other sessions of the same operator
stay, and the revocation is purged once the token would have expired anyway."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from tests.support.booth import operator_token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_logged_out_token_is_refused_and_other_sessions_stay(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    first = await operator_token(client, settings.credentials_path)
    second = await operator_token(client, settings.credentials_path)
    assert (await client.get("/api/slots", headers=bearer(first))).status_code == 200

    r = await client.post("/api/logout", headers=bearer(first))
    assert r.status_code == 204 and r.content == b""

    refused = await client.get("/api/slots", headers=bearer(first))
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "session_ended"
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    again = await client.post("/api/logout", headers=bearer(first))
    assert again.status_code == 401  # already ended: nothing more to end
    assert (await client.get("/api/slots", headers=bearer(second))).status_code == 200


async def test_logout_needs_a_valid_token(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/logout")).json()["error"]["code"] == "unauthorized"
    r = await client.post("/api/logout", headers=bearer("not.a.token"))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"


async def test_cleanup_purges_revocations_of_tokens_that_have_expired(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    assert (await client.post("/api/logout", headers=bearer(token))).status_code == 204
    past = datetime.now(UTC) - timedelta(minutes=1)
    async with container.engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO revoked_tokens (token_id, expires_at) VALUES ('long-expired', :at)"), {"at": past}
        )
    await container.cleanup.run()
    async with container.engine.connect() as conn:
        left = (await conn.execute(text("SELECT count(*) FROM revoked_tokens"))).scalar()
    assert left == 1, "only the live token's revocation stays"
    assert (await client.get("/api/slots", headers=bearer(token))).status_code == 401

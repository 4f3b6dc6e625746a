"""Operator sign-in against the provisioned accounts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from boothbridge.accounts.auth import verify_password

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass(frozen=True)
class Operator:
    id: int
    username: str


async def authenticate(engine: AsyncEngine, username: str, password: str) -> Operator | None:
    from sqlalchemy import text  # here, not at import: the operator API's cold start does without SQLAlchemy

    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT id, username, hashed_password FROM users WHERE username = :u"), {"u": username}
            )
        ).one_or_none()
    # argon2 is deliberately slow: keep it off the event loop. Unknown users are verified against a dummy
    # hash so both paths take the same time.
    ok = await asyncio.to_thread(verify_password, row.hashed_password if row else None, password)
    return Operator(row.id, row.username) if ok and row is not None else None

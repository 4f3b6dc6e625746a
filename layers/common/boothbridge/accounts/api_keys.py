"""API keys for machine clients (issue 15): an operator creates, names, lists and revokes them on the settings page;
a machine client sends one as `Authorization: Bearer <key>` on `/api/v1/*` and acts for that operator.

A key is `bbk_` followed by 43 base64url characters (256 random bits); it is shown once, in the answer to its
creation. Only its sha256 (hex) is stored, with its first 12 characters (`prefix`, e.g. `bbk_x4Tq9…`) so an operator
can tell keys apart. A fast hash is enough: 256 random bits leave nothing to guess, and a key is looked up by its
hash through the unique index, so the lookup's timing says nothing about any stored key (the hash found is also
compared in constant time). Unknown, revoked and malformed keys get the one same answer, 401 `invalid_api_key`.

Errors (`AppError`): 422 `invalid_name` (a name empty or over 100 characters once trimmed, or with control
characters), 409 `too_many_api_keys` (an operator's `MAX_LIVE_KEYS` live keys), 404 `api_key_not_found` (revoking
an unknown id or another operator's key), 401 `invalid_api_key` (authentication).

The operator's calls (`ApiKeys`) run on the SQLAlchemy engine; `KeyAuthenticator`, on every machine request, on
the raw psycopg pool (`RawDb`). The statements are `accounts/api_key_statements.py`. This module imports
SQLAlchemy and psycopg: the APIs import it in the dependency that builds the service (their cold imports stay
without them).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import text

from boothbridge.accounts import api_key_statements as sql
from boothbridge.accounts.machine_client import MachineClient
from boothbridge.db.engine import autocommit
from boothbridge.errors import AppError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from boothbridge.db.raw import RawDb

KEY_PREFIX = "bbk_"
KEY_BYTES = 32  # 256 bits
# The shown part of a key: the marker and 8 characters (48 of its 256 bits; the other 208 stay secret).
DISPLAY_CHARS = 12
KEY_PATTERN = re.compile(r"bbk_[A-Za-z0-9_-]{43}")
MAX_NAME_CHARS = 100
MAX_LIVE_KEYS = 50
# Unicode categories a name may not contain: controls (tabs and newlines among them), lone surrogates (not
# storable), line and paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


@dataclass(frozen=True)
class ApiKeyInfo:
    """A key as its operator's list shows it: never the key, never its hash. Times are UTC."""

    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class NewApiKey:
    """A key just created: `key` is the secret itself, to be shown this once."""

    id: uuid.UUID
    name: str
    prefix: str
    key: str
    created_at: datetime


def new_key() -> str:
    """A fresh key: `bbk_` + 43 base64url characters (256 random bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def key_hash(key: str) -> str:
    """What is stored of a key: its sha256, 64 lowercase hex digits."""
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_CHARS]


def clean_name(name: str) -> str:
    """The name trimmed; 422 `invalid_name` (at `body.name`) when it is then empty, longer than 100 characters or
    holds a control character (see `_REFUSED_CATEGORIES`)."""
    trimmed = name.strip()
    problem = None
    if not trimmed:
        problem = "must not be empty"
    elif len(trimmed) > MAX_NAME_CHARS:
        problem = f"must be at most {MAX_NAME_CHARS} characters"
    elif any(unicodedata.category(c) in _REFUSED_CATEGORIES for c in trimmed):
        problem = "must not contain control characters or line breaks"
    if problem is not None:
        raise AppError(
            422, "invalid_name", f"the key's name {problem}", {"fields": [{"field": "body.name", "message": problem}]}
        )
    return trimmed


def parse_key_id(value: str) -> uuid.UUID | None:
    """A key id from a path, or None when it is no UUID (then it names no key)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def key_not_found() -> AppError:
    return AppError(404, "api_key_not_found", "no such API key")


def invalid_api_key() -> AppError:
    """The one answer to a missing, malformed, unknown or revoked key (which it was is not told)."""
    return AppError(
        401, "invalid_api_key", "the API key is missing, invalid or revoked", headers={"WWW-Authenticate": "Bearer"}
    )


class ApiKeys:
    """An operator's keys (the settings page): create, list, revoke. `engine`: the operator side's SQLAlchemy
    engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, owner_id: int, name: str) -> NewApiKey:
        """A new live key for the operator `owner_id` named `name` (trimmed). Errors: 422 `invalid_name`, 409
        `too_many_api_keys` when the operator already has `MAX_LIVE_KEYS` live keys."""
        name = clean_name(name)
        key = new_key()
        key_id = uuid.uuid4()
        async with self._engine.begin() as conn:
            await conn.execute(text(sql.LOCK_OWNER), {"owner": owner_id})
            live = (await conn.execute(text(sql.COUNT_LIVE), {"owner": owner_id})).scalar_one()
            if live >= MAX_LIVE_KEYS:
                raise AppError(
                    409,
                    "too_many_api_keys",
                    f"at most {MAX_LIVE_KEYS} live API keys; revoke one first",
                    {"limit": MAX_LIVE_KEYS},
                )
            params = {"id": key_id, "owner": owner_id, "name": name, "prefix": display_prefix(key)}
            created_at = (await conn.execute(text(sql.INSERT), {**params, "key_hash": key_hash(key)})).scalar_one()
        return NewApiKey(key_id, name, display_prefix(key), key, created_at)

    async def list_keys(self, owner_id: int) -> list[ApiKeyInfo]:
        """The operator's keys, newest first, revoked ones included."""
        async with autocommit(self._engine).connect() as conn:
            rows = (await conn.execute(text(sql.LIST), {"owner": owner_id})).all()
        return [ApiKeyInfo(r.id, r.name, r.prefix, r.created_at, r.last_used_at, r.revoked_at) for r in rows]

    async def revoke(self, owner_id: int, key_id: str) -> datetime:
        """Revoke the operator's key `key_id` (its path text); returns when it was revoked (the first time, when
        revoked again). 404 `api_key_not_found` for an id that is no key of this operator's."""
        parsed = parse_key_id(key_id)
        if parsed is None:
            raise key_not_found()
        async with autocommit(self._engine).connect() as conn:
            revoked_at = (await conn.execute(text(sql.REVOKE), {"id": parsed, "owner": owner_id})).scalar_one_or_none()
        if revoked_at is None:
            raise key_not_found()
        revoked: datetime = revoked_at
        return revoked


class KeyAuthenticator:
    """Who a machine request's key is (`/api/v1/*`): one statement on the hot path's pool per request."""

    def __init__(self, pool: RawDb) -> None:
        self._pool = pool

    async def authenticate(self, key: str | None) -> MachineClient:
        """The live key `key` (the bearer token, or None when the request had none) as a `MachineClient`; its
        `last_used_at` is touched at most once a minute. 401 `invalid_api_key` for a missing, malformed, unknown or
        revoked key (the database is not asked about a malformed one)."""
        if key is None or KEY_PATTERN.fullmatch(key) is None:
            raise invalid_api_key()
        digest = key_hash(key)
        row = await self._pool.one(sql.AUTHENTICATE, {"key_hash": digest})
        if row is None or not hmac.compare_digest(row["key_hash"], digest):
            raise invalid_api_key()
        return MachineClient(row["id"], row["owner_id"], row["name"])

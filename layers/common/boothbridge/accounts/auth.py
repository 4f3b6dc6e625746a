"""Operator passwords (argon2) and JWT access tokens (the ingest password is `accounts.ingest_password`)."""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

# argon2id as RFC 9106 recommends where memory is constrained (t=3, m=64 MiB, p=4): ~0.1-0.2 s per hash here.
HASH_PARAMETERS = profiles.RFC_9106_LOW_MEMORY
_hasher = PasswordHasher.from_parameters(HASH_PARAMETERS)
JWT_ALGORITHM = "HS256"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@functools.cache
def _dummy_hash() -> str:
    """Verifying against this keeps a login for an unknown user as slow as one for a known user. Made on first
    use, not at import: a hash costs as much as a login, and most processes (ingest, worker) never need it."""
    return _hasher.hash("boothbridge-timing-equaliser")


def verify_password(hashed: str | None, password: str) -> bool:
    try:
        return _hasher.verify(hashed or _dummy_hash(), password) and hashed is not None
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    username: str
    expires_at: int
    token_id: str  # the JWT's jti: what logout revokes


class InvalidToken(Exception):
    """Missing, malformed, tampered or expired token."""


def issue_token(secret: str, user_id: int, username: str, ttl_sec: int, now: float | None = None) -> str:
    import jwt  # here, not at import: PyJWT loads cryptography (~10 MiB), and most processes sign nothing

    issued = int(now if now is not None else time.time())
    payload: dict[str, Any] = {
        "sub": str(user_id),
        "name": username,
        "iat": issued,
        "exp": issued + ttl_sec,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(payload, secret, algorithm=JWT_ALGORITHM)


def decode_token(secret: str, token: str) -> TokenClaims:
    import jwt  # here, not at import: see issue_token

    try:
        payload = jwt.decode(token, secret, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "sub", "jti"]})
        return TokenClaims(
            user_id=int(payload["sub"]),
            username=str(payload["name"]),
            expires_at=int(payload["exp"]),
            token_id=str(payload["jti"]),
        )
    except (jwt.PyJWTError, KeyError, ValueError) as exc:
        raise InvalidToken(str(exc)) from exc

"""Operator passwords (argon2), JWT access tokens, and the ingest password check."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
JWT_ALGORITHM = "HS256"
# Verifying against this keeps a login for an unknown user as slow as one for a known user.
_DUMMY_HASH = _hasher.hash("boothbridge-timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(hashed: str | None, password: str) -> bool:
    try:
        return _hasher.verify(hashed or _DUMMY_HASH, password) and hashed is not None
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


def ingest_password_digest(key: bytes, password: str) -> str:
    """HMAC-SHA256 of the ingest password under a server key: cheap enough for every booth request, and
    the database never holds the password itself."""
    return hmac.new(key, password.encode("utf-8"), hashlib.sha256).hexdigest()


def check_ingest_password(key: bytes, expected_digest: str, candidate: str | None) -> bool:
    """Constant-time comparison of digests (the comparison time does not depend on where they differ)."""
    got = ingest_password_digest(key, candidate or "")
    return hmac.compare_digest(got, expected_digest) and candidate is not None

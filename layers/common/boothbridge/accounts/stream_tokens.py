"""Stream tokens: short-lived JWTs that let a browser's EventSource (which cannot send an Authorization header)
open ONE job's event stream (`GET /api/jobs/{id}/events?token=…`) on behalf of ONE operator's session.

A stream token is no access token and an access token is no stream token: a stream token is signed with a key
derived from the JWT secret for this purpose alone (so `auth.decode_token` cannot verify it, nor can this module
verify an access token) and also carries its own audience. It names the session (the access token's `jti` and
expiry) it was issued under, so the API can refuse it once that session is logged out, and it never outlives it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from typing import Any

from boothbridge.accounts.auth import JWT_ALGORITHM, InvalidToken, TokenClaims

AUDIENCE = "boothbridge:job-events"
# Long enough to open the stream and for EventSource's own reconnects after the server's cap on a stream's length
# (20 s behind a buffered Lambda URL: two reopen cycles) or a network blip (it retries after 1 s); short enough
# that a URL copied out of a log, the browser history or a proxy's access log is of no use soon after. Past it
# the page asks for a fresh token (slot.js).
STREAM_TOKEN_TTL_SEC = 60
_KEY_LABEL = b"boothbridge stream token: job events"


@dataclass(frozen=True)
class StreamClaims:
    user_id: int
    username: str
    job_id: uuid.UUID
    expires_at: int  # unix seconds
    session: TokenClaims  # the access token it was issued under: its jti is what logout revokes


def _key(secret: str) -> bytes:
    """The signing key of stream tokens: HMAC-SHA256 of a fixed label under the JWT secret (32 bytes)."""
    return hmac.new(secret.encode("utf-8"), _KEY_LABEL, hashlib.sha256).digest()


def issue_stream_token(
    secret: str,
    session: TokenClaims,
    job_id: uuid.UUID,
    ttl_sec: int = STREAM_TOKEN_TTL_SEC,
    now: float | None = None,
) -> tuple[str, int]:
    """A token for `job_id`'s event stream under `session` (the caller checked the operator owns the job).
    Answers (token, seconds it is valid): `ttl_sec`, less when the session expires sooner."""
    import jwt  # here, not at import: PyJWT loads cryptography (see auth.issue_token)

    issued = int(now if now is not None else time.time())
    expires = min(issued + ttl_sec, session.expires_at)
    payload: dict[str, Any] = {
        "aud": AUDIENCE,
        "sub": str(session.user_id),
        "name": session.username,
        "job": str(job_id),
        "sid": session.token_id,
        "sexp": session.expires_at,
        "iat": issued,
        "exp": expires,
        "jti": uuid.uuid4().hex,  # each token its own, even two for one job within a second
    }
    return jwt.encode(payload, _key(secret), algorithm=JWT_ALGORITHM), max(expires - issued, 0)


def decode_stream_token(secret: str, token: str, job_id: uuid.UUID) -> StreamClaims:
    """The claims of a valid, unexpired stream token for `job_id`. Raises InvalidToken for anything else: a
    malformed, tampered or expired token, one for another job, an access token. (Revocation of its session is
    the caller's check: it needs the database.)"""
    import jwt  # here, not at import: see issue_stream_token

    try:
        payload = jwt.decode(
            token,
            _key(secret),
            algorithms=[JWT_ALGORITHM],
            audience=AUDIENCE,
            options={"require": ["aud", "exp", "sub", "job", "sid", "sexp"]},
        )
        claims = StreamClaims(
            user_id=int(payload["sub"]),
            username=str(payload["name"]),
            job_id=uuid.UUID(str(payload["job"])),
            expires_at=int(payload["exp"]),
            session=TokenClaims(
                user_id=int(payload["sub"]),
                username=str(payload["name"]),
                expires_at=int(payload["sexp"]),
                token_id=str(payload["sid"]),
            ),
        )
    except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
        raise InvalidToken(str(exc)) from exc
    if claims.job_id != job_id:
        raise InvalidToken("the token is for another job")
    return claims

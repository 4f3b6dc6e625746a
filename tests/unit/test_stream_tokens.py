"""Stream tokens (accounts/stream_tokens.py): one job, one operator's session, the "job events" purpose, a short
life; never interchangeable with an access token."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from boothbridge.accounts.auth import InvalidToken, TokenClaims, decode_token, issue_token
from boothbridge.accounts.stream_tokens import (
    STREAM_TOKEN_TTL_SEC,
    _key,
    decode_stream_token,
    issue_stream_token,
)

SECRET = "a" * 64
JOB = uuid.UUID("6f1c2d3e-4b5a-4c6d-8e7f-0123456789ab")


def session(ttl_sec: int = 3600, now: float | None = None) -> tuple[str, TokenClaims]:
    access = issue_token(SECRET, 7, "serg", ttl_sec, now=now)
    return access, decode_token(SECRET, access)


def test_a_token_is_for_its_job_operator_and_session() -> None:
    _, claims = session()
    token, valid_for = issue_stream_token(SECRET, claims, JOB)
    assert valid_for == STREAM_TOKEN_TTL_SEC
    got = decode_stream_token(SECRET, token, JOB)
    assert (got.user_id, got.username, got.job_id) == (7, "serg", JOB)
    assert got.session == claims  # what logout revokes can be checked: the session's jti and expiry
    assert got.expires_at - time.time() == pytest.approx(STREAM_TOKEN_TTL_SEC, abs=2)
    assert issue_stream_token(SECRET, claims, JOB, now=1e9)[0] != issue_stream_token(SECRET, claims, JOB, now=1e9)[0]


def test_a_token_never_outlives_its_session() -> None:
    _, claims = session(ttl_sec=20)
    token, valid_for = issue_stream_token(SECRET, claims, JOB)
    assert 18 <= valid_for <= 20
    assert decode_stream_token(SECRET, token, JOB).expires_at == claims.expires_at


def test_an_expired_token_is_refused() -> None:
    _, claims = session(now=time.time() - 600)
    token, _ = issue_stream_token(SECRET, claims, JOB, now=time.time() - 120)
    with pytest.raises(InvalidToken, match="expired"):
        decode_stream_token(SECRET, token, JOB)


def test_a_token_for_another_job_is_refused() -> None:
    _, claims = session()
    token, _ = issue_stream_token(SECRET, claims, JOB)
    with pytest.raises(InvalidToken, match="another job"):
        decode_stream_token(SECRET, token, uuid.uuid4())


@pytest.mark.parametrize("where", ["header", "payload", "signature"])
def test_a_tampered_token_is_refused(where: str) -> None:
    _, claims = session()
    token, _ = issue_stream_token(SECRET, claims, JOB)
    parts = token.split(".")
    index = {"header": 0, "payload": 1, "signature": 2}[where]
    parts[index] = parts[index][:-2] + ("AA" if parts[index][-2:] != "AA" else "BB")
    with pytest.raises(InvalidToken):
        decode_stream_token(SECRET, ".".join(parts), JOB)


def test_a_token_of_another_secret_is_refused() -> None:
    _, claims = session()
    token, _ = issue_stream_token("b" * 64, claims, JOB)
    with pytest.raises(InvalidToken):
        decode_stream_token(SECRET, token, JOB)


def test_access_tokens_and_stream_tokens_are_not_interchangeable() -> None:
    access, claims = session()
    stream, _ = issue_stream_token(SECRET, claims, JOB)
    with pytest.raises(InvalidToken):
        decode_stream_token(SECRET, access, JOB)
    with pytest.raises(InvalidToken):
        decode_token(SECRET, stream)


@pytest.mark.parametrize("audience", [None, "boothbridge:other"])
def test_the_purpose_is_checked_as_well_as_the_key(audience: str | None) -> None:
    _, claims = session()
    stream, _ = issue_stream_token(SECRET, claims, JOB)
    payload = jwt.decode(stream, options={"verify_signature": False})
    payload.pop("aud")
    if audience is not None:
        payload["aud"] = audience
    with pytest.raises(InvalidToken):
        decode_stream_token(SECRET, jwt.encode(payload, _key(SECRET), algorithm="HS256"), JOB)


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c"])
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        decode_stream_token(SECRET, token, JOB)

"""The API keys' rules without a database (accounts/api_keys.py, accounts/rate_limit.py): the key's shape and
what is stored of it, names, path ids, and the per-key limiter over `limits`' memory storage."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from boothbridge.accounts.api_keys import (
    KEY_PATTERN,
    clean_name,
    display_prefix,
    invalid_api_key,
    key_hash,
    new_key,
    parse_key_id,
)
from boothbridge.accounts.rate_limit import KeyRateLimiter, async_storage_uri, parse_rate
from boothbridge.errors import AppError
from boothbridge.settings import Settings


def test_a_key_is_the_marker_and_256_random_bits() -> None:
    keys = {new_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert KEY_PATTERN.fullmatch(key), key
        assert len(key) == 4 + 43  # 32 bytes in unpadded base64url


def test_what_is_stored_and_shown_of_a_key() -> None:
    key = new_key()
    assert key_hash(key) == hashlib.sha256(key.encode()).hexdigest()
    assert display_prefix(key) == key[:12] and display_prefix(key).startswith("bbk_")


@pytest.mark.parametrize(
    "token",
    ["eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "bbk_short", "bbk_" + "A" * 42 + "=", "BBK_" + "A" * 43, ""],
)
def test_other_tokens_are_not_keys(token: str) -> None:
    assert KEY_PATTERN.fullmatch(token) is None


@pytest.mark.parametrize(("given", "kept"), [(" kiosk ", "kiosk"), ("a", "a"), ("\u00a0ключ 🔑\u3000", "ключ 🔑")])
def test_a_name_is_trimmed(given: str, kept: str) -> None:
    assert clean_name(given) == kept


@pytest.mark.parametrize("name", ["", " \t\n ", "x" * 101, "a\tb", "a\x00b", "a\x1bb", "a\u2029b", "a\ud800b"])
def test_a_bad_name_is_422_at_body_name(name: str) -> None:
    with pytest.raises(AppError) as caught:
        clean_name(name)
    assert caught.value.status == 422 and caught.value.code == "invalid_name"
    assert caught.value.details["fields"][0]["field"] == "body.name"


def test_a_path_id_that_is_no_uuid_names_no_key() -> None:
    known = uuid.uuid4()
    assert parse_key_id(str(known)) == known
    assert parse_key_id("x") is None and parse_key_id("") is None


def test_every_refusal_of_a_key_is_the_same_answer() -> None:
    refused = invalid_api_key()
    assert (refused.status, refused.code, refused.headers) == (401, "invalid_api_key", {"WWW-Authenticate": "Bearer"})


def test_rate_strings_and_storage_uris() -> None:
    assert [(item.amount, item.get_expiry()) for item in parse_rate("10/second;500/hour")] == [(10, 1), (500, 3600)]
    with pytest.raises(ValueError):
        parse_rate("lots")
    assert async_storage_uri("memory://") == "async+memory://"
    assert async_storage_uri("async+redis://h:6379") == "async+redis://h:6379"
    with pytest.raises(ValueError):
        Settings(_env_file=None, api_key_rate_limit="often")


async def test_the_limiter_counts_each_key_on_its_own() -> None:
    limiter = KeyRateLimiter("2/minute;3/hour", "memory://")
    await limiter.admit("a")
    await limiter.admit("a")
    with pytest.raises(AppError) as caught:
        await limiter.admit("a")
    assert caught.value.status == 429 and caught.value.code == "rate_limited"
    retry_after = int(caught.value.headers["Retry-After"])
    assert 1 <= retry_after <= 60 and caught.value.details == {"retry_after_sec": retry_after}
    await limiter.admit("b")  # another key has its own window


async def test_a_refused_request_is_not_counted() -> None:
    # 2/minute refuses the third; were refused requests counted, the hourly 3 would be used up by them.
    limiter = KeyRateLimiter("2/minute;3/hour", "memory://")
    for _ in range(2):
        await limiter.admit("k")
    for _ in range(5):
        with pytest.raises(AppError):
            await limiter.admit("k")
    stats = await limiter._strategy().get_window_stats(parse_rate("3/hour")[0], "k")
    assert stats.remaining == 1

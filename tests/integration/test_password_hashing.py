"""Operator passwords are stored as argon2id at the product's parameters, and sign-in verifies against them.

The rest of the suite hashes at argon2-cffi's cheapest parameters (see `cheap_password_hashing` in conftest);
these tests put the product's hasher back before the container provisions the operators.
"""

from __future__ import annotations

from collections.abc import Iterator

import argon2
import httpx
import pytest
from sqlalchemy import text

from boothbridge.accounts import auth
from boothbridge.bootstrap import Container
from tests.support.booth import credentials


@pytest.fixture
def product_password_hashing() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth, "_hasher", argon2.PasswordHasher.from_parameters(auth.HASH_PARAMETERS))
        auth._dummy_hash.cache_clear()
        yield
    auth._dummy_hash.cache_clear()


def test_the_product_hashes_with_rfc_9106_low_memory_argon2id() -> None:
    params = auth.HASH_PARAMETERS
    assert params.type is argon2.Type.ID
    assert (params.time_cost, params.memory_cost, params.parallelism) == (3, 64 * 1024, 4)
    assert (params.salt_len, params.hash_len) == (16, 32)


async def test_operators_are_stored_with_the_products_parameters_and_can_sign_in(
    product_password_hashing: None, container: Container, client: httpx.AsyncClient
) -> None:
    async with container.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT username, hashed_password FROM users"))).all()
    stored = {row.username: row.hashed_password for row in rows}
    assert set(stored) == {"serg", "igor"}
    for hashed in stored.values():
        assert argon2.extract_parameters(hashed) == auth.HASH_PARAMETERS

    creds = credentials(container.settings.credentials_path)
    ok = await client.post("/api/login", json={"username": "serg", "password": creds["users"]["serg"]})
    assert ok.status_code == 200, ok.text
    wrong = await client.post("/api/login", json={"username": "serg", "password": creds["users"]["igor"]})
    assert wrong.status_code == 401
    # An unknown user is verified against the dummy hash, made at the same cost (no timing difference).
    unknown = await client.post("/api/login", json={"username": "nobody", "password": "whatever-it-is"})
    assert unknown.status_code == 401
    assert argon2.extract_parameters(auth._dummy_hash()) == auth.HASH_PARAMETERS

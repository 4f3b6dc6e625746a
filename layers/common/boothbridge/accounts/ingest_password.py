"""The ingest password: the one secret every booth of the deployment sends with its photos (SPEC §3).

Stored as an HMAC-SHA256 digest under the credentials' `ingest_hmac_key` in `app_settings` (key
`ingest_password`, value `{"digest": …, "file_digest": …}`): cheap enough to check on every booth request, and the
database never holds the password itself. Provisioning writes it from the credentials file; the settings page
changes it (`set_ingest_password`); ingest checks it (`check_ingest_password`) on its hot path, which is why this
module imports nothing but the standard library (SQLAlchemy's `text` where the settings page needs it).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

INGEST_PASSWORD_KEY = "ingest_password"  # the app_settings row


def ingest_password_digest(key: bytes, password: str) -> str:
    """HMAC-SHA256 (hex) of the ingest password under the server key."""
    return hmac.new(key, password.encode("utf-8"), hashlib.sha256).hexdigest()


def check_ingest_password(key: bytes, expected_digest: str, candidate: str | None) -> bool:
    """Constant-time comparison of digests (the comparison time does not depend on where they differ)."""
    got = ingest_password_digest(key, candidate or "")
    return hmac.compare_digest(got, expected_digest) and candidate is not None


async def set_ingest_password(engine: AsyncEngine, hmac_key: bytes, password: str) -> None:
    """The settings page's new ingest password: the old one stops working with the next booth request."""
    from sqlalchemy import text  # here, not at import: the operator API's cold start does without SQLAlchemy

    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE app_settings SET value = jsonb_set(value, '{digest}', to_jsonb(CAST(:d AS text))),"
                " updated_at = now() WHERE key = :k"
            ),
            {"k": INGEST_PASSWORD_KEY, "d": ingest_password_digest(hmac_key, password)},
        )

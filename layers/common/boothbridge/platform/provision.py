"""Provisioning: the credentials file, operator accounts (argon2) and their 40 slots each; idempotent.

`python -m boothbridge.platform.provision [--regenerate]` (re)generates the credentials file and applies it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy import text

from boothbridge.accounts.auth import hash_password, verify_password
from boothbridge.accounts.ingest_password import INGEST_PASSWORD_KEY, ingest_password_digest
from boothbridge.credentials import file as credentials
from boothbridge.credentials.file import Credentials
from boothbridge.credentials.source import load_credentials
from boothbridge.db.engine import create_engine, resolve_database_url
from boothbridge.db.migrate import upgrade_to_head
from boothbridge.platform.logs import configure_logging
from boothbridge.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

SLOTS_PER_USER = 40

log = logging.getLogger(__name__)


def slot_ids_for(user_index: int) -> list[str]:
    """User 0 owns slot-001..slot-040, user 1 slot-041..slot-080, and so on: ids are unique across users."""
    start = user_index * SLOTS_PER_USER + 1
    return [f"slot-{n:03d}" for n in range(start, start + SLOTS_PER_USER)]


async def apply_credentials(engine: AsyncEngine, creds: Credentials) -> None:
    """Create or update users (re-hashing only when the password changed), their slots, and the ingest
    password digest."""
    async with engine.begin() as conn:
        # One provisioning at a time across processes (several emulators starting on one database).
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('boothbridge.provision'))"))
        for index, (username, password) in enumerate(sorted(creds.users.items(), key=_user_order)):
            row = (
                await conn.execute(text("SELECT id, hashed_password FROM users WHERE username = :u"), {"u": username})
            ).one_or_none()
            if row is None:
                user_id = (
                    await conn.execute(
                        text("INSERT INTO users (username, hashed_password) VALUES (:u, :h) RETURNING id"),
                        {"u": username, "h": hash_password(password)},
                    )
                ).scalar_one()
            else:
                user_id = row.id
                if not verify_password(row.hashed_password, password):
                    await conn.execute(
                        text("UPDATE users SET hashed_password = :h WHERE id = :id"),
                        {"h": hash_password(password), "id": user_id},
                    )
            # The user's 40 slots in one statement (one round trip, not forty).
            await conn.execute(
                text(
                    "INSERT INTO slots (id, user_id) SELECT unnest(CAST(:ids AS text[])), :uid "
                    "ON CONFLICT (id) DO NOTHING"
                ),
                {"ids": slot_ids_for(index), "uid": user_id},
            )
        # The file's ingest password applies when the row is new or the file's password changed (regenerated
        # secrets); a password changed later on the settings page survives restarts with the same file.
        digest = ingest_password_digest(creds.ingest_hmac_key, creds.ingest_password)
        await conn.execute(
            text(
                """
                INSERT INTO app_settings (key, value)
                VALUES (:k, jsonb_build_object('digest', CAST(:d AS text), 'file_digest', CAST(:d AS text)))
                ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
                WHERE app_settings.value->>'file_digest' IS DISTINCT FROM CAST(:d AS text)
                """
            ),
            {"k": INGEST_PASSWORD_KEY, "d": digest},
        )


def _user_order(item: tuple[str, str]) -> tuple[int, str]:
    # The default accounts keep their historic order (serg first) so slot numbering never moves.
    name = item[0]
    order = credentials.DEFAULT_USERS.index(name) if name in credentials.DEFAULT_USERS else 99
    return order, name


async def prepare_database(settings: Settings, database_url: str, *, migrate: bool = True) -> None:
    """What an entry point that owns its database does before `build_container`: Alembic upgrade to head (unless
    `migrate` is False: the caller migrated already, e.g. a test database cloned from a migrated template), then
    the credentials' accounts, slots and ingest password (`apply_credentials`). Raises `CredentialsUnavailable`
    when the credentials cannot be read; the database is left as far as it got (every step is idempotent)."""
    creds, created = await load_credentials(settings)
    if created:
        log.warning("generated new credentials at %s", settings.credentials_path.resolve())
    if migrate:
        await asyncio.to_thread(upgrade_to_head, database_url)
    engine = create_engine(database_url, pool_size=1)
    try:
        await apply_credentials(engine, creds)
    finally:
        await engine.dispose()


async def _main(regenerate: bool) -> None:
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    if regenerate:
        if settings.credentials_secret_arn:  # on AWS the functions' own secret applies; it is never generated here
            raise SystemExit("--regenerate writes a local file; update the credentials secret instead")
        settings.credentials_path.unlink(missing_ok=True)
    _, created = await load_credentials(settings, allow_create=True)
    url = await asyncio.to_thread(resolve_database_url, settings)
    await prepare_database(settings, url)
    source = settings.credentials_secret_arn or settings.credentials_path.resolve()
    print(f"credentials {'generated' if created else 'applied'}: {source}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--regenerate", action="store_true", help="replace the credentials file with new secrets")
    args = parser.parse_args()
    asyncio.run(_main(args.regenerate))


if __name__ == "__main__":
    main()

"""The slot as a booth's request runs it, read with the ingest password's digest in one statement on every
request (a changed slot or password applies at once), and the password check."""

from __future__ import annotations

from collections.abc import Mapping

from boothbridge.accounts.ingest_password import INGEST_PASSWORD_KEY, check_ingest_password
from boothbridge.db.raw import RawDb
from boothbridge.errors import AppError
from boothbridge.ingest.admission import check_slot_id
from boothbridge.ingest.model import SlotForIngest
from boothbridge.ingest.statements import SLOT


async def load_slot(pool: RawDb, slot_id: str) -> SlotForIngest:
    """The slot `slot_id` with its pipeline columns and the ingest password's digest. 404 `slot_not_found` for
    an id no slot has (`check_slot_id` first refuses one no slot can have)."""
    check_slot_id(slot_id)
    row = await pool.one(SLOT, {"id": slot_id, "pw_key": INGEST_PASSWORD_KEY})
    if row is None:
        raise AppError(404, "slot_not_found", "no such slot", {"slot_id": slot_id})
    return SlotForIngest(
        id=row["id"],
        provider_id=row["provider_id"],
        operation_id=row["operation_id"],
        settings_json=row["settings_json"] or {},
        failure_policy=row["failure_policy"],
        password_digest=row["digest"],
        steps=list(row["steps"] or []),
        finishing=dict(row["finishing"] or {}),
        variants=dict(row["variants"] or {}),
        variant_field=row["variant_field"],
    )


def check_password(hmac_key: bytes, slot: SlotForIngest, fields: Mapping[str, str]) -> None:
    """401 `invalid_password` unless the form's `password` matches the digest read with the slot."""
    digest = slot.password_digest
    if not digest or not check_ingest_password(hmac_key, digest, fields.get("password")):
        raise AppError(401, "invalid_password", "wrong or missing ingest password")

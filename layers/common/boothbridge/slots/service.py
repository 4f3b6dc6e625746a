"""Slots in the database: listing an operator's slots, saving a slot's configuration (validated against the
catalog by `slot_rules`; the version and the named images checked here), and resetting it to unconfigured."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from boothbridge.catalog import Catalog
from boothbridge.errors import AppError
from boothbridge.slots.rules import SlotUpdate, check_media_found, media_references, validate_update

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

# The images an operator may name in a slot's `*_media_id` settings: live, and their own upload; or, for an
# upload from before owners were recorded (owner_id NULL), one that a slot of theirs already names (so an existing
# configuration can be saved again). Another operator's image is reported exactly like a missing one.
_USABLE_MEDIA = text(
    r"""
    SELECT m.id FROM media_objects m
    WHERE m.id = ANY(:ids) AND (m.expires_at IS NULL OR m.expires_at > now())
      AND (m.owner_id = CAST(:uid AS integer)
           OR (m.owner_id IS NULL AND EXISTS (
                SELECT 1 FROM slots s, jsonb_each_text(s.settings_json) e
                WHERE s.user_id = CAST(:uid AS integer) AND e.key LIKE '%\_media\_id' AND e.value = m.id::text)))
    """
)

_SLOT_COLUMNS = "id, name, provider_id, operation_id, settings_json, failure_policy, version, last_reset_at, updated_at"


@dataclass(frozen=True)
class SlotView:
    id: str
    name: str
    provider_id: str | None
    operation_id: str | None
    settings_json: dict[str, Any]
    failure_policy: str
    version: int
    last_reset_at: datetime | None
    updated_at: datetime

    @property
    def is_configured(self) -> bool:
        return bool(self.provider_id and self.operation_id)


class SlotService:
    def __init__(self, engine: AsyncEngine, catalog: Catalog) -> None:
        self.engine = engine
        self.catalog = catalog
        # The operator whose slot `get` last found: whose media a later `check` without `user_id` may name.
        self._viewer: int | None = None

    async def list(
        self,
        user_id: int,
        provider_id: str | None = None,
        operation_id: str | None = None,
        search: str | None = None,
    ) -> list[SlotView]:
        clauses = ["user_id = :uid"]
        params: dict[str, Any] = {"uid": user_id}
        if provider_id:
            clauses.append("provider_id = :provider")
            params["provider"] = provider_id
        if operation_id:
            clauses.append("operation_id = :operation")
            params["operation"] = operation_id
        if search:
            # Literal substring match on name or id; escape LIKE's wildcards in the operator's text.
            clauses.append("(name ILIKE :pattern ESCAPE '\\' OR id ILIKE :pattern ESCAPE '\\')")
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params["pattern"] = f"%{escaped}%"
        sql = f"SELECT {_SLOT_COLUMNS} FROM slots WHERE {' AND '.join(clauses)} ORDER BY id"
        async with self.engine.connect() as conn:
            rows = (await conn.execute(text(sql), params)).all()
        return [SlotView(**row._mapping) for row in rows]

    async def get(self, user_id: int, slot_id: str) -> SlotView:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(f"SELECT {_SLOT_COLUMNS} FROM slots WHERE id = :id AND user_id = :uid"),
                    {"id": slot_id, "uid": user_id},
                )
            ).one_or_none()
        if row is None:
            # Another operator's slot is reported exactly like a missing one.
            raise AppError(404, "slot_not_found", "no such slot", {"slot_id": slot_id})
        self._viewer = user_id
        return SlotView(**row._mapping)

    def validate(self, update: SlotUpdate) -> None:
        """Catalog and JSON-Schema checks; every problem is reported at its field (see `validate_update`)."""
        validate_update(self.catalog, update)

    async def _check_media(self, update: SlotUpdate, user_id: int | None) -> None:
        references = media_references(self.catalog, update)
        if not references:
            return
        async with self.engine.connect() as conn:
            found = set(
                (await conn.execute(_USABLE_MEDIA, {"ids": list(references.values()), "uid": user_id})).scalars()
            )
        check_media_found(references, found)

    async def check(self, update: SlotUpdate, user_id: int | None = None) -> None:
        """Everything a save checks, without saving: catalog, settings schema, and that named images exist and
        are the operator's (`user_id`; by default the one whose slot `get` found; with neither, no image is)."""
        self.validate(update)
        await self._check_media(update, user_id if user_id is not None else self._viewer)

    async def update(self, user_id: int, slot_id: str, update: SlotUpdate) -> SlotView:
        await self.get(user_id, slot_id)
        await self.check(update, user_id)
        # Optimistic concurrency: with a version the update applies only to the version the editor saw.
        sql = text(
            f"""
            UPDATE slots SET name = :name, provider_id = :provider, operation_id = :operation,
                   settings_json = :settings, failure_policy = coalesce(:policy, failure_policy),
                   version = version + 1, updated_at = now()
            WHERE id = :id AND user_id = :uid AND (CAST(:version AS integer) IS NULL OR version = :version)
            RETURNING {_SLOT_COLUMNS}
            """
        ).bindparams(bindparam("settings", type_=JSONB))
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    sql,
                    {
                        "id": slot_id,
                        "uid": user_id,
                        "name": update.name,
                        "provider": update.provider_id,
                        "operation": update.operation_id,
                        "settings": update.settings_json,
                        "policy": update.failure_policy,
                        "version": update.version,
                    },
                )
            ).one_or_none()
        if row is None:
            raise AppError(
                409,
                "version_conflict",
                "the slot was changed by someone else; reload it",
                {"slot_id": slot_id},
            )
        return SlotView(**row._mapping)

    async def reset(self, user_id: int, slot_id: str) -> SlotView:
        """Clear the slot's configuration: it shows as free again, but keeps its id, its owner and so its ingest
        URL. Statistics are untouched (processing_log rows stay, and last_reset_at belongs to the statistics
        reset). A booth posting to it then gets 409 slot_not_configured. Jobs already queued keep the settings
        they were created with."""
        sql = text(
            f"""
            UPDATE slots SET name = '', provider_id = NULL, operation_id = NULL, settings_json = '{{}}'::jsonb,
                   failure_policy = 'error', version = version + 1, updated_at = now()
            WHERE id = :id AND user_id = :uid
            RETURNING {_SLOT_COLUMNS}
            """
        )
        async with self.engine.begin() as conn:
            row = (await conn.execute(sql, {"id": slot_id, "uid": user_id})).one_or_none()
        if row is None:
            # Another operator's slot is reported exactly like a missing one.
            raise AppError(404, "slot_not_found", "no such slot", {"slot_id": slot_id})
        return SlotView(**row._mapping)

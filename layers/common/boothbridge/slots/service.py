"""Slots in the database: listing an operator's slots, saving a slot's configuration (validated against the
catalog by `slots.rules`; the version and the named images checked here), and resetting it to unconfigured.

A slot's pipeline is stored in `steps` / `finishing` / `variants` / `variant_field` (see `slots.pipeline`); the
`provider_id` / `operation_id` / `settings_json` columns are kept equal to step 1's own call, so the listing's
filters and the statistics see a pipeline by its first step."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from boothbridge.catalog import Catalog
from boothbridge.errors import AppError
from boothbridge.slots.pipeline import slot_steps
from boothbridge.slots.rules import SlotUpdate, check_media_found, media_references, validate_update

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

# The images an operator may name in a slot (any `*_media_id` setting of a step, an alternative or a variant, and
# the finishing stage's overlay): live, and their own upload; or, for an upload from before owners were recorded
# (owner_id NULL), one that a slot of theirs already names anywhere (so an existing configuration can be saved
# again). Another operator's image is reported exactly like a missing one. `named` lists every settings object a
# slot holds; a value that is not an object (never stored so) is read as {} rather than failing the statement.
_USABLE_MEDIA = text(
    r"""
    SELECT m.id FROM media_objects m
    WHERE m.id = ANY(:ids) AND (m.expires_at IS NULL OR m.expires_at > now())
      AND (m.owner_id = CAST(:uid AS integer)
           OR (m.owner_id IS NULL AND EXISTS (
                SELECT 1 FROM slots s
                CROSS JOIN LATERAL (
                    SELECT s.settings_json AS o
                    UNION ALL SELECT st -> 'settings_json' FROM jsonb_array_elements(s.steps) st
                    UNION ALL SELECT a -> 'settings_json'
                              FROM jsonb_array_elements(s.steps) st,
                                   jsonb_array_elements(CASE jsonb_typeof(st -> 'alternatives')
                                                        WHEN 'array' THEN st -> 'alternatives' END) a
                    UNION ALL SELECT jsonb_build_object('overlay_media_id', s.finishing -> 'overlay_media_id')
                    UNION ALL SELECT o.value FROM jsonb_each(s.variants) v,
                                    jsonb_each(CASE jsonb_typeof(v.value) WHEN 'object' THEN v.value END) o
                ) named
                CROSS JOIN LATERAL jsonb_each_text(CASE jsonb_typeof(named.o) WHEN 'object' THEN named.o
                                                   ELSE '{}'::jsonb END) e
                WHERE s.user_id = CAST(:uid AS integer)
                  AND e.key LIKE '%\_media\_id' AND e.value = m.id::text)))
    """
)

_SLOT_COLUMNS = (
    "id, name, provider_id, operation_id, settings_json, steps, finishing, variants, variant_field, failure_policy,"
    " version, last_reset_at, updated_at"
)


@dataclass(frozen=True)
class SlotView:
    id: str
    name: str
    provider_id: str | None
    operation_id: str | None
    settings_json: dict[str, Any]
    steps: list[dict[str, Any]]  # as stored: [] for an unconfigured slot (see `pipeline_steps`)
    finishing: dict[str, Any]
    variants: dict[str, Any]
    variant_field: str | None
    failure_policy: str
    version: int
    last_reset_at: datetime | None
    updated_at: datetime

    @property
    def is_configured(self) -> bool:
        return bool(self.provider_id and self.operation_id)

    @property
    def pipeline_steps(self) -> list[dict[str, Any]]:
        """The slot's steps in the stored shape; a row with provider/operation but no steps is that one step;
        [] when unconfigured."""
        return slot_steps(self.steps, self.provider_id, self.operation_id, self.settings_json)


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
        validate_update(self.catalog, update, for_slot=True)

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
                   settings_json = :settings, steps = :steps, finishing = :finishing, variants = :variants,
                   variant_field = :variant_field, failure_policy = coalesce(:policy, failure_policy),
                   version = version + 1, updated_at = now()
            WHERE id = :id AND user_id = :uid AND (CAST(:version AS integer) IS NULL OR version = :version)
            RETURNING {_SLOT_COLUMNS}
            """
        ).bindparams(*(bindparam(name, type_=JSONB) for name in ("settings", "steps", "finishing", "variants")))
        steps = update.pipeline_steps
        first = steps[0]  # the columns mirror step 1's own call
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    sql,
                    {
                        "id": slot_id,
                        "uid": user_id,
                        "name": update.name,
                        "provider": first["provider_id"],
                        "operation": first["operation_id"],
                        "settings": first["settings_json"],
                        "steps": steps,
                        "finishing": update.finishing,
                        "variants": update.variants,
                        "variant_field": update.variant_field,
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
        """Clear the slot's configuration (steps, finishing, variants and variant field too): it shows as free
        again, but keeps its id, its owner and so its ingest URL. Statistics are untouched (processing_log rows
        stay, and last_reset_at belongs to the statistics reset). A booth posting to it then gets 409
        slot_not_configured. Jobs already queued keep the pipeline they were created with."""
        sql = text(
            f"""
            UPDATE slots SET name = '', provider_id = NULL, operation_id = NULL, settings_json = '{{}}'::jsonb,
                   steps = '[]'::jsonb, finishing = '{{}}'::jsonb, variants = '{{}}'::jsonb, variant_field = NULL,
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

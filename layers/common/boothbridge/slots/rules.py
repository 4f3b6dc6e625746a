"""Whether a slot update is valid against the catalog (pure: no database, no I/O).

What `SlotService` checks before it saves: the provider is known, it offers the operation, the settings match
the operation's JSON Schema (every violation reported at its field) and hold no NUL character, the failure
policy is one the booth understands. Every rule raises the `AppError` the operator API documents (all 422).
What needs the database (the slot's version, whether named images exist and are the operator's) stays in
`SlotService`; `media_references` tells it which images a valid update names.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from boothbridge.catalog import Catalog
from boothbridge.errors import AppError

FAILURE_POLICIES = ("error", "original")  # the slots table's CHECK constraint allows exactly these


@dataclass(frozen=True)
class SlotUpdate:
    """A slot's configuration as an operator saves it (`PUT /api/slots/{id}`, or a test run's unsaved form).
    `failure_policy` None keeps the stored one; `version` None skips the optimistic-concurrency check."""

    name: str
    provider_id: str
    operation_id: str
    settings_json: dict[str, Any]
    failure_policy: str | None = None
    version: int | None = None


def validate_update(catalog: Catalog, update: SlotUpdate) -> None:
    """Raise the first problem of `update`, checked in this order (the order decides which error an update
    with several problems gets):

    - 422 `unknown_provider` (`details.field` = `provider_id`, `details.value`);
    - 422 `unsupported_operation` (`details.field` = `operation_id`, `details.supported`: the provider's list);
    - 422 `invalid_settings`, `details.fields` = `[{field, message}]`: every JSON-Schema violation (`field` is
      the `/`-joined path, `""` for the object itself), or else every path that holds a NUL character;
    - 422 `invalid_failure_policy` when a policy is given and is not `error` or `original`.
    """
    provider = catalog.provider(update.provider_id)
    if provider is None:
        raise AppError(
            422,
            "unknown_provider",
            "no such provider",
            {"field": "provider_id", "value": update.provider_id},
        )
    if update.operation_id not in provider.operations:
        raise AppError(
            422,
            "unsupported_operation",
            f"provider {update.provider_id} has no operation {update.operation_id}",
            {"field": "operation_id", "supported": list(provider.operations)},
        )
    errors = catalog.validate_settings(update.operation_id, update.settings_json)
    if errors:
        raise _invalid_settings([{"field": e.path, "message": e.message} for e in errors])
    if nul := nul_paths(update.settings_json):
        # Checked after the schema: jsonb cannot store NUL, and the schema has nothing to say about it.
        raise _invalid_settings([{"field": path, "message": "must not contain NUL characters"} for path in nul])
    if update.failure_policy is not None and update.failure_policy not in FAILURE_POLICIES:
        raise AppError(422, "invalid_failure_policy", "failure_policy must be 'error' or 'original'")


def media_references(catalog: Catalog, update: SlotUpdate) -> dict[str, uuid.UUID]:
    """The stored images a valid `update` names: `{settings field: media id}` for each of its operation's
    `*_media_id` settings that is set (an empty or absent one names nothing). Call after `validate_update`:
    the schema gives those fields `format: uuid`, so each value parses (ValueError otherwise)."""
    operation = catalog.operation(update.operation_id)
    assert operation is not None, "validate_update checks the operation first"
    settings = update.settings_json
    return {f: uuid.UUID(str(settings[f])) for f in operation.media_fields() if settings.get(f)}


def check_media_found(references: dict[str, uuid.UUID], found: set[uuid.UUID]) -> None:
    """Raise 422 `media_not_found` (`details.fields` = `[{field, message}]`, in settings order) when any of
    `references` is not among `found` (the ids the database knows as usable by this operator)."""
    missing = [f for f, media_id in references.items() if media_id not in found]
    if missing:
        raise AppError(
            422,
            "media_not_found",
            "settings name images that are not stored (upload them first)",
            {"fields": [{"field": f, "message": "no such media object"} for f in missing]},
        )


def nul_paths(value: Any, path: str = "") -> list[str]:
    """Where `value` holds a NUL character (in a string or a key), as `/`-joined paths (list items by index):
    PostgreSQL's jsonb cannot store one."""
    if isinstance(value, str):
        return [path] if "\x00" in value else []
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    found = []
    for key, item in items:
        where = f"{path}/{key}" if path else str(key)
        found += [where] if "\x00" in str(key) else nul_paths(item, where)
    return found


def _invalid_settings(fields: list[dict[str, str]]) -> AppError:
    return AppError(
        422, "invalid_settings", "settings_json does not match the operation's settings_schema", {"fields": fields}
    )

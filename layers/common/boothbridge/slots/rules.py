"""Whether a slot update is valid against the catalog (pure: no database, no I/O).

What `SlotService` checks before it saves: the pipeline's limits (`pipeline.structure_problems`); for every step
and every alternative, the provider is known, it offers the operation, the operation makes an image (a video or
a record is for a machine client's task only), the settings match the operation's JSON
Schema (every violation reported at its field) and hold no NUL character; the finishing stage matches
`FINISHING_SCHEMA`; each variant's overrides, merged into a step's settings, still match the schema of the
step's own call and of each alternative (the keys its schema has); the failure policy is one the booth
understands. Every rule raises the `AppError` the operator API documents (all 422). What needs the database (the
slot's version, whether named images exist and are the operator's) stays in `SlotService`; `media_references`
tells it which images a valid update names.

Where a problem is reported (`details.field` / `details.fields[].field`): for a seed-003-shaped update (no
`steps`) the bare names as before pipelines (`provider_id`, `aspect_ratio`, `template_media_id`); with `steps`,
paths such as `steps/1/alternatives/0/settings_json/prompt`, `finishing/width`, `variants/winter/1/prompt`.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from boothbridge.catalog import IMAGE, MEDIA_FIELD_SUFFIX, Catalog
from boothbridge.errors import AppError
from boothbridge.providers.local.prompt_geometry import prompt_problems
from boothbridge.slots.guest import apply_override
from boothbridge.slots.pipeline import UNPAIRED_SURROGATE, SlotUpdate, invalid_pipeline, step_path, structure_problems

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

__all__ = [
    "FAILURE_POLICIES",
    "SlotUpdate",
    "check_media_found",
    "media_references",
    "nul_paths",
    "unstorable_paths",
    "validate_update",
]

FAILURE_POLICIES = ("error", "original")  # the slots table's CHECK constraint allows exactly these
_finishing_validator: list[Validator] = []  # built on first use (jsonschema is imported then)


def validate_update(catalog: Catalog, update: SlotUpdate, *, for_slot: bool = False) -> None:
    """Raise the first problem of `update`, checked in this order (the order decides which error an update
    with several problems gets). `for_slot`: the pipeline is a booth slot's (`SlotService`: a save, or a test run
    of an unsaved form), whose every call must make an image; a machine client's task (`boothbridge.tasks`) may
    also make a video or a record.

    - 422 `invalid_pipeline`, `details.fields` = `[{field, message}]`: the pipeline's limits;
    - then for each step in order, its own call then each alternative:
      422 `unknown_provider` (`details.field` = its `provider_id` path, `details.value`);
      422 `unsupported_operation` (`details.field` = its `operation_id` path, `details.supported`);
      422 `operation_not_for_slots` (`for_slot` only; `details.field` = its `operation_id` path,
      `details.produces` = `video` or `record`): the operation does not make an image (`Catalog.produces`);
      422 `invalid_settings`, `details.fields` = `[{field, message}]`: every JSON-Schema violation (`field` is
      the `/`-joined path, the settings object's own path for the object itself), or else every path that
      holds a NUL character;
    - 422 `invalid_finishing` (`details.fields`, paths under `finishing`): schema violations or NUL characters;
    - 422 `invalid_settings` at `variants/<name>/<step>/<setting>`: an override that breaks a schema or holds NUL;
    - 422 `invalid_failure_policy` when a policy is given and is not `error` or `original`.
    """
    if bad := unstorable_paths(update.name):
        raise AppError(
            400,
            "validation_error",
            "name cannot be stored",
            {"fields": [{"field": "name", "message": why} for _, why in bad]},
        )
    if problems := structure_problems(update):
        raise invalid_pipeline(problems)
    steps = update.pipeline_steps
    for index, step in enumerate(steps):
        for alternative, call in _calls(step):
            _check_call(catalog, update, index, alternative, call, for_slot)
    _check_finishing(update.finishing)
    for name, overrides in update.variants.items():
        for key, override in overrides.items():
            _check_override(catalog, f"variants/{name}/{key}", steps[int(key)], override)
    if update.failure_policy is not None and update.failure_policy not in FAILURE_POLICIES:
        raise AppError(422, "invalid_failure_policy", "failure_policy must be 'error' or 'original'")


def _calls(step: Mapping[str, Any]) -> Iterator[tuple[int | None, Mapping[str, Any]]]:
    """The step's own call (None) and its alternatives (0, 1, ...)."""
    yield None, step
    yield from enumerate(step["alternatives"])


def _check_call(
    catalog: Catalog, update: SlotUpdate, index: int, alternative: int | None, call: Mapping[str, Any], for_slot: bool
) -> None:
    provider_id, operation_id, settings = call["provider_id"], call["operation_id"], call["settings_json"]
    provider = catalog.provider(provider_id)
    if provider is None:
        field = step_path(update, index, alternative, "provider_id")
        raise AppError(422, "unknown_provider", "no such provider", {"field": field, "value": provider_id})
    if operation_id not in provider.operations:
        raise AppError(
            422,
            "unsupported_operation",
            f"provider {provider_id} has no operation {operation_id}",
            {"field": step_path(update, index, alternative, "operation_id"), "supported": list(provider.operations)},
        )
    if for_slot and (product := catalog.produces(provider_id, operation_id)) != IMAGE:
        raise AppError(
            422,
            "operation_not_for_slots",
            f"{provider_id}'s {operation_id} makes a {product}, not an image: a booth slot answers with an image",
            {"field": step_path(update, index, alternative, "operation_id"), "produces": product},
        )
    prefix = step_path(update, index, alternative, "settings_json") if update.steps else ""
    errors = _settings_problems(catalog, operation_id, settings)
    if errors:
        raise _invalid_settings([{"field": _join(prefix, path), "message": why} for path, why in errors])
    if bad := unstorable_paths(settings):
        # Checked after the schema: jsonb cannot store these, and the schema has nothing to say about them.
        raise _invalid_settings([{"field": _join(prefix, path), "message": why} for path, why in bad])


def _settings_problems(catalog: Catalog, operation_id: str, settings: Any) -> list[tuple[str, str]]:
    """(path, message) of every schema violation of `settings`, else of its geometry (`geometry_problems`)."""
    errors = catalog.validate_settings(operation_id, settings)
    if errors:
        return [(e.path, e.message) for e in errors]
    return geometry_problems(settings) if isinstance(settings, Mapping) else []


def geometry_problems(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(path, message) for the image coordinates (px) in schema-valid settings that fit no photo: a `bbox`
    [x_min, y_min, x_max, y_max] without area, or less than 1 px wide or high once clipped at 0 (e.g. wholly at
    negative coordinates), a point of `points` /
    `background_points` [[x, y], ...] at a negative coordinate. Such a step could only fail on every photo (the
    `local` smart_mask's `settings_invalid`), so it is refused when saved. A box past the photo's far edge, or a
    point beyond it, depends on the photo and is judged when it runs (a box is clipped to it; seed 002). The rules
    are the smart_mask's own, with the photo unknown (`providers.local.prompt_geometry`)."""
    return prompt_problems(settings, None)


def _check_finishing(finishing: Mapping[str, Any]) -> None:
    if not _finishing_validator:
        # Deferred: the finishing module (and jsonschema) load only when a slot is saved.
        from jsonschema import Draft202012Validator, FormatChecker

        from boothbridge.images.finishing import FINISHING_SCHEMA

        _finishing_validator.append(Draft202012Validator(FINISHING_SCHEMA, format_checker=FormatChecker()))
    found = sorted(_finishing_validator[0].iter_errors(finishing), key=lambda e: [str(p) for p in e.absolute_path])
    fields = [
        {"field": _join("finishing", "/".join(str(p) for p in e.absolute_path)), "message": e.message} for e in found
    ] or [{"field": _join("finishing", path), "message": why} for path, why in unstorable_paths(finishing)]
    if fields:
        raise AppError(422, "invalid_finishing", "finishing does not match the finishing schema", {"fields": fields})


def _check_override(catalog: Catalog, where: str, step: Mapping[str, Any], override: Mapping[str, Any]) -> None:
    """The override merged into the step's own settings must match its schema (every key of it); merged into an
    alternative's, with the keys that alternative's schema has, must match that one's."""
    if bad := unstorable_paths(override):
        raise _invalid_settings([{"field": _join(where, path), "message": why} for path, why in bad], _VARIANT)
    for alternative, call in _calls(step):
        operation = catalog.operation(call["operation_id"])
        assert operation is not None, "the steps were checked first"
        accepts = None if alternative is None else set(operation.settings_schema.get("properties", {}))
        merged = apply_override(call["settings_json"], override, accepts)
        errors = _settings_problems(catalog, call["operation_id"], merged)
        if errors:
            whose = "the step's own" if alternative is None else f"alternative {alternative}'s"
            fields = [
                {"field": _join(where, path), "message": f"{why} (with {whose} settings)"} for path, why in errors
            ]
            raise _invalid_settings(fields, _VARIANT)


def media_references(catalog: Catalog, update: SlotUpdate) -> dict[str, uuid.UUID]:
    """The stored images a valid `update` names: `{field path: media id}` for each `*_media_id` setting that is
    set (an empty or absent one names nothing) of every step and alternative (its operation's schema says which),
    of every variant override, and the finishing stage's `overlay_media_id`. Paths are reported as validation
    errors are. Call after `validate_update`: the schemas give those fields `format: uuid`, so each value parses
    (ValueError otherwise)."""
    found: dict[str, uuid.UUID] = {}
    for index, step in enumerate(update.pipeline_steps):
        for alternative, call in _calls(step):
            operation = catalog.operation(call["operation_id"])
            assert operation is not None, "validate_update checks the operation first"
            prefix = step_path(update, index, alternative, "settings_json") if update.steps else ""
            settings = call["settings_json"]
            found |= {
                _join(prefix, f): uuid.UUID(str(settings[f])) for f in operation.media_fields() if settings.get(f)
            }
    for name, overrides in update.variants.items():
        for key, override in overrides.items():
            found |= {
                f"variants/{name}/{key}/{f}": uuid.UUID(str(value))
                for f, value in override.items()
                if f.endswith(MEDIA_FIELD_SUFFIX) and value
            }
    if overlay := update.finishing.get("overlay_media_id"):
        found["finishing/overlay_media_id"] = uuid.UUID(str(overlay))
    return found


def check_media_found(references: dict[str, uuid.UUID], found: set[uuid.UUID]) -> None:
    """Raise 422 `media_not_found` (`details.fields` = `[{field, message}]`, in `references`' order) when any of
    `references` is not among `found` (the ids the database knows as usable by this operator)."""
    missing = [f for f, media_id in references.items() if media_id not in found]
    if missing:
        raise AppError(
            422,
            "media_not_found",
            "settings name images that are not stored (upload them first)",
            {"fields": [{"field": f, "message": "no such media object"} for f in missing]},
        )


def unstorable_paths(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Where `value` holds what PostgreSQL cannot store, as (`/`-joined path, why) (list items by index): a NUL
    character or an unpaired surrogate (a JSON escape such as `\\ud800`, which no UTF-8 text can hold) in a string
    or a key, or a number that is not finite (`NaN`, `Infinity`: JSON parsers accept them, jsonb does not)."""
    if isinstance(value, str):
        return [(path, why)] if (why := _text_problem(value)) else []
    if isinstance(value, float):
        return [] if math.isfinite(value) else [(path, _NONFINITE)]
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    found = []
    for key, item in items:
        where = f"{path}/{key}" if path else str(key)
        why = _text_problem(str(key))
        found += [(where, why)] if why else unstorable_paths(item, where)
    return found


def nul_paths(value: Any, path: str = "") -> list[str]:
    """The paths of `unstorable_paths` (NUL characters among them)."""
    return [where for where, _ in unstorable_paths(value, path)]


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return _NUL
    if UNPAIRED_SURROGATE.search(text):
        return _UNPAIRED
    return None


_NUL = "must not contain NUL characters"
_UNPAIRED = "must not contain unpaired surrogate characters"
_NONFINITE = "must be a finite number"
_SETTINGS = "settings_json does not match the operation's settings_schema"
_VARIANT = "a variant's overrides do not match the operation's settings_schema"


def _join(prefix: str, path: str) -> str:
    return f"{prefix}/{path}" if prefix and path else prefix or path


def _invalid_settings(fields: list[dict[str, str]], message: str = _SETTINGS) -> AppError:
    return AppError(422, "invalid_settings", message, {"fields": fields})

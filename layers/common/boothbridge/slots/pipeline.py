"""A slot as a pipeline (issue 14; SPEC §4): the configuration model, the API body in both shapes, and the job
pipeline snapshot ingest builds from a slot when a photo arrives. Pure: no database, no I/O.

A slot's pipeline, as stored (`slots.steps`, `finishing`, `variants`, `variant_field`) and as the API carries it:

    steps:         [{"provider_id", "operation_id", "settings_json",
                     "alternatives": [{"provider_id", "operation_id", "settings_json"}], "optional": bool}]
    finishing:     {"width", "height", "fit", "pad_color", "sharpen", "overlay_media_id", "format", "quality",
                    "max_bytes"}  (boothbridge.images.finishing; every field optional, {} = none)
    variants:      {"<name>": {"<step index, 0-based, as a string>": {<settings overrides>}}}
    variant_field: the booth form field that names the variant, or None

The seed-003 shape (`provider_id`, `operation_id`, `settings_json` only) is a one-step pipeline; the slot's
provider_id / operation_id / settings_json columns always mirror step 1 (listing filters, statistics).

Limits (422 `invalid_pipeline` beyond, see `structure_problems`): 1 to `MAX_STEPS` steps, at most
`MAX_ALTERNATIVES` alternatives a step, at most `MAX_VARIANTS` variants, variant names of 1 to 40 characters
from `[A-Za-z0-9_-]`, a variant field name of 1 to `MAX_VARIANT_FIELD` characters without control characters
(an empty one means none). `job_pipeline` applies the guest's choice (rules in `boothbridge.slots.guest`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from boothbridge.errors import AppError
from boothbridge.slots.guest import apply_override, booth_values, choose_variant, fill_prompts

if TYPE_CHECKING:
    from boothbridge.catalog import Catalog

MAX_STEPS = 8
MAX_ALTERNATIVES = 3
MAX_VARIANTS = 20
MAX_VARIANT_FIELD = 100
VARIANT_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")
STEP_KEY = re.compile(r"0|[1-9][0-9]{0,2}")  # a step index as variants name it: "0", "1", ... (no "01", no "-1")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# An unpaired surrogate (a JSON escape such as "\\ud800"): no UTF-8 text, so no PostgreSQL text, can hold one.
UNPAIRED_SURROGATE = re.compile("[\ud800-\udfff]")
_TOP_LEVEL = ("provider_id", "operation_id", "settings_json")


@dataclass(frozen=True)
class SlotUpdate:
    """A slot's configuration as an operator saves it (`PUT /api/slots/{id}`, or a test run's unsaved form).

    `failure_policy` None keeps the stored one; `version` None skips the optimistic-concurrency check.
    `steps` [] means the seed-003 shape: one step, `provider_id` / `operation_id` / `settings_json` (problems are
    then reported at those bare field names, as before pipelines). With `steps`, those three fields are step 1's
    (`parse_update` sets them so) and problems are reported at paths like `steps/1/settings_json/prompt`.
    Use `pipeline_steps` for the steps whatever the shape."""

    name: str
    provider_id: str
    operation_id: str
    settings_json: dict[str, Any]
    failure_policy: str | None = None
    version: int | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    finishing: dict[str, Any] = field(default_factory=dict)
    variants: dict[str, Any] = field(default_factory=dict)
    variant_field: str | None = None

    @property
    def pipeline_steps(self) -> list[dict[str, Any]]:
        """The steps in the stored shape (every key present); the seed-003 shape is one step."""
        if self.steps:
            return [normalize_step(step) for step in self.steps]
        return [one_step(self.provider_id, self.operation_id, self.settings_json)]


def one_step(provider_id: str, operation_id: str, settings_json: Any) -> dict[str, Any]:
    """The seed-003 shape as a step: no alternatives, not optional. Settings that are not an object are kept as
    they are (validation reports them); None is {}."""
    return {
        "provider_id": provider_id,
        "operation_id": operation_id,
        "settings_json": _settings(settings_json),
        "alternatives": [],
        "optional": False,
    }


def normalize_step(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A step with every key of the stored shape (absent alternatives: none; absent optional: False)."""
    step = one_step(str(raw["provider_id"]), str(raw["operation_id"]), raw.get("settings_json"))
    step["alternatives"] = [
        {
            "provider_id": str(alt["provider_id"]),
            "operation_id": str(alt["operation_id"]),
            "settings_json": _settings(alt.get("settings_json")),
        }
        for alt in raw.get("alternatives") or []
    ]
    step["optional"] = bool(raw.get("optional", False))
    return step


def _settings(value: Any) -> Any:
    if value is None:
        return {}
    return dict(value) if isinstance(value, Mapping) else value


def slot_steps(
    steps: Sequence[Mapping[str, Any]] | None,
    provider_id: str | None,
    operation_id: str | None,
    settings_json: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """A stored slot's steps: its `steps` column, or for a row with none (never configured, reset, or written
    before the migration carried it over) the one step its provider/operation columns name, or [] for an
    unconfigured slot."""
    if steps:
        return [normalize_step(step) for step in steps]
    if provider_id and operation_id:
        return [one_step(provider_id, operation_id, settings_json)]
    return []


def parse_update(body: Mapping[str, Any]) -> SlotUpdate:
    """A `PUT /api/slots/{id}` body (already shape-checked by its pydantic model; absent fields None) as an
    update. Either shape:

    - seed-003: `provider_id` and `operation_id` (and `settings_json`, default {}) = one step;
    - `steps`: then `steps` wins; the top-level `provider_id` / `operation_id` / `settings_json` must be absent
      (null) or equal to step 1's own, else 422 `invalid_pipeline` naming each that differs (a client that
      changed one of them and not the other would otherwise save something it did not mean).

    A body with neither `steps` nor both top-level ids is 400 `validation_error` at `provider_id` and/or
    `operation_id`. `variant_field` "" means none. Limits and catalog checks are `rules.validate_update`'s."""
    steps = body.get("steps")
    top = {key: body.get(key) for key in _TOP_LEVEL}
    if steps is None:
        missing = [key for key in ("provider_id", "operation_id") if not top[key]]
        if missing:
            raise AppError(
                400,
                "validation_error",
                "the request is not valid",
                {"fields": [{"field": key, "message": "Field required (or give steps)"} for key in missing]},
            )
        steps_list: list[dict[str, Any]] = []
        first = one_step(str(top["provider_id"]), str(top["operation_id"]), top["settings_json"])
    else:
        steps_list = [normalize_step(step) for step in steps]
        if not steps_list:
            raise invalid_pipeline([{"field": "steps", "message": "a slot needs at least one step"}])
        first = steps_list[0]
        differing = [key for key in _TOP_LEVEL if top[key] is not None and top[key] != first[key]]
        if differing:
            raise invalid_pipeline(
                [
                    {"field": key, "message": f"differs from steps/0/{key} (omit it or make it equal)"}
                    for key in differing
                ]
            )
    return SlotUpdate(
        name=str(body.get("name") or ""),
        provider_id=first["provider_id"],
        operation_id=first["operation_id"],
        settings_json=first["settings_json"],
        failure_policy=body.get("failure_policy"),
        version=body.get("version"),
        steps=steps_list,
        finishing=dict(body.get("finishing") or {}),
        variants=dict(body.get("variants") or {}),
        variant_field=body.get("variant_field") or None,
    )


def structure_problems(update: SlotUpdate) -> list[dict[str, str]]:
    """The limits `update` exceeds, as `[{field, message}]` (empty when within them): step and alternative
    counts, variant count and names, variant step indexes (each must name an existing step), overrides that are
    not objects, the variant field's length and characters."""
    steps = update.pipeline_steps
    problems = []
    if not 1 <= len(steps) <= MAX_STEPS:
        problems.append({"field": "steps", "message": f"a slot has 1 to {MAX_STEPS} steps"})
    for index, step in enumerate(steps):
        if len(step["alternatives"]) > MAX_ALTERNATIVES:
            where = f"steps/{index}/alternatives"
            problems.append({"field": where, "message": f"at most {MAX_ALTERNATIVES} alternatives a step"})
    if len(update.variants) > MAX_VARIANTS:
        problems.append({"field": "variants", "message": f"at most {MAX_VARIANTS} variants"})
    for name, overrides in update.variants.items():
        where = f"variants/{name}"
        if not VARIANT_NAME.fullmatch(name):
            problems.append({"field": where, "message": "a name of 1 to 40 letters, digits, '_' or '-'"})
            continue
        if not isinstance(overrides, Mapping):
            problems.append({"field": where, "message": "must be an object of step index: settings overrides"})
            continue
        for key, override in overrides.items():
            if not STEP_KEY.fullmatch(key) or int(key) >= len(steps):
                problems.append({"field": f"{where}/{key}", "message": f"no step {key} (0 to {len(steps) - 1})"})
            elif not isinstance(override, Mapping):
                problems.append({"field": f"{where}/{key}", "message": "must be an object of settings"})
    field_name = update.variant_field
    unstorable = field_name is not None and (_CONTROL.search(field_name) or UNPAIRED_SURROGATE.search(field_name))
    if field_name is not None and (not 1 <= len(field_name) <= MAX_VARIANT_FIELD or unstorable):
        message = f"a form field name of 1 to {MAX_VARIANT_FIELD} characters, no control characters"
        problems.append({"field": "variant_field", "message": message})
    return problems


def invalid_pipeline(fields: list[dict[str, str]]) -> AppError:
    """422 `invalid_pipeline`: the pipeline's structure is out of its limits (`details.fields` says where)."""
    return AppError(422, "invalid_pipeline", "the slot's pipeline is not valid", {"fields": fields})


def step_path(update: SlotUpdate, index: int, alternative: int | None, name: str) -> str:
    """Where a problem of step `index` (its own call, or its `alternative`-th) is reported: the bare `name` for
    the seed-003 shape, else `steps/<index>[/alternatives/<k>]/<name>`."""
    if not update.steps:
        return name
    where = f"steps/{index}" if alternative is None else f"steps/{index}/alternatives/{alternative}"
    return f"{where}/{name}" if name else where


def job_pipeline(
    steps: Sequence[Mapping[str, Any]],
    finishing: Mapping[str, Any] | None,
    variants: Mapping[str, Any] | None,
    *,
    variant: str | None,
    fields: Mapping[str, str],
    max_attempts: int,
    catalog: Catalog | None = None,
) -> dict[str, Any]:
    """The job pipeline snapshot (`jobs.pipeline`) of a slot's `steps` (at least one, stored shape),
    `finishing` and `variants` for one request:
    `{"steps": [{"provider_id", "operation_id", "settings_json", "alternatives": [...], "optional"}],
    "finishing": {...}, "max_attempts": max_attempts}`.

    - `variant` (the query parameter, else the slot's variant field; see `guest.choose_variant`): its overrides
      of step k are merged into step k's own settings and each alternative's (whatever runs the step gets the
      guest's choice); a call whose operation's schema lacks a key does not get it. Unknown or None: the
      slot's defaults, never an error.
    - `fields`: the booth's form fields, filling `{name}` placeholders in prompts only (`guest`'s rules: values
      capped, control characters removed, the password never used, the prompt cut to its schema's maxLength).
    - `catalog`: the schemas that say which keys a call accepts and how long its prompt may be. Without it an
      alternative gets only override keys its settings already have, or all when it runs the step's own
      operation (same schema, validated at save), and prompts are cut at `guest.DEFAULT_PROMPT_CHARS`.

    Raises ValueError for no steps (ingest builds one step from a slot's columns when its `steps` is empty)."""
    if not steps:
        raise ValueError("a pipeline has at least one step")
    all_variants = variants or {}
    chosen = choose_variant(all_variants, variant)
    overrides = all_variants.get(chosen) if chosen is not None else None
    values = booth_values(fields)
    planned = []
    for index, raw in enumerate(steps):
        step = normalize_step(raw)
        found = overrides.get(str(index)) if isinstance(overrides, Mapping) else None
        override: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        own_operation = step["operation_id"]
        calls = [step, *step["alternatives"]]
        for position, call in enumerate(calls):
            accepts = _accepted(catalog, call, own_operation if position else None, override)
            settings = apply_override(call["settings_json"], override, accepts)
            call["settings_json"] = fill_prompts(settings, values, _prompt_caps(catalog, call["operation_id"]))
        planned.append(step)
    return {"steps": planned, "finishing": dict(finishing or {}), "max_attempts": max_attempts}


def _accepted(
    catalog: Catalog | None, call: Mapping[str, Any], step_operation: str | None, override: Mapping[str, Any]
) -> Collection[str] | None:
    """The override keys `call` takes (None: all). `step_operation`: the step's own operation when `call` is an
    alternative, None for the step's own call."""
    operation = catalog.operation(call["operation_id"]) if catalog is not None else None
    if operation is not None:
        return set(operation.settings_schema.get("properties", {}))
    if step_operation is None or call["operation_id"] == step_operation:
        return None
    return [key for key in override if key in call["settings_json"]]


def _prompt_caps(catalog: Catalog | None, operation_id: str) -> dict[str, int]:
    operation = catalog.operation(operation_id) if catalog is not None else None
    properties = operation.settings_schema.get("properties", {}) if operation is not None else {}
    return {
        name: spec["maxLength"]
        for name, spec in properties.items()
        if isinstance(spec, Mapping) and isinstance(spec.get("maxLength"), int)
    }

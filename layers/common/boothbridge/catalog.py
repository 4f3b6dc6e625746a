"""The provider/operation catalog (`configs/providers.json`, seed-003 format) and slot-settings validation.

jsonschema is imported where schemas are checked (`Catalog.parse`) and settings validated (each operation's
validator is built on its first use), not with this module: the catalog's plain data is read on every cold start."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

MEDIA_FIELD_SUFFIX = "_media_id"

# What a provider's operation produces: an image, a video, or a record (no media: a fine-tune's id). Said by the
# operation's `provider_overrides.<provider>.output` (fal's wire kinds: `image`/`images`, `video`, `finetune`);
# without one, an image. A booth slot answers with an image, so only `image` operations may be a slot's steps;
# a machine client's task may use any (`slots.rules.validate_update`'s `for_slot`).
IMAGE, VIDEO, RECORD = "image", "video", "record"
PRODUCTS = (IMAGE, VIDEO, RECORD)
PRODUCT_OF_OUTPUT = {"image": IMAGE, "images": IMAGE, "video": VIDEO, "finetune": RECORD}
# Settings schemas already found valid against the JSON Schema meta-schema in this process (their canonical JSON):
# checking one costs milliseconds, and every container build (each Lambda cold start, each test) parses the
# catalog again — the check ran ~30 % of a test worker's time.
_CHECKED_SCHEMAS: set[str] = set()


@dataclass(frozen=True)
class IngestLimits:
    max_parallel_jobs: int
    timeout_sec: float
    allowed_mime: tuple[str, ...]
    max_file_size_mb: float
    requires_public_media: bool = False
    # How long one attempt typically takes, in seconds: an attempt (or a retry) is not started unless it can
    # end before the job's last useful moment (`JobRecord.last_useful_end`). 0 = only the start is checked.
    typical_sec: float = 0.0

    @property
    def max_file_size_bytes(self) -> int:
        return int(self.max_file_size_mb * 1024 * 1024)


@dataclass(frozen=True)
class ProviderEntry:
    id: str
    title: str
    ingest: IngestLimits
    operations: tuple[str, ...]
    description: str = ""
    pricing: dict[str, Any] = field(default_factory=dict)
    # Client-side quotas the adapter must honour (e.g. requests_per_minute), as the catalog states them.
    limits: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OperationEntry:
    id: str
    title: str
    description: str
    required_settings: tuple[str, ...]
    settings_schema: dict[str, Any]
    provider_overrides: dict[str, Any]

    def produces(self, provider_id: str) -> str:
        """What the operation makes when `provider_id` runs it: `image`, `video` or `record` (see `PRODUCTS`)."""
        override = self.provider_overrides.get(provider_id)
        output = override.get("output") if isinstance(override, dict) else None
        return PRODUCT_OF_OUTPUT[output] if output is not None else IMAGE

    def media_fields(self) -> list[str]:
        """Top-level settings that name a stored image (`*_media_id`): resolved to bytes for the provider."""
        props = self.settings_schema.get("properties", {})
        return [name for name in props if name.endswith(MEDIA_FIELD_SUFFIX)]


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str


class CatalogError(ValueError):
    """The catalog file is malformed (a deployment mistake: refuse to start)."""


class Catalog:
    """The parsed catalog. Immutable; built once per process."""

    def __init__(self, providers: dict[str, ProviderEntry], operations: dict[str, OperationEntry]) -> None:
        self.providers = providers
        self.operations = operations
        self._validators: dict[str, Validator] = {}

    @classmethod
    def load(cls, path: Path) -> Catalog:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CatalogError(f"cannot read provider catalog {path}: {exc}") from exc
        return cls.parse(raw)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Catalog:
        try:
            operations = {
                op_id: OperationEntry(
                    id=op_id,
                    title=op["title"],
                    description=op.get("description", ""),
                    required_settings=tuple(op.get("required_settings", [])),
                    settings_schema=op["settings_schema"],
                    provider_overrides=op.get("provider_overrides", {}),
                )
                for op_id, op in raw["operations"].items()
            }
            providers = {}
            for p in raw["providers"]:
                ing = p["ingest"]
                providers[p["id"]] = ProviderEntry(
                    id=p["id"],
                    title=p["title"],
                    description=p.get("description", ""),
                    ingest=IngestLimits(
                        max_parallel_jobs=int(ing["max_parallel_jobs"]),
                        timeout_sec=float(ing["timeout_sec"]),
                        allowed_mime=tuple(ing["allowed_mime"]),
                        max_file_size_mb=float(ing["max_file_size_mb"]),
                        requires_public_media=bool(ing.get("requires_public_media", False)),
                        typical_sec=float(ing.get("typical_sec", 0.0)),
                    ),
                    operations=tuple(p["operations"]),
                    pricing=p.get("pricing", {}),
                    limits=p.get("limits", {}),
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise CatalogError(f"malformed provider catalog: {exc!r}") from exc
        for provider in providers.values():
            missing = [op for op in provider.operations if op not in operations]
            if missing:
                raise CatalogError(f"provider {provider.id} lists unknown operations {missing}")
        for op in operations.values():
            for provider_id, override in op.provider_overrides.items():
                output = override.get("output") if isinstance(override, dict) else None
                if output is not None and output not in PRODUCT_OF_OUTPUT:
                    raise CatalogError(
                        f"operation {op.id}: {provider_id}'s output {output!r} is not one of "
                        f"{sorted(PRODUCT_OF_OUTPUT)}"
                    )
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        for op in operations.values():
            key = json.dumps(op.settings_schema, sort_keys=True)
            if key in _CHECKED_SCHEMAS:
                continue
            try:
                Draft202012Validator.check_schema(op.settings_schema)
            except SchemaError as exc:
                raise CatalogError(f"operation {op.id} has an invalid settings_schema: {exc.message}") from exc
            _CHECKED_SCHEMAS.add(key)
        return cls(providers, operations)

    def provider(self, provider_id: str) -> ProviderEntry | None:
        return self.providers.get(provider_id)

    def typical_sec(self, provider_id: str) -> float:
        """How long one call of the provider usually takes (its `ingest.typical_sec`; 0 when unknown), s."""
        entry = self.providers.get(provider_id)
        return entry.ingest.typical_sec if entry is not None else 0.0

    def operation(self, operation_id: str) -> OperationEntry | None:
        return self.operations.get(operation_id)

    def currency_of(self, provider_id: str) -> str | None:
        """The currency of the provider's prices (and so of its jobs' costs), None for an unknown provider."""
        provider = self.providers.get(provider_id)
        currency = provider.pricing.get("currency") if provider else None
        return str(currency) if currency else None

    def produces(self, provider_id: str, operation_id: str) -> str:
        """What `operation_id` makes when `provider_id` runs it (`image`, `video`, `record`). Raises KeyError for
        an operation the catalog does not have."""
        return self.operations[operation_id].produces(provider_id)

    def supports(self, provider_id: str, operation_id: str) -> bool:
        provider = self.providers.get(provider_id)
        return provider is not None and operation_id in provider.operations

    def validate_settings(self, operation_id: str, settings: Any) -> list[FieldError]:
        """All JSON-Schema violations of `settings` against the operation's `settings_schema`. Raises KeyError for
        an operation the catalog does not have."""
        validator = self._validators.get(operation_id)
        if validator is None:
            from jsonschema import Draft202012Validator, FormatChecker

            schema = self.operations[operation_id].settings_schema
            validator = self._validators[operation_id] = Draft202012Validator(schema, format_checker=FormatChecker())
        errors = []
        for err in sorted(validator.iter_errors(settings), key=lambda e: list(e.absolute_path)):
            path = "/".join(str(p) for p in err.absolute_path)
            errors.append(FieldError(path=path or "", message=err.message))
        return errors

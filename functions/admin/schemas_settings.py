"""The settings page's bodies: the update (each keyed provider's API key field comes from its declaration, so the
request model validates those fields per process, and the OpenAPI document lists the layer's), and the view.
The conventions are `schemas.py`'s."""

from functools import cache
from typing import Any, Literal

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from boothbridge.providers.declaration import KEY_PATTERN, ApiKeySpec
from functions.admin.schemas import Answer


def _document_key_fields(schema: dict[str, Any]) -> None:
    """The layer's keyed providers' fields in the OpenAPI document (built when the document is, not at import)."""
    from boothbridge.providers.discovery import packaged_all  # with the document too: it walks the packages

    for declaration in packaged_all():
        if declaration.api_key is not None:
            schema.setdefault("properties", {})[declaration.api_key.field] = _key_schema(declaration.api_key)


def _key_schema(spec: ApiKeySpec) -> dict[str, Any]:
    text = {"type": "string", "maxLength": spec.max_length, "pattern": KEY_PATTERN}
    return {"anyOf": [text, {"type": "null"}], "title": spec.label, "description": spec.help or spec.label}


class SettingsUpdate(BaseModel):
    """Only the fields present change. Each keyed provider's API key field (`gemini_api_key`, ...: GET's
    `key_fields` lists them) takes one key, or several comma-separated where allowed; "" removes the stored key
    (the environment's applies). Other unknown fields are ignored."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_document_key_fields)

    ingest_password: str | None = Field(default=None, min_length=6, max_length=200)
    # At most boothbridge.settings.MAX_T_SYNC_SEC (not imported: the operator API leaves pydantic-settings to the
    # requests that need it; a unit test holds the two equal).
    t_sync_response: float | None = Field(default=None, ge=5, le=120, description="seconds, 5 to 120")
    result_ttl_sec: int | None = Field(default=None, ge=60, le=30 * 24 * 3600)


@cache
def _keys_model(specs: tuple[ApiKeySpec, ...]) -> type[BaseModel]:
    """A model validating the key fields of these providers (one per set of keyed providers, i.e. per process)."""
    fields: dict[str, Any] = {
        spec.field: (str | None, Field(default=None, max_length=spec.max_length, pattern=KEY_PATTERN)) for spec in specs
    }
    return create_model("ProviderKeysUpdate", **fields)


def provider_keys(body: SettingsUpdate, keyed: dict[str, ApiKeySpec]) -> dict[str, str]:
    """The key fields present in `body` (`keyed`: provider id -> its key spec), by provider id.

    Raises RequestValidationError (400 `validation_error`, field by field) for a value that is not a key."""
    given = {
        spec.field: (body.model_extra or {})[spec.field]
        for spec in keyed.values()
        if spec.field in (body.model_extra or {})
    }
    try:
        checked = _keys_model(tuple(keyed.values())).model_validate(given)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
    return {p: getattr(checked, spec.field) for p, spec in keyed.items() if getattr(checked, spec.field) is not None}


class KeyState(Answer):
    configured: bool
    source: Literal["settings", "environment", "none"]
    masked: list[str] = Field(description="the keys in effect, masked (first and last four characters)")


class KeyField(Answer):
    """How the settings page asks for one provider's keys."""

    provider: str
    env: str = Field(description="the environment variable that gives the keys when none is saved here")
    field: str = Field(description="this provider's field in PUT /api/settings")
    label: str
    help: str
    several: bool = Field(description="several keys may be given, comma-separated")
    max_length: int


class SettingsView(Answer):
    t_sync_response: float
    result_ttl_sec: int
    provider_keys: dict[str, KeyState] = Field(description="by provider id, for every provider that takes API keys")
    key_fields: list[KeyField]


class ClearedCache(Answer):
    deleted: int = Field(description="results deleted")

"""OpenAPI for the uniform errors: the `ErrorBody` schema, each route's documented error responses, and the
app-wide fix-ups (our validation handler answers 400 `validation_error`, never FastAPI's default 422).

A route lists the errors it can really return as `"STATUS code"` strings:

    @router.get("/api/slots/{slot_id}", responses=errors(*AUTH, "404 slot_not_found"))

Each status becomes one response referencing `ErrorBody`; its description names the codes, which are also kept
machine-readable in the response's `x-error-codes` (tests check every error answered against them). The reference
is a plain `$ref` (the document gets the schema once, from `install_openapi`), not FastAPI's `model`: for a
`model` FastAPI builds a pydantic serializer per status per route when the route is declared, which the
operator API's cold import paid some 20 ms for (issue 13), for a document read far less often.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

# The bearer-protected routes: no token, or a token that is invalid or expired.
AUTH = ("401 unauthorized", "401 invalid_token", "401 session_ended")
# A body, query or form that does not match the route's declared shape (`details.fields` says where).
INVALID = "400 validation_error"
# A route with a body: also a body that cannot be parsed at all (not UTF-8 JSON, a broken multipart form).
BODY = (INVALID, "400 bad_request")
# What running a photo through the pipeline can answer (booth ingest and an operator's slot test run alike).
PHOTO = (
    "400 file_missing",
    "400 file_empty",
    "404 slot_not_found",
    "409 slot_not_configured",
    "413 file_too_large",
    "415 unsupported_media_type",
    "422 image_undecodable",
    "422 image_too_many_pixels",
)
PIPELINE = (
    "502 provider_failed",
    "502 job_cancelled",
    "503 provider_backlog_full",
    "503 busy",
    "504 processing_timeout",
)

# Response headers that always come with a code.
_CODE_HEADERS: dict[str, dict[str, str]] = {
    "unauthorized": {"WWW-Authenticate": "`Bearer`"},
    "invalid_token": {"WWW-Authenticate": "`Bearer`"},
    "invalid_api_key": {"WWW-Authenticate": "`Bearer`"},
    "rate_limited": {"Retry-After": "seconds until the API key's next request is admitted"},
    "too_many_attempts": {"Retry-After": "seconds until a sign-in is admitted again"},
    "provider_backlog_full": {"Retry-After": "seconds to wait before posting again"},
    "busy": {"Retry-After": "seconds to wait before posting again"},
}
_HEADER_TYPES = {"Retry-After": "integer", "X-Processing-Ms": "integer"}
ERROR_CODES_KEY = "x-error-codes"
_COMPONENTS = "#/components/schemas/"
_DEFAULT_422_SCHEMAS = ("HTTPValidationError", "ValidationError")


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, machine-readable (the README lists them)", examples=["slot_not_found"])
    message: str = Field(description="for people; never carries secrets", examples=["no such slot"])
    details: dict[str, Any] = Field(
        default_factory=dict, description="code-specific facts, e.g. `fields` for validation errors"
    )


class ErrorBody(BaseModel):
    """Every error answer: `{"error": {"code", "message", "details"}}`."""

    error: ErrorDetail


def header_docs(headers: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """OpenAPI header objects from `{name: description}`."""
    return {
        name: {"description": text, "schema": {"type": _HEADER_TYPES.get(name, "string")}}
        for name, text in headers.items()
    }


def errors(*codes: str, headers: Mapping[str, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """A FastAPI `responses=` dict for the given `"STATUS code"` errors, one entry per status.

    `headers` (`{name: description}`) are documented on every listed status, on top of those a code implies
    (`Retry-After`, `WWW-Authenticate`)."""
    by_status: dict[int, list[str]] = {}
    for entry in codes:
        status_text, _, code = entry.partition(" ")
        if not status_text.isdigit() or not code or " " in code:
            raise ValueError(f"expected 'STATUS code', got {entry!r}")
        listed = by_status.setdefault(int(status_text), [])
        if code not in listed:
            listed.append(code)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, listed in sorted(by_status.items()):
        names = ", ".join(f"`{code}`" for code in listed)
        response: dict[str, Any] = {
            "description": f"{HTTPStatus(status).phrase}; codes: {names}",
            "content": {"application/json": {"schema": {"$ref": f"{_COMPONENTS}ErrorBody"}}},
            ERROR_CODES_KEY: listed,
        }
        implied = {name: text for code in listed for name, text in _CODE_HEADERS.get(code, {}).items()}
        implied.update(headers or {})
        if implied:
            response["headers"] = header_docs(implied)
        responses[status] = response
    return responses


def merge(*parts: Mapping[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """Several `responses=` dicts as one (a later entry for the same status replaces an earlier one)."""
    out: dict[int | str, dict[str, Any]] = {}
    for part in parts:
        out.update(part)
    return out


def strip_default_validation(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop FastAPI's generated 422 `HTTPValidationError` responses (our handler answers 400 instead, which the
    routes document) and those schemas once nothing refers to them. Mutates and returns `schema`."""
    default_ref = "#/components/schemas/HTTPValidationError"
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            responses = operation.get("responses", {})
            response = responses.get("422")
            if response and response.get("content", {}).get("application/json", {}).get("schema") == {
                "$ref": default_ref
            }:
                del responses["422"]
    components = schema.get("components", {}).get("schemas", {})
    kept = {k: v for k, v in schema.items() if k != "components"}
    kept["schemas"] = {k: v for k, v in components.items() if k not in _DEFAULT_422_SCHEMAS}
    used = _refs(kept)
    for name in _DEFAULT_422_SCHEMAS:
        if f"#/components/schemas/{name}" not in used:
            components.pop(name, None)
    return schema


def plain_multipart_files(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional file part (`UploadFile | None`) is generated as `anyOf: [file, null]`, but a multipart part is
    never JSON null: it is there or not. Document it as the file it is (and not required). Mutates `schema`."""
    components = schema.get("components", {}).get("schemas", {})
    prefix = "#/components/schemas/"
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            content = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data", {})
            ref = content.get("schema", {}).get("$ref", "")
            body = components.get(ref.removeprefix(prefix), {}) if ref.startswith(prefix) else content.get("schema")
            for name, prop in (body or {}).get("properties", {}).items():
                options = prop.get("anyOf", [])
                files = [o for o in options if o.get("contentMediaType") == "application/octet-stream"]
                if len(options) == 2 and len(files) == 1 and {"type": "null"} in options:
                    rest = {k: v for k, v in prop.items() if k != "anyOf"}
                    body["properties"][name] = {**files[0], **rest}
    return schema


def _refs(node: Any) -> set[str]:
    """Every `$ref` target under `node`."""
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node)) if node else set()
    return set()


def with_error_body(schema: dict[str, Any]) -> dict[str, Any]:
    """`ErrorBody` (and `ErrorDetail`) among the document's component schemas, where `errors()` responses refer to
    them; the components stay sorted by name, as FastAPI writes them. Mutates and returns `schema`."""
    body = ErrorBody.model_json_schema(ref_template=_COMPONENTS + "{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(body.pop("$defs", {}), ErrorBody=body)
    schema["components"]["schemas"] = dict(sorted(components.items()))
    return schema


def install_openapi(app: FastAPI) -> None:
    """FastAPI's document (generated once and cached, as FastAPI does), with the fix-ups above."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = plain_multipart_files(strip_default_validation(with_error_body(generate())))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

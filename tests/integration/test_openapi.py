"""The operator API's OpenAPI document: complete (every error documented with the uniform `ErrorBody`, the bearer
scheme on protected routes, no FastAPI 422 that the app never sends) and true to the app: schemathesis generates
requests from it, and the real app must answer each without a 5xx, with a documented status, content type, body
shape and error code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from openapi_spec_validator import validate
from schemathesis import Case, GenerationMode, Response
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from boothbridge.http.openapi import ERROR_CODES_KEY
from boothbridge.settings import Settings
from local.app import Emulator
from tests.support.booth import credentials, jpeg, png

ERROR_REF = "#/components/schemas/ErrorBody"
# A stream may stay open for minutes: fuzzing it would only wait. Its errors are the same as GET /api/jobs/{id}.
# The event stream waits for a job to end; logout takes no input and would end the run's own session (both are
# covered by their own tests: test_jobs_api, test_logout).
NOT_FUZZED = {("GET", "/api/jobs/{job_id}/events"), ("POST", "/api/logout")}
# Per operation and generation mode (24 operations, 12 of them with input): about 25 s on two cores.
MAX_EXAMPLES = 25


async def _document(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/api/openapi.json")
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in {"get", "put", "post", "patch", "delete"}:
                yield method.upper(), path, operation


async def test_the_document_is_valid_openapi_3_1(client: httpx.AsyncClient) -> None:
    doc = await _document(client)
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # raises on any violation of the OpenAPI 3.1 schema
    assert doc["components"]["securitySchemes"] == {"HTTPBearer": {"type": "http", "scheme": "bearer"}}
    error = doc["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["error"]
    detail_ref = error["properties"]["error"]["$ref"].rsplit("/", 1)[-1]
    assert set(doc["components"]["schemas"][detail_ref]["properties"]) == {"code", "message", "details"}
    # FastAPI's own 422 shape is never sent (validation answers 400 `validation_error`): gone from the document.
    assert "HTTPValidationError" not in doc["components"]["schemas"]


async def test_every_operation_documents_its_errors(client: httpx.AsyncClient) -> None:
    doc = await _document(client)
    operations = list(_operations(doc))
    assert len(operations) >= 24
    secured = set()
    for method, path, operation in operations:
        where = f"{method} {path}"
        responses: dict[str, Any] = operation["responses"]
        assert "422" not in responses or ERROR_CODES_KEY in responses["422"], f"{where}: FastAPI's default 422"
        if operation.get("security"):
            secured.add(path)
            assert operation["security"] == [{"HTTPBearer": []}], where
            assert set(responses["401"][ERROR_CODES_KEY]) >= {"unauthorized", "invalid_token"}, where
            assert "WWW-Authenticate" in responses["401"]["headers"], where
        takes_input = "requestBody" in operation or bool(operation.get("parameters"))
        if takes_input:
            assert "validation_error" in responses.get("400", {}).get(ERROR_CODES_KEY, []), f"{where}: no 400"
        for status, response in responses.items():
            if status.startswith(("4", "5")) and not (path == "/health" and status == "503"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, f"{where} {status}"
                codes = response[ERROR_CODES_KEY]
                assert codes and all(f"`{code}`" in response["description"] for code in codes), f"{where} {status}"
    assert {"/api/providers", "/api/slots", "/api/jobs", "/api/settings", "/api/media/register"} <= secured
    assert not {"/api/login", "/health", "/metrics", "/public/media/{media_id}"} & secured
    # The booth's answer is an image, and the stored media are served as images.
    served = doc["paths"]["/public/media/{media_id}"]["get"]["responses"]["200"]["content"]
    assert set(served) == {"image/jpeg", "image/png", "image/webp"}


def test_the_ingest_document_describes_the_image_answer() -> None:
    from functions.ingest.app import create_app

    app = create_app(Settings(_env_file=None))
    doc = app.openapi()
    validate(doc)
    responses = doc["paths"]["/ingest/{slot_id}"]["post"]["responses"]
    assert set(responses["200"]["content"]) == {"image/jpeg", "image/png", "image/webp"}
    assert {"X-Job-Id", "X-Processing-Ms", "X-Fallback"} <= set(responses["200"]["headers"])
    assert "422" in responses and responses["422"][ERROR_CODES_KEY] == ["image_undecodable", "image_too_many_pixels"]
    assert responses["504"][ERROR_CODES_KEY] == ["processing_timeout"]
    assert "HTTPValidationError" not in doc.get("components", {}).get("schemas", {})


def test_every_json_success_body_has_a_model() -> None:
    """Every success answer of the operator API is documented: a JSON body by a named model with its fields
    (what schemathesis then checks the real answers against), anything else by its media type; only a 204 has
    no body."""
    from functions.admin.app import create_app

    doc = create_app(Settings(_env_file=None)).openapi()
    schemas = doc["components"]["schemas"]
    prefix = "#/components/schemas/"
    operations = {(method, path): operation for method, path, operation in _operations(doc)}
    checked = 0
    for (method, path), operation in operations.items():
        successes = {status: r for status, r in operation["responses"].items() if status.startswith("2")}
        assert successes, f"{method} {path}: no success response"
        for status, response in successes.items():
            where = f"{method} {path} {status}"
            content = response.get("content", {})
            assert content or status == "204", f"{where}: no body documented"
            if "application/json" not in content:
                continue
            ref = content["application/json"].get("schema", {}).get("$ref", "")
            assert ref.startswith(prefix), f"{where}: the JSON body has no model"
            assert schemas[ref.removeprefix(prefix)].get("properties"), f"{where}: the model has no fields"
            checked += 1
    assert checked >= 21  # every JSON success body of functions/admin/routes/ (a 503 /health is an error status)


# ---- schemathesis ---------------------------------------------------------------------------------------------


def documented_error_code(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """An error's `code` is one of those its operation documents for that status."""
    if response.status_code < 400 or (case.operation.path == "/health" and response.status_code == 503):
        return None
    documented = case.operation.definition.raw["responses"].get(str(response.status_code), {})
    body = response.json()
    code = body["error"]["code"]
    allowed = documented.get(ERROR_CODES_KEY, [])
    assert code in allowed, f"{case.operation.label} answered {response.status_code} {code!r}; documented: {allowed}"
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    documented_error_code,
]


@pytest.fixture
def fuzzed_schema(settings: Settings, tmp_path: Path) -> Iterator[schemathesis.BaseSchema]:
    """The operator API's schema, bound to a whole emulator (worker included) that schemathesis runs in-process
    (ASGI): its lifespan builds the container on schemathesis's own event loop thread, where every generated
    request is served."""
    set_hypothesis_home_dir(tmp_path / "hypothesis")  # its caches, not a .hypothesis/ in the work tree
    try:
        yield schemathesis.openapi.from_asgi("/api/openapi.json", Emulator(settings))
    finally:
        shutdown_lifespans()  # stops the emulator: worker, container and database connections
        set_hypothesis_home_dir(None)


def _sign_in(schema: schemathesis.BaseSchema, settings: Settings) -> dict[str, str]:
    """A token for serg, taken before the run (the run's failed sign-ins may throttle the name later)."""
    password = credentials(settings.credentials_path)["users"]["serg"]
    r = schema["/api/login"]["POST"].Case(body={"username": "serg", "password": password}).call()
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _configure_sleepy(schema: schemathesis.BaseSchema, auth: dict[str, str], slot_id: str) -> None:
    body: Any = {"name": "sleepy", "provider_id": "sleepy", "operation_id": "echo", "settings_json": {}}
    put = schema["/api/slots/{slot_id}"]["PUT"].Case(path_parameters={"slot_id": slot_id}, body=body)
    r = put.call(headers=auth)
    assert r.status_code == 200, r.text


def _known_ids(schema: schemathesis.BaseSchema, auth: dict[str, str]) -> dict[str, list[str]]:
    """Path parameter values that exist, so that generated requests also get past the 404s: two of serg's slots
    (one configured with the sleepy provider), a finished test-run job, its result and an uploaded template."""
    r = schema["/api/slots"]["GET"].Case().call(headers=auth)
    assert r.status_code == 200, r.text
    free_slot, sleepy_slot = (slot["id"] for slot in r.json()["data"][:2])
    _configure_sleepy(schema, auth, sleepy_slot)
    photo: Any = {"file": jpeg(64, 48)}  # multipart: bytes become a file part
    run = schema["/api/slots/{slot_id}/test"]["POST"].Case(
        path_parameters={"slot_id": sleepy_slot}, body=photo, media_type="multipart/form-data"
    )
    r = run.call(headers=auth)
    assert r.status_code == 200, r.text
    job_id, result_url = r.json()["job_id"], r.json()["result_url"]
    template_form: Any = {"file": png(16, 16), "purpose": "template"}
    upload = schema["/api/media/register"]["POST"].Case(body=template_form, media_type="multipart/form-data")
    r = upload.call(headers=auth)
    assert r.status_code == 200, r.text
    template = r.json()
    return {
        "slot_id": [free_slot, sleepy_slot],
        "job_id": [job_id],
        "media_id": [result_url.rsplit("/", 1)[-1], template["id"]],
        "sha256": [template["sha256"]],
    }


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    fuzzed_schema: schemathesis.BaseSchema, settings: Settings
) -> None:
    schema = fuzzed_schema
    auth = _sign_in(schema, settings)
    known = _known_ids(schema, auth)

    failures: list[str] = []
    fuzzed = 0
    for operation in (operation for path in schema for operation in schema[path].values()):
        if (operation.method.upper(), operation.path) in NOT_FUZZED:
            continue
        _configure_sleepy(schema, auth, known["slot_id"][1])  # again: an earlier operation may have reset it
        has_input = bool(len(operation.query) or len(operation.body))
        modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if has_input else [GenerationMode.POSITIVE]
        for mode in modes:
            strategies = [operation.as_strategy(mode)]
            for param in operation.path_parameters:
                for value in known.get(param.name, []):
                    strategies.append(operation.as_strategy(mode, path_parameters={param.name: value}))

            @given(case=st.one_of(strategies))
            @hypothesis_settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate, Phase.shrink],
                suppress_health_check=list(HealthCheck),
                print_blob=False,
            )
            def run(case: Case) -> None:
                case.call_and_validate(headers=auth, checks=CHECKS)

            try:
                run()
            except Exception as exc:
                failures.append(f"{operation.label} ({mode.value}): {exc}")
            fuzzed += 1

    # The event stream, not fuzzed: a finished job's stream ends at once; an unknown job is a JSON 404.
    events = schema["/api/jobs/{job_id}/events"]["GET"]
    for job_id in [*known["job_id"], "00000000-0000-4000-8000-000000000000"]:
        try:
            events.Case(path_parameters={"job_id": job_id}).call_and_validate(headers=auth, checks=CHECKS)
        except Exception as exc:
            failures.append(f"{events.label} ({job_id}): {exc}")
    assert fuzzed >= 30
    assert not failures, "\n\n".join(failures)

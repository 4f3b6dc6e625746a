"""Slot test run: an operator runs one of their slots on an uploaded photo, through the booth's own pipeline."""
# No `from __future__ import annotations`: FastAPI must resolve the dependency annotations defined in the factory.

import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from boothbridge.accounts.sign_in import Operator
from boothbridge.bootstrap import Container
from boothbridge.errors import AppError
from boothbridge.http.multipart import BodyTimeoutRoute
from boothbridge.http.openapi import AUTH, BODY, PHOTO, PIPELINE, errors, header_docs, merge
from boothbridge.ingest.model import IngestOutcome, UploadedForm
from boothbridge.jobs.status import JobStatus
from boothbridge.slots.service import SlotService, SlotUpdate

_RUN_HEADERS = {"X-Processing-Ms": "how long the run took", "X-Job-Id": "the job, once one was queued"}


class TestConfig(BaseModel):
    """An unsaved configuration to test (the slot page's current form)."""

    provider_id: str = Field(min_length=1, max_length=100)
    operation_id: str = Field(min_length=1, max_length=100)
    settings_json: dict[str, Any] = Field(default_factory=dict)


def _parse_config(raw: str) -> TestConfig:
    try:
        return TestConfig.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        fields = (
            [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
            if isinstance(exc, ValidationError)
            else [{"field": "config", "message": "not valid JSON"}]
        )
        raise AppError(
            400, "validation_error", "config is not a valid slot configuration", {"fields": fields}
        ) from None


def slot_test_router(get_container: Any, operator_dep: Any) -> APIRouter:
    router = APIRouter(tags=["slots"], route_class=BodyTimeoutRoute)  # a stalled test-photo upload: 408
    OperatorDep = Annotated[Operator, Depends(operator_dep)]

    @router.post(
        "/api/slots/{slot_id}/test",
        response_model=None,
        responses=merge(
            {200: {"description": "the job and a link to its result", "headers": header_docs(_RUN_HEADERS)}},
            errors(
                *AUTH,
                *BODY,
                *PHOTO,
                *PIPELINE,
                "422 unknown_provider",
                "422 unsupported_operation",
                "422 invalid_settings",
                "422 media_not_found",
                "503 test_run_unavailable",
                headers=_RUN_HEADERS,
            ),
        ),
    )
    async def test_slot(
        slot_id: str,
        operator: OperatorDep,
        file: Annotated[UploadFile | None, File(description="the test photo (JPEG, PNG or WebP)")] = None,
        config: Annotated[
            str | None,
            Form(
                max_length=200_000,
                description="optional JSON {provider_id, operation_id, settings_json}: test this unsaved "
                "configuration instead of the saved one (validated exactly as a save)",
            ),
        ] = None,
    ) -> JSONResponse:
        """Run the slot on a test photo exactly as a booth post would run (validation, queue, worker, provider,
        waiting up to T_sync_response), without the ingest password. The job and its log row are marked as a
        test: never matched with booth jobs, never counted in booth statistics. Answers the job and a public
        link to the result; errors as for ingest (502 provider failure, 504 with the job id on timeout)."""
        started = time.monotonic()
        c: Container = await get_container()
        slots = SlotService(c.engine, c.catalog)
        current = await slots.get(operator.id, slot_id)  # 404 for a missing or foreign slot
        override = None
        if config is not None:
            wanted = _parse_config(config)
            override = SlotUpdate(current.name, wanted.provider_id, wanted.operation_id, wanted.settings_json)
            await slots.check(override)
        if c.hub is None:
            raise AppError(
                503, "test_run_unavailable", "this deployment's operator API cannot wait for jobs (no LISTEN hub)"
            )

        async def read_form(max_bytes: int) -> UploadedForm:
            if file is None:
                return UploadedForm(file=None, filename=None, declared_type=None, fields={})
            data = await file.read(max_bytes + 1)  # one byte more than allowed is enough to refuse it
            return UploadedForm(file=data, filename=file.filename, declared_type=file.content_type, fields={})

        outcome = await c.ingest.process(slot_id, read_form, started, is_test=True, config=override)
        return _response(c, outcome)

    return router


def _response(c: Container, outcome: IngestOutcome) -> JSONResponse:
    headers = dict(outcome.headers)
    if outcome.job_id is not None:
        headers["X-Job-Id"] = str(outcome.job_id)
    if outcome.error is not None or outcome.result_media_id is None:
        assert outcome.error is not None, "a test run without a result has an error"
        headers.update(outcome.error.headers)
        return JSONResponse(outcome.error.body(), status_code=outcome.status, headers=headers)
    body = {
        "job_id": str(outcome.job_id),
        "status": JobStatus.SUCCEEDED.value,
        "processing_ms": outcome.processing_ms,
        "cost": outcome.cost,
        "result_url": f"{c.settings.base_url}/public/media/{outcome.result_media_id}",
        "result_mime": outcome.mime,
    }
    return JSONResponse(body, status_code=200, headers=headers)

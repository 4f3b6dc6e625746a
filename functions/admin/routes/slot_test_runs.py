"""Slot test run: an operator runs one of their slots on an uploaded photo, through the booth's own pipeline."""

import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from boothbridge.errors import AppError
from boothbridge.http.multipart import BodyTimeoutRoute
from boothbridge.http.openapi import AUTH, BODY, PHOTO, PIPELINE, errors, header_docs, merge
from boothbridge.ingest.model import IngestOutcome, PhotoSink, UploadedForm
from boothbridge.jobs.status import JobStatus
from boothbridge.slots.rules import SlotUpdate
from functions.admin.deps import HubDep, IngestDep, OperatorDep, SettingsDep, SlotsDep
from functions.admin.routes.media import public_media_url
from functions.admin.schemas_jobs import SlotTestRun

_RUN_HEADERS = {"X-Processing-Ms": "how long the run took", "X-Job-Id": "the job, once one was queued"}

router = APIRouter(tags=["slots"], route_class=BodyTimeoutRoute)  # a stalled test-photo upload: 408


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


@router.post(
    "/api/slots/{slot_id}/test",
    response_model=SlotTestRun,
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
    slots: SlotsDep,
    hub: HubDep,
    ingest: IngestDep,
    settings: SettingsDep,
    response: Response,
    file: Annotated[UploadFile | None, File(description="the test photo (JPEG, PNG or WebP)")] = None,
    config: Annotated[
        str | None,
        Form(
            max_length=200_000,
            description="optional JSON {provider_id, operation_id, settings_json}: test this unsaved "
            "configuration instead of the saved one (validated exactly as a save)",
        ),
    ] = None,
) -> SlotTestRun | JSONResponse:
    """Run the slot on a test photo exactly as a booth post would run (validation, queue, worker, provider,
    waiting up to T_sync_response), without the ingest password. The job and its log row are marked as a
    test: never matched with booth jobs, never counted in booth statistics. Answers the job and a public
    link to the result; errors as for ingest (502 provider failure, 504 with the job id on timeout)."""
    started = time.monotonic()
    current = await slots.get(operator.id, slot_id)  # 404 for a missing or foreign slot
    override = None
    if config is not None:
        wanted = _parse_config(config)
        override = SlotUpdate(current.name, wanted.provider_id, wanted.operation_id, wanted.settings_json)
        await slots.check(override)
    if hub is None:
        raise AppError(
            503, "test_run_unavailable", "this deployment's operator API cannot wait for jobs (no LISTEN hub)"
        )

    async def read_form(max_bytes: int, _sink: PhotoSink) -> UploadedForm:
        # FastAPI has read the upload already: the service stores the photo from the form's `file`.
        if file is None:
            return UploadedForm(file=None, filename=None, declared_type=None, fields={})
        data = await file.read(max_bytes + 1)  # one byte more than allowed is enough to refuse it
        return UploadedForm(file=data, filename=file.filename, declared_type=file.content_type, fields={})

    outcome = await ingest.process(slot_id, read_form, started, is_test=True, config=override)
    headers = dict(outcome.headers)
    if outcome.job_id is not None:
        headers["X-Job-Id"] = str(outcome.job_id)
    if outcome.error is not None or outcome.result_media_id is None:
        assert outcome.error is not None, "a test run without a result has an error"
        headers.update(outcome.error.headers)
        return JSONResponse(outcome.error.body(), status_code=outcome.status, headers=headers)
    response.headers.update(headers)
    return _answer(settings.base_url, outcome)


def _answer(base_url: str, outcome: IngestOutcome) -> SlotTestRun:
    """The body of a run that produced a result (`outcome.result_media_id`)."""
    assert outcome.job_id is not None and outcome.mime is not None, "a result comes from a job, with its type"
    return SlotTestRun(
        job_id=outcome.job_id,
        status=JobStatus.SUCCEEDED,
        processing_ms=outcome.processing_ms,
        cost=outcome.cost,
        result_url=public_media_url(base_url, outcome.result_media_id),
        result_mime=outcome.mime,
    )

"""Slot test run: an operator runs one of their slots on an uploaded photo, through the booth's own pipeline; or
the slot page's unsaved configuration (either slot body shape, validated exactly as a save). The answer shows each
step's intermediate image with its time and cost (issue 14 item 8)."""

import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from boothbridge.errors import AppError
from boothbridge.http.multipart import BodyTimeoutRoute
from boothbridge.http.openapi import AUTH, BODY, PHOTO, PIPELINE, errors, header_docs, merge
from boothbridge.ingest.model import IngestOutcome, PhotoSink, UploadedForm
from boothbridge.jobs.status import JobStatus
from boothbridge.slots.pipeline import SlotUpdate, parse_update
from functions.admin.deps import HubDep, IngestDep, JobsViewDep, OperatorDep, SettingsDep, SlotsDep
from functions.admin.routes.media import public_media_url
from functions.admin.routes.slots import SLOT_CONFIG_ERRORS
from functions.admin.schemas import SlotPipelineBody
from functions.admin.schemas_jobs import SlotTestRun, SlotTestStep

_RUN_HEADERS = {"X-Processing-Ms": "how long the run took", "X-Job-Id": "the job, once one was queued"}

router = APIRouter(tags=["slots"], route_class=BodyTimeoutRoute)  # a stalled test-photo upload: 408


def _parse_config(raw: str, name: str) -> SlotUpdate:
    """The `config` form field: a slot body (either shape; `name`, `failure_policy` and `version` are ignored if
    present) as an update named `name`. Errors: 400 `validation_error` (not JSON, not the body's shape, neither
    steps nor provider and operation), 422 `invalid_pipeline` (top-level fields that contradict `steps`)."""
    try:
        wanted = SlotPipelineBody.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        fields = (
            [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
            if isinstance(exc, ValidationError)
            else [{"field": "config", "message": "not valid JSON"}]
        )
        raise AppError(
            400, "validation_error", "config is not a valid slot configuration", {"fields": fields}
        ) from None
    return parse_update({**wanted.model_dump(), "name": name})


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
            *SLOT_CONFIG_ERRORS,
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
    view: JobsViewDep,
    response: Response,
    file: Annotated[UploadFile | None, File(description="the test photo (JPEG, PNG or WebP)")] = None,
    config: Annotated[
        str | None,
        Form(
            max_length=200_000,
            description="optional JSON slot body ({steps, finishing, variants, variant_field} or the seed-003 "
            "{provider_id, operation_id, settings_json}): test this unsaved configuration instead of the saved one "
            "(validated exactly as a save)",
        ),
    ] = None,
) -> SlotTestRun | JSONResponse:
    """Run the slot on a test photo exactly as a booth post would run (validation, queue, worker, provider,
    waiting up to T_sync_response), without the ingest password. The job and its log row are marked as a
    test: never matched with booth jobs, never counted in booth statistics. Answers the job and a public
    link to the result, and each step tried with its intermediate image, time and cost; errors as for ingest (502
    provider failure, 504 with the job id on timeout)."""
    started = time.monotonic()
    current = await slots.get(operator.id, slot_id)  # 404 for a missing or foreign slot
    override = None
    if config is not None:
        override = _parse_config(config, current.name)
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
    assert outcome.job_id is not None, "a result comes from a job"
    detail = await view.get(operator.id, outcome.job_id)
    return _answer(settings.base_url, outcome, detail.get("steps") or [])


def _answer(base_url: str, outcome: IngestOutcome, steps: list[dict[str, Any]]) -> SlotTestRun:
    """The body of a run that produced a result (`outcome.result_media_id`); `steps`: the job detail's (each
    step and alternative tried, its `output_media_id` shown as a public link)."""
    assert outcome.job_id is not None and outcome.mime is not None, "a result comes from a job, with its type"
    return SlotTestRun(
        job_id=outcome.job_id,
        status=JobStatus.SUCCEEDED,
        processing_ms=outcome.processing_ms,
        cost=outcome.cost,
        result_url=public_media_url(base_url, outcome.result_media_id),
        result_mime=outcome.mime,
        steps=[_step(base_url, step) for step in steps],
    )


def _step(base_url: str, step: dict[str, Any]) -> SlotTestStep:
    output = step.get("output_media_id")
    return SlotTestStep(
        index=step["index"],
        alternative=step["alternative"],
        provider_id=step["provider_id"],
        operation_id=step["operation_id"],
        status=step["status"],
        ms=step.get("ms"),
        cost=step.get("cost"),
        error=step.get("error"),
        image_url=public_media_url(base_url, output) if output else None,
    )

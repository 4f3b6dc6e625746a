"""Ingest HTTP facade: parse the booth's POST, hand it to IngestService, map the outcome to a response.

Importing this module stays cheap (a Lambda cold start): the container, and the composition root's imports, come
with the first request (`ContainerHolder`); the container's and the settings' types are for annotations only."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse

from boothbridge.http.errors import install_error_handlers
from boothbridge.http.holder import ContainerHolder, LazyMangum
from boothbridge.http.multipart import read_booth_form
from boothbridge.http.openapi import PHOTO, PIPELINE, errors, header_docs, install_openapi, merge
from boothbridge.http.request_id import RequestIdMiddleware
from boothbridge.ingest.outcome import booth_answer

if TYPE_CHECKING:
    from boothbridge.bootstrap import Container
    from boothbridge.ingest.model import IngestOutcome
    from boothbridge.settings import Settings

_TIMING = {"X-Processing-Ms": "how long the request took"}
_JOB = {"X-Job-Id": "the job that processed (or is processing) the photo", **_TIMING}
INGEST_RESPONSES = merge(
    {
        200: {
            "description": "the processed image; with `X-Fallback: original` the booth's own photo, because the "
            "provider failed and the slot's failure policy is `original`",
            "content": {mime: {} for mime in ("image/jpeg", "image/png", "image/webp")},
            "headers": header_docs({**_JOB, "X-Fallback": "`original` when the photo is the booth's own"}),
        }
    },
    errors("400 invalid_form", "400 client_disconnected", "401 invalid_password", *PHOTO, headers=_TIMING),
    # 503 database_unavailable (with Retry-After): the database did not answer in time (a restart, an outage).
    errors(*PIPELINE, "503 database_unavailable", headers=_JOB),
)


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    app = FastAPI(title="boothbridge ingest", docs_url=None, redoc_url=None)
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)  # X-Request-Id; the id on every log line of the request
    install_openapi(app)
    holder = app.state.holder = ContainerHolder(settings, container, listen=True)

    # response_class=Response: documents the image answer (errors are still JSON bodies).
    @app.post(
        "/ingest/{slot_id}",
        response_model=None,
        response_class=Response,
        tags=["ingest"],
        responses=INGEST_RESPONSES,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["fileToUpload", "password"],
                            "properties": {
                                "fileToUpload": {"type": "string", "contentMediaType": "application/octet-stream"},
                                "password": {"type": "string", "description": "the ingest password"},
                            },
                            "additionalProperties": {"type": "string"},
                        }
                    }
                },
            }
        },
    )
    async def ingest(
        slot_id: str,
        request: Request,
        variant: Annotated[
            str | None,
            Query(
                description="the slot's variant to run (e.g. a survey answer DSLR Remote Pro puts in the post URL); "
                "wins over the slot's variant form field; an unknown or empty one runs the slot's defaults"
            ),
        ] = None,
    ) -> Response:
        """Receive one booth photo and answer with the processed image (or the documented error)."""
        started = time.monotonic()
        service = (await holder.get()).ingest
        # The photo streams to storage as it arrives (the service's sink), never held whole.
        outcome = await service.process(
            slot_id, lambda limit, sink: read_booth_form(request, limit, sink=sink), started, variant=variant
        )
        return to_response(outcome)

    return app


def to_response(outcome: IngestOutcome) -> Response:
    """The outcome as sent: its parts are decided by `booth_answer`."""
    answer = booth_answer(outcome)
    if answer.image is not None:
        return Response(answer.image, status_code=answer.status, media_type=answer.mime, headers=answer.headers)
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)


handler = LazyMangum(create_app)

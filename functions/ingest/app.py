"""Ingest HTTP facade: parse the booth's POST, hand it to IngestService, map the outcome to a response."""

import time

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from boothbridge.container import Container
from boothbridge.http.errors import install_error_handlers
from boothbridge.http.holder import ContainerHolder, LazyMangum
from boothbridge.http.multipart import read_booth_form
from boothbridge.ingest import IngestOutcome, IngestService
from boothbridge.settings import Settings


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    app = FastAPI(title="boothbridge ingest", docs_url=None, redoc_url=None)
    install_error_handlers(app)
    holder = app.state.holder = ContainerHolder(settings, container, listen=True)

    @app.post("/ingest/{slot_id}", response_model=None)
    async def ingest(slot_id: str, request: Request) -> Response:
        """Receive one booth photo and answer with the processed image (or the documented error)."""
        started = time.monotonic()
        service = IngestService(await holder.get())
        outcome = await service.process(slot_id, lambda limit: read_booth_form(request, limit), started)
        return to_response(outcome)

    return app


def to_response(outcome: IngestOutcome) -> Response:
    headers = dict(outcome.headers)
    if outcome.job_id is not None:
        headers["X-Job-Id"] = str(outcome.job_id)
    if outcome.image is not None:
        return Response(outcome.image, status_code=outcome.status, media_type=outcome.mime, headers=headers)
    assert outcome.error is not None
    headers.update(outcome.error.headers)
    return JSONResponse(outcome.error.body(), status_code=outcome.status, headers=headers)


handler = LazyMangum(create_app)

"""Machine clients' task API under `/api/v1/tasks` (issue 15): a pipeline of steps from the request, inputs by URL,
base64 or media id, detailed status, cancel, outputs. Thin over `boothbridge.tasks`."""

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["tasks"])

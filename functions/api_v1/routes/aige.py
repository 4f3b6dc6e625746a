"""AIGE's API (seeds 000/001) under `/api/v1`: avatar, background, overlay, upscaled, video, reframe, refine, task
status, finetune and flux-ultra. Thin over `boothbridge.tasks`."""

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["aige"])

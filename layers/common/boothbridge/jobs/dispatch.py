"""Waking a worker for a new job: one small interface, two backends.

Locally and self-hosted, the enqueue transaction's `NOTIFY bb_job_new` already reaches every listening worker,
so there is nothing more to do. On AWS no worker listens: each job gets an asynchronous invoke of the worker
Lambda (`InvocationType=Event`, payload `{"job_id": ...}`); a lost invoke is recovered by the scheduled sweep.
"""

from __future__ import annotations

import json
import logging
import uuid
from contextlib import AsyncExitStack
from typing import Any, Protocol

log = logging.getLogger(__name__)


class JobDispatcher(Protocol):
    """Tells the worker side that `job_id` is ready. Must not raise: a failed wake-up is logged and the
    job waits for the next sweep or poll."""

    async def dispatch(self, job_id: uuid.UUID) -> None: ...

    async def close(self) -> None: ...


class NotifyDispatcher:
    """Nothing to send: listening workers were told by the NOTIFY in the enqueue transaction."""

    async def dispatch(self, job_id: uuid.UUID) -> None:
        return None

    async def close(self) -> None:
        return None


class LambdaInvokeDispatcher:
    """Asynchronous invoke of the worker function through aiobotocore (client built once, by `open`)."""

    def __init__(self, function_name: str, *, region: str, endpoint_url: str | None = None) -> None:
        self.function_name = function_name
        self._region = region
        self._endpoint_url = endpoint_url
        self._stack: AsyncExitStack | None = None
        self._client: Any = None

    async def open(self) -> None:
        from aiobotocore.config import AioConfig

        from boothbridge.platform.aws_session import aws_session

        self._stack = AsyncExitStack()
        config = AioConfig(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"})
        self._client = await self._stack.enter_async_context(
            aws_session().create_client(
                "lambda", region_name=self._region, endpoint_url=self._endpoint_url, config=config
            )
        )

    async def dispatch(self, job_id: uuid.UUID) -> None:
        payload = json.dumps({"job_id": str(job_id), "reason": "ingest"}).encode()
        try:
            response = await self._client.invoke(
                FunctionName=self.function_name, InvocationType="Event", Payload=payload
            )
            if response.get("StatusCode") != 202:
                log.warning("worker invoke for job %s answered %s", job_id, response.get("StatusCode"))
        except Exception as exc:
            log.warning("could not invoke the worker for job %s (%s); the sweep will pick it up", job_id, exc)

    async def close(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None
            self._client = None

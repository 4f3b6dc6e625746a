"""Machine-client tasks (issue 15; SPEC §11): submit, read, list, cancel, outputs, and input uploads.

A task is a job of kind `task` on the same queue, workers and providers as a booth's: its pipeline comes from the
request (the same shape and the same validation as a slot's: `slots.rules.validate_update`), its input images are
the caller's (`tasks.inputs`), it may run up to TASK_DEADLINE_SEC (video takes minutes), its outputs are kept for
the result TTL, and with a `writeUrl` its primary output is PUT there (`tasks.delivery`).

Every read and change is scoped to the caller's operator: another operator's task is 404 `task_not_found`, exactly
like one that does not exist (existence is not revealed). The SQL is in `tasks.statements`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from psycopg.types.json import Jsonb

from boothbridge.accounts.machine_client import MachineClient
from boothbridge.catalog import Catalog
from boothbridge.db.raw import RawDb
from boothbridge.errors import AppError
from boothbridge.jobs.cancel import cancel_job
from boothbridge.jobs.dispatch import JobDispatcher
from boothbridge.jobs.notifications import NotificationHub
from boothbridge.jobs.queue import JobQueue
from boothbridge.jobs.statements import CANCEL_TASK
from boothbridge.jobs.status import JobStatus
from boothbridge.media.service import MediaExpired, MediaNotFound, MediaService
from boothbridge.settings import Settings
from boothbridge.slots.pipeline import SlotUpdate, normalize_step
from boothbridge.slots.rules import validate_update
from boothbridge.tasks import statements as sql
from boothbridge.tasks.fetch import too_large
from boothbridge.tasks.inputs import TaskInputs
from boothbridge.tasks.model import TaskSpec, TaskView, UploadedMedia, task_not_found
from boothbridge.tasks.outputs import TASK_MARK
from boothbridge.tasks.view import task_view

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

MAX_PAGE_SIZE = 100
INPUT_GRACE = timedelta(minutes=5)  # an input outlives its task's deadline by this much at least
# The SSE stream's re-read period (`watch`): the hub announces only endings, not step or phase changes. Also how
# often `wait` re-reads in a process without a LISTEN hub.
WAIT_POLL_SEC = 0.25


class TaskService:
    """Built per request from the container's parts (see `functions/api_v1/routes/tasks.py`)."""

    def __init__(
        self,
        *,
        settings: Settings,
        pool: RawDb,
        engine: AsyncEngine,
        media: MediaService,
        catalog: Catalog,
        providers: Mapping[str, object],
        dispatcher: JobDispatcher,
        hub: NotificationHub | None,
        result_ttl_sec: int,
        queue: JobQueue | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.engine = engine  # the cancel runs on the operator side's engine, as jobs.cancel does
        self.media = media
        self.catalog = catalog
        self.providers = providers
        self.dispatcher = dispatcher
        self.hub = hub
        self.result_ttl_sec = result_ttl_sec
        self.queue = queue  # `wait` waits as a booth's ingest does (jobs.waiting) when there is a hub too

    # ---- submit --------------------------------------------------------------------------------------

    async def submit(self, client: MachineClient, spec: TaskSpec) -> TaskView:
        """Validate `spec`, store its inputs, queue its job and wake a worker. Errors: 422 as a slot's save
        (`invalid_pipeline`, `unknown_provider`, `unsupported_operation`, `invalid_settings`, `invalid_finishing`),
        422 `unknown_input` (an input the operation has no media field for), 422 `provider_unavailable`, 422
        `input_required` / `input_missing`, the inputs' errors (`tasks.inputs`); nothing is stored on any of them."""
        steps = self._validated_steps(spec)
        now = datetime.now(UTC)
        deadline = now + timedelta(seconds=self.settings.task_deadline_sec)
        keep_until = max(now + timedelta(seconds=self.result_ttl_sec), deadline + INPUT_GRACE)
        max_bytes = self._input_cap(spec)
        async with self._inputs(spec) as inputs:
            wanted = [("source", spec.source)] if spec.source is not None else []
            for index, step in enumerate(spec.steps):
                wanted += [(f"steps/{index}/inputs/{name}", ref) for name, ref in step.inputs.items()]
            loaded = [await inputs.load(ref, name, client.owner_id, max_bytes) for name, ref in wanted]
            stored = {item.name: await inputs.store(item, client.owner_id, keep_until) for item in loaded}
        for index, step in enumerate(spec.steps):
            for name in step.inputs:
                steps[index]["settings_json"][name] = str(stored[f"steps/{index}/inputs/{name}"].id)
        source = stored.get("source")
        first = steps[0]
        pipeline = {"steps": steps, "finishing": spec.finishing, "max_attempts": self.settings.max_attempts}
        pipeline.update({TASK_MARK: True, "phase_names": spec.phase_names or {}})
        task_id = uuid.uuid4()
        params = {
            "id": task_id,
            "provider": first["provider_id"],
            "operation": first["operation_id"],
            "settings": Jsonb(first["settings_json"]),
            "pipeline": Jsonb(pipeline),
            "source": source.id if source is not None else None,
            "sha": source.sha256 if source is not None else None,
            "max_attempts": self.settings.max_attempts,
            "deadline": deadline,
            "owner": client.owner_id,
            "key": client.key_id,
            "api": spec.api,
            "client_ref": Jsonb(spec.client_ref),
            "write_url": spec.write_url,
            "read_url": spec.read_url,
            "delivery_expires": deadline + timedelta(seconds=self.result_ttl_sec),
        }
        await self.pool.one(sql.INSERT_TASK, params)
        await self.dispatcher.dispatch(task_id)
        return await self.get(client, task_id)

    def _validated_steps(self, spec: TaskSpec) -> list[dict[str, Any]]:
        """The steps in the stored pipeline shape, validated as a slot's are (a placeholder id stands for each named
        input while the settings are checked against the schema)."""
        steps = [
            normalize_step({"provider_id": s.provider_id, "operation_id": s.operation_id, "settings_json": s.settings})
            for s in spec.steps
        ]
        checked = [dict(step, settings_json=dict(step["settings_json"])) for step in steps]
        for index, step in enumerate(spec.steps):
            operation = self.catalog.operation(step.operation_id)
            fields = operation.media_fields() if operation is not None else []
            for name in step.inputs:
                if name not in fields:
                    raise AppError(
                        422,
                        "unknown_input",
                        f"operation {step.operation_id!r} takes no image named {name!r}",
                        {"field": f"steps/{index}/inputs/{name}", "accepted": fields},
                    )
                checked[index]["settings_json"][name] = str(uuid.UUID(int=0))
        first = checked[0]
        update = SlotUpdate(
            name="task",
            provider_id=first["provider_id"],
            operation_id=first["operation_id"],
            settings_json=first["settings_json"],
            steps=checked,
            finishing=dict(spec.finishing),
        )
        validate_update(self.catalog, update)
        for index, planned in enumerate(steps):
            if planned["provider_id"] not in self.providers:
                raise AppError(
                    422,
                    "provider_unavailable",
                    f"provider {planned['provider_id']!r} is not available in this deployment",
                    {"field": f"steps/{index}/provider_id"},
                )
        return steps

    def _input_cap(self, spec: TaskSpec) -> int:
        """The largest input accepted: the upload limit, or the first step's provider's when smaller."""
        entry = self.catalog.provider(spec.steps[0].provider_id)
        cap = self.settings.max_upload_bytes
        return min(cap, entry.ingest.max_file_size_bytes) if entry is not None else cap

    @contextlib.asynccontextmanager
    async def _inputs(self, spec: TaskSpec) -> AsyncIterator[TaskInputs]:
        timeout = httpx.Timeout(self.settings.task_fetch_timeout_sec)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
            yield TaskInputs(self.media, self.settings, http)

    async def upload(self, client: MachineClient, data: bytes) -> UploadedMedia:
        """Store an input image for the caller (`POST /api/v1/media`), kept for the result TTL. Errors: 413
        `input_too_large`, 400 `input_empty`, 415 `input_not_image`, 422 `image_undecodable` /
        `image_too_many_pixels`."""
        if len(data) > self.settings.max_upload_bytes:
            raise too_large(self.settings.max_upload_bytes)
        async with httpx.AsyncClient() as http:
            inputs = TaskInputs(self.media, self.settings, http)
            try:
                mime = await inputs.check_image(data)
            except AppError as err:
                err.details.setdefault("input", "file")
                raise
        expires = datetime.now(UTC) + timedelta(seconds=self.result_ttl_sec)
        ref = await self.media.save("public", data, mime, expires, owner_id=client.owner_id)
        return UploadedMedia(
            id=ref.id, sha256=ref.sha256, mime=ref.mime, size_bytes=ref.size_bytes, expires_at=ref.expires_at
        )

    # ---- reads ---------------------------------------------------------------------------------------

    async def get(self, client: MachineClient, task_id: uuid.UUID) -> TaskView:
        """The caller's task; 404 `task_not_found` otherwise."""
        row = await self.pool.one(sql.TASK, {"id": task_id, "owner": client.owner_id})
        if row is None:
            raise task_not_found(task_id)
        return task_view(row, self.settings.base_url)

    async def list(self, client: MachineClient, *, limit: int = 20, offset: int = 0) -> tuple[list[TaskView], int]:
        """A page of the caller's tasks, newest first, and their total."""
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        params = {"owner": client.owner_id, "limit": limit, "offset": max(offset, 0)}
        rows = await self.pool.all(sql.TASK_PAGE, params)
        total = await self.pool.one(sql.TASK_COUNT, params)
        return [task_view(row, self.settings.base_url) for row in rows], int(total["total"] if total else 0)

    async def watch(
        self, client: MachineClient, task_id: uuid.UUID, *, poll_sec: float, max_sec: float
    ) -> AsyncIterator[TaskView]:
        """The caller's task now, then each change of its status, step or phase, ending after a terminal status or
        `max_sec`. Subscribed to the hub before the first read (an ending wakes it at once); the hub announces only
        endings, so the task is also read every `poll_sec`. 404 `task_not_found` from the first read."""
        started = time.monotonic()
        seen: tuple[str, int, str] | None = None
        subscription: contextlib.AbstractContextManager[asyncio.Event] = (
            self.hub.subscribe(task_id) if self.hub is not None else contextlib.nullcontext(asyncio.Event())
        )
        with subscription as woken:
            while True:
                woken.clear()  # before the read: an ending signalled after it sets it again
                view = await self.get(client, task_id)
                if (view.status, view.step_index, view.phase) != seen:
                    seen = (view.status, view.step_index, view.phase)
                    yield view
                if view.status in JobStatus.TERMINAL or time.monotonic() - started >= max_sec:
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(poll_sec):
                        await woken.wait()

    async def wait(
        self, client: MachineClient, task_id: uuid.UUID, timeout_sec: float, *, current: TaskView | None = None
    ) -> TaskView:
        """The caller's task once it ended, or as it stands after `timeout_sec`. 404 `task_not_found` from the first
        read, which checks that the task is the caller's; `current`, the task as the caller has just read it
        (submitted it), stands for that read. The wait itself is a booth's (`jobs.waiting`): woken by the hub when
        the task ends, here or by NOTIFY, with the hub's slow fallback poll and database blips ridden out; then one
        read gives the view. Without a hub or a queue, the task is re-read every WAIT_POLL_SEC."""
        if self.hub is not None and self.queue is not None:
            from boothbridge.jobs.waiting import wait_for_job_end

            deadline = time.monotonic() + timeout_sec
            view = current if current is not None and current.id == task_id else await self.get(client, task_id)
            if view.status not in JobStatus.TERMINAL:
                await wait_for_job_end(self.queue, self.hub, task_id, deadline, self.settings.fallback_poll_sec)
                view = await self.get(client, task_id)
            return view
        last: TaskView | None = None
        async for view in self.watch(client, task_id, poll_sec=WAIT_POLL_SEC, max_sec=timeout_sec):
            last = view
        assert last is not None  # watch yields the first read at least
        return last

    async def cancel(self, client: MachineClient, task_id: uuid.UUID) -> TaskView:
        """Cancel the caller's task (the queue's cancel: `jobs.cancel`); 404 `task_not_found`, 409 `job_finished`
        when it already ended."""
        from boothbridge.db.engine import autocommit

        await cancel_job(
            autocommit(self.engine),
            self.hub,
            client.owner_id,
            client.name,
            task_id,
            self.providers,
            statement=CANCEL_TASK,
            not_found=task_not_found,
            message=f"cancelled by API key {client.name}",
        )
        return await self.get(client, task_id)

    async def output(self, client: MachineClient, task_id: uuid.UUID, index: int) -> tuple[bytes, str]:
        """The bytes and type of the caller's task's output `index` (0: the primary). 404 `task_not_found`, 404
        `output_not_found` (no such output, or not made yet), 410 `output_expired`."""
        view = await self.get(client, task_id)
        output = next((o for o in view.outputs if o.index == index), None)
        if output is None:
            raise AppError(404, "output_not_found", "the task has no such output", {"index": index})
        try:
            data, ref = await self.media.read(output.media_id)
        except MediaExpired as exc:
            raise AppError(410, "output_expired", "the output is no longer kept", {"index": index}) from exc
        except MediaNotFound as exc:
            raise AppError(404, "output_not_found", "the task has no such output", {"index": index}) from exc
        return data, ref.mime

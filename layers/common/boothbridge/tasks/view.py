"""A task's row (`tasks.statements.TASK` / `TASK_PAGE`) as its caller sees it (`TaskView`). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from boothbridge.jobs import progress
from boothbridge.tasks.model import TaskDelivery, TaskError, TaskOutput, TaskView
from boothbridge.tasks.phases import task_phase


def task_view(row: Mapping[str, Any], base_url: str) -> TaskView:
    """The view of one task row. Outputs are those whose media is still live, each with the URL that streams it;
    a delivery shows the caller's `read_url` only once delivered."""
    pipeline: Mapping[str, Any] = row["pipeline"] or {}
    step_count = progress.step_count(len(pipeline.get("steps") or []) or None)
    outputs = [
        TaskOutput(
            index=o["index"],
            media_id=o["id"],
            mime=o["mime"],
            url=f"{base_url}/api/v1/tasks/{row['id']}/outputs/{o['index']}",
        )
        for o in row["outputs"]
    ]
    deliveries = [
        TaskDelivery(
            index=d["index"],
            status=d["status"],
            attempts=d["attempts"],
            read_url=d["read_url"] if d["status"] == "delivered" else None,
            error=TaskError(code=d["error_code"], message=d["error_message"] or "")
            if d["status"] != "delivered" and d["error_code"]
            else None,
        )
        for d in row["deliveries"]
    ]
    status = str(row["status"])
    job_phase = progress.phase(status, row["operation_id"], row["phase"])
    error = None
    if row["error_code"] and status in ("failed", "cancelled"):
        error = TaskError(code=row["error_code"], message=row["error_message"] or "")
    return TaskView(
        id=row["id"],
        api=row["api"] or "tasks",
        client_ref=row["client_ref"] or {},
        status=status,
        phase=task_phase(
            status,
            row["operation_id"],
            row["phase"],
            phase_names=pipeline.get("phase_names"),
            output_mime=outputs[0].mime if outputs else None,
            deliveries=[d.status for d in deliveries],
        ),
        step_index=row["step_index"],
        step_count=step_count,
        progress=progress.progress(row["step_index"], step_count, status, job_phase),
        outputs=outputs,
        result_data=row["result_data"],
        error=error,
        deliveries=deliveries,
        cost=float(row["cost"]) if row["cost"] is not None else None,
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )

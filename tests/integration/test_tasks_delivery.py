"""Delivery of a task's output to the caller's pre-signed writeUrl (issue 15), on real PostgreSQL, S3 (moto) and HTTP:

- a moto-presigned PUT URL: the object lands in the bucket with the output's bytes and Content-Type (the PUT starts
  as soon as the job succeeds), the readUrl shown only once delivered;
- a writeUrl answering 500 twice then 200 is retried (with backoff) and delivered on the third PUT, which carries
  the output's type and no credentials of ours; the status goes pending -> processing_<operation> ->
  uploading_image -> done;
- a writeUrl answering 403 is recorded as the delivery's error (`delivery_rejected`) and not tried again; the
  task's phase is `error`;
- a failed task's delivery is given up (`task_not_succeeded`), never PUT.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any

import botocore.session

from boothbridge.bootstrap import Container
from boothbridge.jobs.worker_loop import run_job_by_id
from boothbridge.tasks.delivery import TaskDeliveries
from boothbridge.tasks.model import InputRef, TaskSpec, TaskStep, TaskView
from boothbridge.tasks.service import TaskService
from tests.support.booth import jpeg
from tests.support.moto_server import FAKE_ACCESS_KEY_ID, FAKE_REGION, FAKE_SECRET_ACCESS_KEY
from tests.support.tasks import Scripted, machine_client, scripted_server, task_service

PHOTO = base64.b64encode(jpeg(320, 240)).decode()
READ_URL = "https://example.com/read/result.jpg"


def echo(**settings: Any) -> TaskSpec:
    return TaskSpec(
        steps=[TaskStep(provider_id="sleepy", operation_id="echo", settings=settings)], source=InputRef(base64=PHOTO)
    )


def deliveries(c: Container) -> TaskDeliveries:
    return TaskDeliveries(c.pool, c.media, base_sec=0.02, max_sec=0.05)


async def run(c: Container, task_id: uuid.UUID) -> str:
    return str(await run_job_by_id(c.queue, c.runner, task_id, "test-worker"))


async def deliver_until_settled(c: Container, service: TaskService, client: Any, task_id: uuid.UUID) -> TaskView:
    """Delivery passes until the delivery is no longer pending (at most 100 passes, a short sleep between)."""
    for _ in range(100):
        await deliveries(c).run_due()
        view = await service.get(client, task_id)
        if view.deliveries[0].status != "pending":
            return view
        await asyncio.sleep(0.03)
    raise AssertionError("the delivery never settled")


def s3_client(endpoint: str) -> Any:
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=FAKE_REGION,
        aws_access_key_id=FAKE_ACCESS_KEY_ID,
        aws_secret_access_key=FAKE_SECRET_ACCESS_KEY,
    )


async def test_a_presigned_s3_put_lands_with_the_bytes_and_type(
    container: Container, moto_endpoint: str, s3_bucket: str
) -> None:
    service, client = task_service(container), await machine_client(container, "serg")
    s3 = s3_client(moto_endpoint)
    key = f"deliveries/{uuid.uuid4()}.jpg"
    write_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": s3_bucket, "Key": key, "ContentType": "image/jpeg"}, ExpiresIn=3600
    )
    view = await service.submit(client, echo().model_copy(update={"write_url": write_url, "read_url": READ_URL}))
    assert view.deliveries[0].read_url is None  # not before it is delivered
    assert await run(container, view.id) == "succeeded"  # which starts the delivery at once
    done = await deliver_until_settled(container, service, client, view.id)
    assert (done.phase, done.deliveries[0].status, done.deliveries[0].read_url, done.deliveries[0].attempts) == (
        "done",
        "delivered",
        READ_URL,
        1,
    )
    stored = await asyncio.to_thread(s3.get_object, Bucket=s3_bucket, Key=key)
    output, mime = await service.output(client, view.id, 0)
    assert stored["ContentType"] == mime == "image/jpeg"
    assert stored["Body"].read() == output


async def test_a_write_url_answering_500_twice_is_retried_and_delivered(container: Container) -> None:
    service, client = task_service(container), await machine_client(container, "serg")
    async with scripted_server(Scripted(put_statuses=[500, 500])) as script:
        url = script.url("/put/out.jpg?X-Amz-Signature=s3cr3t")
        view = await service.submit(client, echo(delay_sec=1.0).model_copy(update={"write_url": url}))
        phases = [view.phase]
        running = asyncio.create_task(run(container, view.id))
        while not running.done():
            phases.append((await service.get(client, view.id)).phase)
            await asyncio.sleep(0.05)
        assert running.result() == "succeeded"
        phases.append((await service.get(client, view.id)).phase)  # delivering: the first PUT, or its retry, due
        done = await deliver_until_settled(container, service, client, view.id)
    phases.append(done.phase)
    changes = [phase for i, phase in enumerate(phases) if i == 0 or phase != phases[i - 1]]
    assert changes == ["pending", "processing_echo", "uploading_image", "done"]
    assert (done.deliveries[0].status, done.deliveries[0].attempts) == ("delivered", 3)
    assert len(script.puts) == 3
    output, mime = await service.output(client, view.id, 0)
    for _, headers, body in script.puts:
        assert body == output and headers["content-type"] == mime
        assert "authorization" not in headers and "x-api-key" not in headers


async def test_a_write_url_answering_403_is_recorded_and_not_retried(container: Container) -> None:
    service, client = task_service(container), await machine_client(container, "serg")
    async with scripted_server(Scripted(put_statuses=[403])) as script:
        view = await service.submit(client, echo().model_copy(update={"write_url": script.url("/put/x.jpg")}))
        assert await run(container, view.id) == "succeeded"
        failed = await deliver_until_settled(container, service, client, view.id)
        await deliveries(container).run_due()  # a later pass does not try it again
    delivery = failed.deliveries[0]
    assert (delivery.status, delivery.attempts, delivery.read_url, failed.phase) == ("failed", 1, None, "error")
    assert delivery.error is not None and delivery.error.code == "delivery_rejected"
    assert "403" in delivery.error.message and "refused by the test server" in delivery.error.message
    assert len(script.puts) == 1


async def test_a_failed_tasks_delivery_is_given_up_without_a_put(container: Container) -> None:
    service, client = task_service(container), await machine_client(container, "serg")
    async with scripted_server(Scripted()) as script:
        view = await service.submit(
            client, echo(fail_always=True).model_copy(update={"write_url": script.url("/put/x")})
        )
        assert await run(container, view.id) == "failed"
        await deliveries(container).run_due()
    gone = await service.get(client, view.id)
    assert (gone.phase, gone.deliveries[0].status, gone.error and gone.error.code) == (
        "error",
        "failed",
        "upstream_rejected",
    )
    assert gone.deliveries[0].error is not None and gone.deliveries[0].error.code == "task_not_succeeded"
    assert script.puts == []


async def test_a_delivery_being_retried_shows_its_last_error(container: Container) -> None:
    service, client = task_service(container), await machine_client(container, "serg")
    async with scripted_server(Scripted(put_statuses=[503] * 20)) as script:
        view = await service.submit(client, echo().model_copy(update={"write_url": script.url("/put/o.jpg")}))
        assert await run(container, view.id) == "succeeded"
        for _ in range(100):
            await deliveries(container).run_due()
            seen = await service.get(client, view.id)
            # A claimed try counts at once; its outcome is recorded when the PUT has answered (the kick at the
            # task's success may be making it concurrently).
            if seen.deliveries[0].attempts and seen.deliveries[0].error is not None:
                break
            await asyncio.sleep(0.05)
    delivery = seen.deliveries[0]
    assert (delivery.status, seen.phase) == ("pending", "uploading_image")
    assert delivery.error is not None and delivery.error.code == "delivery_server_error"
    assert "503" in delivery.error.message

"""A running job holds no photo in memory: its provider gets the stored object (nothing to change at the image
boundary) or a spool file of the prepared bytes, and the spool file is removed when the attempt ends, whatever the
outcome. Also: the local provider opens a spool file itself, and a public link of a spool file is streamed."""

from __future__ import annotations

import asyncio
import io
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.images import boundary
from boothbridge.jobs.model import JobRecord, NewJob
from boothbridge.media.links import PublicLinks
from boothbridge.providers.base import (
    ImageFile,
    ImageInput,
    ImageSource,
    ProviderError,
    ProviderRequest,
    ProviderResult,
    StoredImage,
)
from boothbridge.providers.local.adapter import LocalProvider
from boothbridge.settings import Settings
from tests.support.booth import configure_slot, credentials, jpeg, operator_token, post_photo
from tests.support.images import camera_jpeg

LIMIT = 50_000_000


def _with_comment(data: bytes) -> bytes:
    """The JPEG re-saved with a comment: metadata the boundary strips, so the provider gets a spool file."""
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).save(out, "JPEG", quality=90, comment=b"camera serial 1234")
    return out.getvalue()


class Recorder:
    """Stands in for `sleepy`: records what it was handed (while the call runs), then answers as `mode` says."""

    id = "sleepy"

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.seen: list[tuple[ImageSource, bool, bytes]] = []

    async def run(self, request: ProviderRequest) -> ProviderResult:
        image = request.source
        exists = image.path.exists() if image.path is not None else False
        data = await image.read()
        self.seen.append((image, exists, data))
        if self.mode == "final_error":
            raise ProviderError("bad_request", "refused", retryable=False)
        if self.mode == "crash":
            raise RuntimeError("the adapter broke")
        return ProviderResult(ImageInput(data, image.mime))

    async def close(self) -> None:
        return None


@pytest.fixture
def spool(container: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "spool"
    folder.mkdir()
    monkeypatch.setattr(container.runner.inputs, "spool_folder", folder)
    return folder


async def _post(client: httpx.AsyncClient, settings: Settings, photo: bytes) -> httpx.Response:
    token = await operator_token(client, settings.credentials_path)
    r = await configure_slot(client, token, "slot-001", "sleepy", "echo", {})
    assert r.status_code == 200, r.text
    return await post_photo(client, "slot-001", photo, credentials(settings.credentials_path)["ingest_password"])


@pytest.mark.parametrize(("mode", "status"), [("ok", 200), ("final_error", 502), ("crash", 502)])
async def test_a_photo_with_metadata_reaches_the_provider_as_a_spool_file_removed_when_the_attempt_ends(
    client: httpx.AsyncClient,
    settings: Settings,
    container: Container,
    spool: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    status: int,
) -> None:
    recorder = Recorder(mode)
    monkeypatch.setitem(container.runner.providers, "sleepy", recorder)
    photo = _with_comment(jpeg(300, 200))
    r = await _post(client, settings, photo)
    assert r.status_code == status, r.text
    assert recorder.seen, "the provider was called"
    for image, existed, data in recorder.seen:  # every attempt (a crash is retried)
        assert isinstance(image, ImageFile) and existed and image.path.parent == spool
        assert data == boundary.prepare_input(photo, LIMIT).data and b"camera serial" not in data
        assert image.size == len(data)
    if mode == "ok":
        assert r.content == recorder.seen[0][2]
    assert list(spool.iterdir()) == []  # removed after each attempt, whatever its outcome


async def test_a_photo_without_metadata_is_handed_over_as_the_stored_object(
    client: httpx.AsyncClient, settings: Settings, container: Container, spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder("ok")
    monkeypatch.setitem(container.runner.providers, "sleepy", recorder)
    photo = jpeg(300, 200)  # Pillow writes only the JFIF header: nothing to strip
    r = await _post(client, settings, photo)
    assert r.status_code == 200, r.text
    [(image, _, data)] = recorder.seen
    assert isinstance(image, StoredImage) and image.path is None
    assert data == photo and image.size == len(photo) and r.content == photo
    assert list(spool.iterdir()) == []  # nothing was spooled


class DecodingRecorder(Recorder):
    """A `Recorder` that decodes its input itself, as the local provider does (`decodes_input`)."""

    decodes_input = True


async def test_a_provider_that_decodes_its_input_gets_the_photo_as_stored_read_from_storage_once(
    client: httpx.AsyncClient, settings: Settings, container: Container, spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sideways camera photo with its metadata reaches a decoding provider byte for byte (it turns the photo
    upright as it decodes it, and sends nothing on), in a spool file: the object is read from storage once, not
    once to check it and again by the provider. Found in review: a StoredImage made the provider read it again."""
    recorder = DecodingRecorder("ok")
    monkeypatch.setitem(container.runner.providers, "sleepy", recorder)
    reads: list[str] = []
    read_described = container.media.read_described

    async def counted(ref: Any) -> bytes:
        reads.append(ref.kind)
        return await read_described(ref)

    monkeypatch.setattr(container.media, "read_described", counted)
    photo = camera_jpeg(300, 200, orientation=6)
    r = await _post(client, settings, photo)
    assert r.status_code == 200, r.text
    [(image, existed, data)] = recorder.seen
    assert isinstance(image, ImageFile) and existed and image.path.parent == spool
    assert data == photo  # as stored: its EXIF orientation is the provider's to apply
    assert reads.count("source") == 1
    assert list(spool.iterdir()) == []


async def test_a_photo_gone_from_storage_when_the_provider_reads_it_fails_the_job_for_good(
    client: httpx.AsyncClient, settings: Settings, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Deleting(Recorder):
        async def run(self, request: ProviderRequest) -> ProviderResult:
            assert isinstance(request.source, StoredImage)
            await container.media.store.delete(request.source.key)
            await request.source.read()
            raise AssertionError("read() must raise")

    monkeypatch.setitem(container.runner.providers, "sleepy", Deleting("ok"))
    r = await _post(client, settings, jpeg(300, 200))
    assert r.status_code == 502 and r.json()["error"]["details"]["reason"] == "source_expired", r.text


def _spooled(tmp_path: Path, data: bytes) -> ImageFile:
    path = tmp_path / f"{uuid.uuid4()}.jpg"
    path.write_bytes(data)
    return ImageFile(path, "image/jpeg", len(data))


def _local_request(operation: str, settings: dict[str, Any], source: ImageSource) -> ProviderRequest:
    return ProviderRequest(job_id="j", attempt=1, operation_id=operation, settings=settings, source=source)


@pytest.mark.parametrize(
    ("operation", "settings"),
    [
        ("resize", {"width": 120}),  # libvips, which loads the file itself
        ("reframe", {"aspect_ratio": "1:1"}),  # libvips crop
        ("white_balance", {}),  # Pillow, reading the file in its thread
        ("resize", {"width": 120, "output": {"format": "png"}}),  # Pillow with a draft decode
    ],
)
async def test_the_local_provider_gives_the_same_answer_from_a_spool_file(
    tmp_path: Path, operation: str, settings: dict[str, Any]
) -> None:
    data = jpeg(600, 400)
    provider = LocalProvider()
    from_memory = await provider.run(_local_request(operation, settings, ImageInput(data, "image/jpeg")))
    from_file = await provider.run(_local_request(operation, settings, _spooled(tmp_path, data)))
    assert from_file.image.data == from_memory.image.data and from_file.image.mime == from_memory.image.mime


@pytest.mark.parametrize("source", ["memory", "file"])
async def test_the_local_provider_finds_a_broken_photo_undecodable_from_either(tmp_path: Path, source: str) -> None:
    broken = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 200
    image = ImageInput(broken, "image/jpeg") if source == "memory" else _spooled(tmp_path, broken)
    with pytest.raises(ProviderError) as caught:
        await LocalProvider().run(_local_request("resize", {"width": 120}, image))
    assert caught.value.code == "image_undecodable"


async def test_a_public_link_of_a_spool_file_is_streamed_and_deduplicated(container: Container, tmp_path: Path) -> None:
    data = jpeg(800, 600)
    links = PublicLinks(container.media, "https://bridge.example", 600, webhooks=True)
    publish = links.linker(uuid.uuid4())
    first = await publish(_spooled(tmp_path, data))
    again = await publish(_spooled(tmp_path, data))
    from_memory = await publish(ImageInput(data, "image/jpeg"))
    assert first == again == from_memory  # the same live public object each time
    media_id = uuid.UUID(first.rsplit("/", 1)[1])
    stored, ref = await container.media.read(media_id)
    assert stored == data and ref.kind == "public" and ref.expires_at is not None


async def test_a_public_link_of_a_missing_spool_file_stores_nothing(container: Container, tmp_path: Path) -> None:
    links = PublicLinks(container.media, "https://bridge.example", 600, webhooks=True)
    gone = ImageFile(tmp_path / "gone.jpg", "image/jpeg", 10)
    with pytest.raises(OSError):
        await links.linker(uuid.uuid4())(gone)
    async with container.engine.connect() as conn:
        count = (await conn.execute(text("SELECT count(*) FROM media_objects WHERE kind = 'public'"))).scalar_one()
    assert count == 0


async def _enqueued(c: Container, photo: bytes) -> JobRecord:
    source = await c.media.write_bytes("source", photo, "image/jpeg")
    now = datetime.now(UTC)
    new = NewJob(
        id=uuid.uuid4(),
        slot_id="slot-001",
        provider_id="sleepy",
        operation_id="echo",
        settings_json={},
        source_media_id=source.id,
        source_sha256=source.sha256,
        max_attempts=3,
        deadline_at=now + timedelta(seconds=120),
        request_meta={},
    )
    job, created = await c.queue.enqueue(new, source, now + timedelta(minutes=10))
    assert created and job is not None
    return job


@pytest.mark.parametrize("settings_overrides", [{"run_worker": False}])
@pytest.mark.parametrize("ending", ["cancelled", "handed_back"])
async def test_the_spool_file_goes_when_the_attempt_is_cancelled_or_handed_back(
    container: Container, spool: Path, monkeypatch: pytest.MonkeyPatch, ending: str
) -> None:
    entered = asyncio.Event()
    seen: list[ImageSource] = []

    class Blocking(Recorder):
        async def run(self, request: ProviderRequest) -> ProviderResult:
            seen.append(request.source)
            entered.set()
            await asyncio.Event().wait()  # until cancelled
            raise AssertionError("unreachable")

    monkeypatch.setitem(container.runner.providers, "sleepy", Blocking("ok"))
    job = await _enqueued(container, _with_comment(jpeg(300, 200)))
    [claimed] = await container.queue.claim("w", 1, only_id=job.id)
    task = asyncio.create_task(container.runner.run(claimed))
    await entered.wait()
    [image] = seen
    assert isinstance(image, ImageFile) and image.path.exists() and image.path.parent == spool
    if ending == "cancelled":
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        container.runner.hand_back([task])
        assert (await task).status == "handed_back"
    assert list(spool.iterdir()) == []


@pytest.mark.parametrize("settings_overrides", [{"run_worker": False}])
async def test_a_claim_that_did_not_see_the_photo_row_asks_again_before_failing(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The claim's join reads media rows in its own snapshot: a job committed while the claim ran comes without its
    # photo's row (seen under a burst of ingests). The photo is there: the attempt must run, not fail as expired.
    recorder = Recorder("ok")
    monkeypatch.setitem(container.runner.providers, "sleepy", recorder)
    photo = jpeg(300, 200)
    job = await _enqueued(container, photo)
    [claimed] = await container.queue.claim("w", 1, only_id=job.id)
    outcome = await container.runner.run(replace(claimed, source=None))
    assert outcome.status == "succeeded" and recorder.seen[0][2] == photo
    # Really gone: expired for good, without a provider call.
    job = await _enqueued(container, photo)
    [claimed] = await container.queue.claim("w", 1, only_id=job.id)
    await container.media.discard(job.source_media_id)
    assert (await container.runner.run(replace(claimed, source=None))).status == "failed"
    assert len(recorder.seen) == 1

"""The emulator's demonstration mode: Gemini and Turbotext slots work with no key and no network."""

from __future__ import annotations

import asyncio
import io

import httpx
import uvicorn
from PIL import Image

from boothbridge.bootstrap import build_container
from boothbridge.platform.provision import prepare_database
from boothbridge.settings import Settings
from local.app import Emulator
from local.demo import demo_fakes
from tests.support.booth import configure_slot, credentials, jpeg, operator_token, post_photo


async def test_demo_mode_serves_gemini_and_turbotext_slots(settings: Settings) -> None:
    # A real port first: the Turbotext fake downloads our public links from it and calls our webhook there.
    config = uvicorn.Config(app=None, host="127.0.0.1", port=0)  # type: ignore[arg-type]
    sock = config.bind_socket()
    port = sock.getsockname()[1]
    base = settings.model_copy(update={"port": port, "public_base_url": f"http://127.0.0.1:{port}"})
    with demo_fakes(base) as demo:
        assert demo.database_url is not None  # a clone of the migrated template
        await prepare_database(demo, demo.database_url, migrate=False)
        container = await build_container(demo, listen=True)
        emulator = Emulator(demo, container)
        await emulator.start()
        server = uvicorn.Server(uvicorn.Config(emulator, lifespan="off", log_level="warning"))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                await asyncio.sleep(0.01)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                token = await operator_token(client, demo.credentials_path)
                pw = credentials(demo.credentials_path)["ingest_password"]
                assert (
                    await configure_slot(
                        client, token, "slot-001", "gemini", "change_image", {"prompt": "add confetti"}
                    )
                ).status_code == 200
                assert (
                    await configure_slot(
                        client, token, "slot-002", "turbotext", "change_image", {"prompt": "add confetti"}
                    )
                ).status_code == 200
                for slot in ("slot-001", "slot-002"):
                    r = await post_photo(client, slot, jpeg(400, 300), pw)
                    assert r.status_code == 200, (slot, r.text)
                    Image.open(io.BytesIO(r.content)).verify()
        finally:
            server.should_exit = True
            await serving
            await emulator.stop()
            await container.close()

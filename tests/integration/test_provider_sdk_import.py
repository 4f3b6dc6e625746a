"""Issue 13: a provider's SDK is imported when that provider is called, not when the container is built. Every
process builds every adapter of the catalog, so an SDK imported by the adapter's module would be paid by each of
them (google-genai: ~0.3 s and ~30 MiB) where the provider is not even configured.

A fresh interpreter (a subprocess: this test process has long imported everything) builds the container from the
packaged catalog on a fresh database, with no Gemini key, and names the SDK modules it then has loaded; then it
calls the unconfigured adapter (it fails with `api_key_missing` before any client exists) and finally makes the
adapter's first client, which must load the SDK (so the check can fail)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SDK = ("google.genai",)

PROBE = """
import asyncio, json, sys
from pathlib import Path

from boothbridge.bootstrap import build_container
from boothbridge.platform.provision import prepare_database
from boothbridge.providers.base import ImageInput, ProviderError, ProviderRequest
from boothbridge.settings import Settings

SDK = {sdk!r}


def loaded():
    return sorted(m for m in SDK if m in sys.modules)


async def main():
    tmp = Path({tmp!r})
    settings = Settings(
        _env_file=None,
        app_env="test",
        database_url={database_url!r},
        data_dir=tmp / "data",
        credentials_path=tmp / "secrets" / "runtime_credentials.json",
        run_cleanup=False,
    )
    await prepare_database(settings, settings.database_url, migrate=False)
    c = await build_container(settings, listen=False)
    try:
        report = {{"providers": sorted(c.providers), "after_build": loaded()}}
        gemini = c.providers["gemini"]
        request = ProviderRequest(
            job_id="probe", attempt=1, operation_id="change_image", settings={{"prompt": "a hat"}},
            source=ImageInput(b"", "image/jpeg"), timeout_sec=5.0,
        )
        try:
            await gemini.run(request)
        except ProviderError as err:
            report["unconfigured_call"] = err.code
        report["after_unconfigured_call"] = loaded()
        gemini.set_keys(["not-a-real-key"])
        gemini._client(0)  # the first client of a configured adapter (no request is sent)
        report["after_first_client"] = loaded()
    finally:
        await c.close()
    print(json.dumps(report))


asyncio.run(main())
"""


def test_building_the_container_without_gemini_configured_does_not_import_its_sdk(
    database_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("GEMINI_")}
    code = PROBE.format(sdk=SDK, tmp=str(tmp_path), database_url=database_url)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.splitlines()[-1])
    assert "gemini" in report["providers"]  # the adapter is built all the same (a key may be saved later)
    assert report["after_build"] == []
    assert report["unconfigured_call"] == "api_key_missing"
    assert report["after_unconfigured_call"] == []
    assert report["after_first_client"] == ["google.genai"]

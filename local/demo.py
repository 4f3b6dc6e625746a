"""Demonstration mode: the Gemini, Turbotext and fal fakes (the ones the tests use) on loopback, with the providers
pointed at them, so every provider can be tried on a fresh machine with no API key and no network."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from boothbridge.settings import Settings

DEMO_GEMINI_KEY = "demo-gemini-key"
DEMO_TURBOTEXT_KEY = "demo-turbotext-key"
DEMO_FAL_KEY = "demo-fal-key"


@contextmanager
def demo_fakes(settings: Settings) -> Iterator[Settings]:
    """Run the fakes for the duration of the block; yields settings that use them."""
    # The fakes live with the tests (they are what proves the adapters); this mode is for local use only.
    from local.fakes.fal_server import FakeFal
    from local.fakes.gemini_server import gemini_server
    from local.fakes.turbotext_server import FakeTurbotext

    with gemini_server() as gemini:
        turbotext = FakeTurbotext(api_key=DEMO_TURBOTEXT_KEY).start()
        fal = FakeFal((DEMO_FAL_KEY,)).start()
        try:
            yield settings.model_copy(
                update={
                    "gemini_api_key": DEMO_GEMINI_KEY,
                    "gemini_base_url": gemini.url,
                    "turbotext_api_key": DEMO_TURBOTEXT_KEY,
                    "turbotext_base_url": turbotext.api_url,
                    # The fal fake signs its webhooks with its own key: its JWKS stands in for fal's.
                    "fal_key": DEMO_FAL_KEY,
                    "fal_queue_url": fal.url,
                    "fal_jwks_url": fal.jwks_url,
                    # The Turbotext fake downloads our images and calls our webhook on this address.
                    "public_base_url": settings.public_base_url or f"http://127.0.0.1:{settings.port}",
                }
            )
        finally:
            fal.stop()
            turbotext.stop()

"""Public addresses of this deployment: temporary public media links and provider webhook URLs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from boothbridge.media.service import MediaService
from boothbridge.providers.base import ImageInput, ProviderError, PublicLinker


class PublicLinks:
    """Builds URLs under `base_url`. `webhooks` is False when the base is not reachable from outside (no
    PUBLIC_BASE_URL configured): providers then poll instead of calling back."""

    def __init__(self, media: MediaService, base_url: str, ttl_sec: int, *, webhooks: bool) -> None:
        self.media = media
        self.base_url = base_url.rstrip("/")
        self.ttl_sec = ttl_sec
        self.webhooks = webhooks
        # Without a configured public address our links point at localhost, which no provider can reach.
        self.public = webhooks

    def media_url(self, media_id: uuid.UUID) -> str:
        return f"{self.base_url}/public/media/{media_id}"

    def webhook_url(self, provider_id: str, token: str) -> str:
        return f"{self.base_url}/webhooks/{provider_id}/{token}"

    def linker(self, job_id: uuid.UUID) -> PublicLinker:
        """Publishes images for one job: each becomes a `public` media object that expires after the TTL."""

        async def publish(image: ImageInput) -> str:
            if not self.public:
                raise ProviderError(
                    "public_links_unavailable",
                    "this provider downloads images by URL: set PUBLIC_BASE_URL to the service's public address",
                    retryable=False,
                )
            expires = datetime.now(UTC) + timedelta(seconds=self.ttl_sec)
            ref = await self.media.save("public", image.data, image.mime, expires, job_id)
            return self.media_url(ref.id)

        return publish

"""Public addresses of this deployment: temporary public media links and provider webhook URLs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from boothbridge.media.service import MediaService
from boothbridge.providers.base import ImageSource, ProviderError, PublicLinker


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
        """Publishes images for one job: each becomes a `public` media object that expires after the TTL (a copy:
        the job's own objects go with the job). A spool file is streamed to the store; a stored object is read
        while its copy is stored (the store offers no copy)."""

        async def publish(image: ImageSource) -> str:
            if not self.public:
                raise ProviderError(
                    "public_links_unavailable",
                    "this provider downloads images by URL: set PUBLIC_BASE_URL to the service's public address",
                    retryable=False,
                )
            expires = datetime.now(UTC) + timedelta(seconds=self.ttl_sec)
            if image.path is not None:  # a spool file: streamed to the store, never whole in memory
                ref = await self.media.save_file("public", image.path, image.mime, expires, job_id)
            else:  # in memory, or a stored object read for as long as it takes to store its copy
                ref = await self.media.save("public", await image.read(), image.mime, expires, job_id)
            return self.media_url(ref.id)

        return publish

"""Pick and build the ObjectStore backend the settings ask for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from boothbridge.media.folder_store import FolderStore

if TYPE_CHECKING:
    from boothbridge.media.store import ObjectStore
    from boothbridge.settings import Settings


async def build_object_store(settings: Settings) -> ObjectStore:
    """An opened S3Store when an S3 bucket is configured, else a FolderStore on the media directory."""
    if not settings.uses_s3:
        return FolderStore(settings.media_dir)
    # Imported here so local-folder deployments never pay for loading aiobotocore/botocore.
    from boothbridge.media.s3_store import S3Store

    assert settings.s3_bucket is not None  # uses_s3 means a bucket is set; narrows the type
    store = S3Store(
        settings.s3_bucket,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
    )
    await store.open()
    return store

"""Assertions about what is stored: rows in the database and objects in the bucket."""

from __future__ import annotations

import boto3
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings


def bucket_keys(settings: Settings) -> list[str]:
    s3 = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key,
        region_name=settings.s3_region,
    )
    listing = s3.list_objects_v2(Bucket=settings.s3_bucket)
    return [obj["Key"] for obj in listing.get("Contents", [])]


async def stored_counts(container: Container) -> dict[str, int]:
    async with container.engine.connect() as conn:
        jobs = (await conn.execute(text("SELECT count(*) FROM jobs"))).scalar_one()
        media = (await conn.execute(text("SELECT count(*) FROM media_objects"))).scalar_one()
    return {"jobs": jobs, "media_objects": media, "bucket_objects": len(bucket_keys(container.settings))}

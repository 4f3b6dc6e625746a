"""S3Store: an ObjectStore over an S3-compatible bucket (AWS S3, MinIO, moto) via aiobotocore."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

from aiobotocore.config import AioConfig
from botocore.exceptions import ClientError

from boothbridge.media.folder_store import validate_key
from boothbridge.media.store import ObjectNotFound
from boothbridge.platform.aws_session import aws_session

# GetObject reports NoSuchKey; HEAD responses have no body, so botocore can only give the status code.
_OBJECT_MISSING = frozenset({"NoSuchKey", "NotFound", "404"})
_BUCKET_MISSING = frozenset({"NoSuchBucket", "NotFound", "404"})
# S3's smallest part but the last (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html: 5 MiB to
# 5 GiB, no minimum for the last part, part numbers 1 to 10,000): a streamed object holds at most this much.
PART_BYTES = 5 * 1024 * 1024


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Store:
    """Objects in one bucket; call `open()` before use and `close()` at shutdown."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        self._bucket = bucket
        self._endpoint_url = endpoint_url
        self._region = region
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self._stack: AsyncExitStack | None = None
        self._s3: Any = None  # aiobotocore clients are generated at runtime and untyped.
        self._open_lock = asyncio.Lock()

    @property
    def bucket(self) -> str:
        """The bucket objects are stored in."""
        return self._bucket

    async def open(self) -> None:
        """Create the S3 client; calling it again is a no-op."""
        async with self._open_lock:
            if self._s3 is not None:
                return
            config = AioConfig(
                signature_version="s3v4",
                # Path style works with MinIO/moto on plain hosts and IPs, where virtual-host style cannot.
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            )
            stack = AsyncExitStack()
            self._s3 = await stack.enter_async_context(
                aws_session().create_client(
                    "s3",
                    endpoint_url=self._endpoint_url,
                    region_name=self._region,
                    # None falls back to botocore's default chain (env, profile, instance role).
                    aws_access_key_id=self._access_key_id,
                    aws_secret_access_key=self._secret_access_key,
                    config=config,
                )
            )
            self._stack = stack

    async def close(self) -> None:
        """Close the client and its connection pool; safe to call twice or before open()."""
        stack, self._stack, self._s3 = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    @property
    def _client(self) -> Any:
        if self._s3 is None:
            raise RuntimeError("S3Store is not open; await store.open() first")
        return self._s3

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store the object, replacing any previous one under the key."""
        validate_key(key)
        await self._client.put_object(Bucket=self._bucket, Key=key, Body=data, ContentType=content_type)

    def writer(self, key: str, content_type: str) -> S3Writer:
        """A streamed object: one PutObject under PART_BYTES, else a multipart upload (see `S3Writer`)."""
        validate_key(key)
        return S3Writer(self._client, self._bucket, key, content_type)

    async def get(self, key: str) -> bytes:
        """Read the whole object, or raise ObjectNotFound."""
        validate_key(key)
        try:
            response = await self._client.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in _OBJECT_MISSING:
                raise ObjectNotFound(key) from exc
            raise
        # Entering the body returns its connection to the pool even if reading fails midway.
        async with response["Body"] as body:
            data: bytes = await body.read()
        return data

    async def delete(self, key: str) -> None:
        """Remove the object; S3 itself treats deleting a missing key as success."""
        validate_key(key)
        await self._client.delete_object(Bucket=self._bucket, Key=key)

    async def exists(self, key: str) -> bool:
        """Whether an object is stored under the key."""
        validate_key(key)
        try:
            await self._client.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in _OBJECT_MISSING:
                return False
            raise
        return True

    async def presigned_get_url(self, key: str, expires_in: int) -> str | None:
        """A signed GET URL for the object, valid for `expires_in` seconds (computed locally, no request)."""
        validate_key(key)
        url: str = await self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self._bucket, "Key": key},
            ExpiresIn=expires_in,
        )
        return url

    async def check(self) -> None:
        """Raise ClientError/connection errors unless the bucket is reachable with these credentials."""
        await self._client.head_bucket(Bucket=self._bucket)

    async def create_bucket_if_missing(self) -> None:
        """Create the bucket unless it exists (local self-hosted setups and tests)."""
        try:
            # HEAD first: production credentials usually may read the bucket but not create buckets.
            await self._client.head_bucket(Bucket=self._bucket)
            return
        except ClientError as exc:
            if _error_code(exc) not in _BUCKET_MISSING:
                raise
        kwargs: dict[str, Any] = {"Bucket": self._bucket}
        if self._region != "us-east-1":
            # us-east-1 is the implicit default and rejects an explicit LocationConstraint.
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
        try:
            await self._client.create_bucket(**kwargs)
        except ClientError as exc:
            # Another process created it between our HEAD and CREATE.
            if _error_code(exc) != "BucketAlreadyOwnedByYou":
                raise


class S3Writer:
    """`ObjectWriter` over S3's multipart upload, holding at most one part (PART_BYTES) in memory.

    An object that ends before its first part is full is one PutObject at `commit`. A longer one starts
    CreateMultipartUpload when its first part is full and sends each full part with UploadPart (part numbers from 1,
    each at least 5 MiB but the last), and `commit` sends the rest as the last part and CompleteMultipartUpload with
    every part's number and ETag in ascending order; only then is the object visible. `abort` before the commit is
    AbortMultipartUpload (parts are uploaded one at a time and awaited, so no part upload is in flight to outlive
    it); after the commit, DeleteObject. A process that dies mid-upload leaves an incomplete upload that only a
    bucket lifecycle rule (AbortIncompleteMultipartUpload) removes.

    API: https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateMultipartUpload.html, API_UploadPart.html,
    API_CompleteMultipartUpload.html, API_AbortMultipartUpload.html (same folder); limits in the user guide's
    qfacts.html.
    """

    def __init__(self, client: Any, bucket: str, key: str, content_type: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._content_type = content_type
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._committed = False
        self._commit_sent = False  # a commit whose answer was lost may still have stored the object
        self._aborted = False

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._aborted or self._committed:
            raise RuntimeError("the writer is closed")
        self._buffer += data
        if len(self._buffer) >= PART_BYTES:
            if self._upload_id is None:
                created = await self._client.create_multipart_upload(
                    Bucket=self._bucket, Key=self._key, ContentType=self._content_type
                )
                self._upload_id = str(created["UploadId"])
            await self._send_part()

    async def _send_part(self) -> None:
        part, self._buffer = bytes(self._buffer), bytearray()
        number = len(self._parts) + 1
        sent = await self._client.upload_part(
            Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=part
        )
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    async def commit(self) -> None:
        if self._aborted or self._committed:
            raise RuntimeError("the writer is closed")
        self._commit_sent = True
        if self._upload_id is None:
            body, self._buffer = bytes(self._buffer), bytearray()
            await self._client.put_object(Bucket=self._bucket, Key=self._key, Body=body, ContentType=self._content_type)
        else:
            if self._buffer:
                await self._send_part()
            await self._client.complete_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
            )
        self._committed = True

    async def abort(self) -> None:
        if self._aborted:
            return
        self._aborted = True
        self._buffer = bytearray()
        if self._upload_id is not None and not self._committed:
            try:
                await self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)
            except ClientError as exc:
                if _error_code(exc) != "NoSuchUpload":  # completed after all (its answer was lost): deleted below
                    raise
        if self._commit_sent:
            await self._client.delete_object(Bucket=self._bucket, Key=self._key)

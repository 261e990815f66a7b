"""boto3 clients for the selected target, and object storage behind one small interface.

The CLI never branches on the target beyond this module: for the local target the same boto3 clients,
S3's included, talk to the local SageMaker server on 127.0.0.1.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.config import Config

from pipelines.settings import Settings


class Storage(Protocol):
    """The part of S3 the CLI uses."""

    def put_bytes(self, uri: str, data: bytes) -> str:
        """Store an object; return its version id."""

    def put_file(self, uri: str, path: Path) -> str:
        """Store a file's bytes as an object, read a part at a time; return its version id."""

    def exists(self, uri: str) -> bool: ...

    def has_objects(self, folder_uri: str) -> bool:
        """Whether any object lies below the folder (`<uri>/...`)."""

    def names_below(self, folder_uri: str) -> set[str]:
        """The keys of the objects below the folder (`<uri>/...`), relative to it."""

    def get_bytes(self, uri: str) -> bytes: ...


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


# A file over this goes up in parts of this size: one part in memory at a time, and no 5 GB limit
# of a single PutObject (S3 takes up to 10,000 parts).
PART_BYTES = 64 * 1024 * 1024


@dataclass
class S3Storage:
    client: Any
    part_bytes: int = PART_BYTES

    def put_bytes(self, uri: str, data: bytes) -> str:
        bucket, key = split_s3_uri(uri)
        response = self.client.put_object(Bucket=bucket, Key=key, Body=data)
        return str(response.get("VersionId", "null"))

    def put_file(self, uri: str, path: Path) -> str:
        """One PutObject streamed from the file, or a multipart upload over `part_bytes` (each part
        summed with CRC32, and the upload aborted if any step fails): the version id either way,
        which S3 answers only to the request that stores the object."""
        bucket, key = split_s3_uri(uri)
        if path.stat().st_size <= self.part_bytes:
            with path.open("rb") as body:
                response = self.client.put_object(Bucket=bucket, Key=key, Body=body)
            return str(response.get("VersionId", "null"))
        target = {"Bucket": bucket, "Key": key}
        upload_id = self.client.create_multipart_upload(**target, ChecksumAlgorithm="CRC32")["UploadId"]
        try:
            parts = []
            with path.open("rb") as source:
                for number in itertools.count(1):
                    chunk = source.read(self.part_bytes)
                    if not chunk:
                        break
                    sent = self.client.upload_part(
                        **target, UploadId=upload_id, PartNumber=number, Body=chunk, ChecksumAlgorithm="CRC32"
                    )
                    parts.append(
                        {"PartNumber": number, "ETag": sent["ETag"], "ChecksumCRC32": sent["ChecksumCRC32"]}
                    )
            response = self.client.complete_multipart_upload(
                **target, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self.client.abort_multipart_upload(**target, UploadId=upload_id)
            raise
        return str(response.get("VersionId", "null"))

    def get_bytes(self, uri: str) -> bytes:
        bucket, key = split_s3_uri(uri)
        return bytes(self.client.get_object(Bucket=bucket, Key=key)["Body"].read())

    def has_objects(self, folder_uri: str) -> bool:
        """False too when the bucket does not exist (yet: a local state before its first upload)."""
        bucket, key = split_s3_uri(folder_uri)
        try:
            listed = self.client.list_objects_v2(Bucket=bucket, Prefix=key.rstrip("/") + "/", MaxKeys=1)
        except self.client.exceptions.NoSuchBucket:
            return False
        return bool(listed.get("KeyCount"))

    def names_below(self, folder_uri: str) -> set[str]:
        bucket, key = split_s3_uri(folder_uri)
        prefix = key.rstrip("/") + "/"
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return {item["Key"][len(prefix):] for page in pages for item in page.get("Contents", [])}

    def exists(self, uri: str) -> bool:
        bucket, key = split_s3_uri(uri)
        try:
            self.client.head_object(Bucket=bucket, Key=key)
        except self.client.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True


class Clients:
    """Lazily created clients; for the local target the server is started on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def local_url(self) -> str:
        from pipelines.local.daemon import ensure_running

        return ensure_running(self.settings.state_path, self.settings.local_port)

    @cached_property
    def local_session(self) -> boto3.Session:
        """Signed with the keys the local server made for its state directory."""
        from pipelines.local.daemon import credentials

        keys = credentials(self.settings.state_path)
        return boto3.Session(region_name=self.settings.region, **keys.session_arguments())

    def _client(self, service: str) -> Any:
        config = Config(retries={"max_attempts": 3, "mode": "standard"})
        if not self.settings.is_local:
            return boto3.Session(region_name=self.settings.region).client(service, config=config)
        url = self.local_url  # started first: the server makes its keys at its first start
        return self.local_session.client(service, endpoint_url=url, config=config)

    @cached_property
    def sagemaker(self) -> Any:
        return self._client("sagemaker")

    @cached_property
    def runtime(self) -> Any:
        return self._client("sagemaker-runtime")

    @cached_property
    def events(self) -> Any:
        return self._client("events")

    @cached_property
    def scheduler(self) -> Any:
        return self._client("scheduler")

    @cached_property
    def lambda_(self) -> Any:
        return self._client("lambda")

    @cached_property
    def logs(self) -> Any:
        return self._client("logs")

    @cached_property
    def s3(self) -> Any:
        return self._client("s3")

    @cached_property
    def storage(self) -> Storage:
        return S3Storage(self.s3)


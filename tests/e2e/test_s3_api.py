"""S3's reads through a real server process and boto3's S3 client, as any SDK given `local env`
reads the local store: paging and versions; and S3's refusals of unsigned and wrongly signed
requests, in its XML."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import boto3
import pytest
from botocore.exceptions import ClientError

from pipelines.local import daemon
from pipelines.local.workspace import object_store

pytestmark = pytest.mark.e2e
HOST = "127.0.0.1"


def s3(state: Path, secret: str | None = None) -> Any:
    keys = daemon.credentials(state)
    return boto3.Session(
        region_name="us-east-1", aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=secret or keys.secret_access_key,
    ).client("s3", endpoint_url=daemon.ensure_running(state))


def raw(state: Path, method: str, path: str) -> tuple[int, bytes]:
    port = int(json.loads((state / "server.json").read_text())["port"])
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_an_sdk_reads_pages_and_versions_of_the_local_store(state: Path) -> None:
    store = object_store(state)
    for number in range(7):
        store.put_bytes(f"s3://e2e/run/part-{number}.csv", b"x" * number)
    first = store.put_bytes("s3://e2e/run/model.tar.gz", b"first model")
    store.put_bytes("s3://e2e/run/model.tar.gz", b"second model, longer")
    client = s3(state)

    pages = list(client.get_paginator("list_objects_v2").paginate(
        Bucket="e2e", Prefix="run/", PaginationConfig={"PageSize": 3}))
    assert [len(page["Contents"]) for page in pages] == [3, 3, 2]
    listed = {item["Key"]: item["Size"] for page in pages for item in page["Contents"]}
    assert listed == {**{f"run/part-{n}.csv": n for n in range(7)}, "run/model.tar.gz": 20}

    current = client.get_object(Bucket="e2e", Key="run/model.tar.gz")
    assert (current["Body"].read(), current["ContentLength"]) == (b"second model, longer", 20)
    head = client.head_object(Bucket="e2e", Key="run/model.tar.gz")
    assert (head["ContentLength"], head["VersionId"], head["ETag"]) == (
        20, current["VersionId"], current["ETag"])
    older = client.get_object(Bucket="e2e", Key="run/model.tar.gz", VersionId=first)
    assert (older["Body"].read(), older["VersionId"]) == (b"first model", first)
    part = client.get_object(Bucket="e2e", Key="run/model.tar.gz", Range="bytes=0-5")
    assert part["Body"].read() == b"second"


def test_a_write_is_refused_and_writes_nothing(state: Path) -> None:
    client = s3(state)
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket="e2e", Key="run/written.txt", Body=b"data")
    assert refused.value.response["Error"]["Code"] == "UnknownOperationException"
    assert not object_store(state).exists("s3://e2e/run/written.txt")


def test_a_wrongly_signed_request_is_refused_in_s3s_words(state: Path) -> None:
    object_store(state).put_bytes("s3://e2e/secret.txt", b"not for you")
    with pytest.raises(ClientError) as refused:
        s3(state, secret="not-the-secret").get_object(Bucket="e2e", Key="secret.txt")
    error = refused.value.response
    assert (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]) == (
        403, "SignatureDoesNotMatch")


def test_an_unsigned_request_is_refused_in_s3s_words(state: Path) -> None:
    object_store(state).put_bytes("s3://e2e/secret.txt", b"not for you")
    status, body = raw(state, "GET", "/e2e/secret.txt")
    document = ElementTree.fromstring(body)
    assert (status, document.tag, document.findtext("Code")) == (403, "Error", "AccessDenied")
    assert b"not for you" not in body
    assert raw(state, "HEAD", "/e2e/secret.txt") == (403, b"")

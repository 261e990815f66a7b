"""S3 through a real server process and boto3's S3 client, as any SDK given `local env` reaches the
local store: a bucket created, and kept with its creation date across a restart; paging and
versions; puts, a large one streamed to disk as it arrives, a larger file uploaded in parts, digests and
headers refused; headers and user metadata kept per version; a large get sent from its file; an
object stored before versions kept records; and S3's refusals of unsigned and wrongly signed
requests, in its XML; a presigned URL's read and write, until it expires."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError

from pipelines.local import daemon
from pipelines.local.layout import StateLayout
from pipelines.local.storage.object_records import record_path
from pipelines.local.storage.objects import ObjectStore

pytestmark = pytest.mark.e2e
HOST = "127.0.0.1"
API_BODY_LIMIT = 64 * 1024 * 1024  # what other operations may send (server.py)


def s3(state: Path, secret: str | None = None, token: str | None = None) -> Any:
    keys = daemon.credentials(state)
    return boto3.Session(
        region_name="us-east-1", aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=secret or keys.secret_access_key, aws_session_token=token,
    ).client("s3", endpoint_url=daemon.ensure_running(state))


def store(state: Path) -> ObjectStore:
    return ObjectStore(StateLayout(state).objects)


@pytest.fixture(scope="module", autouse=True)
def bucket(state: Path) -> None:
    """The bucket the tests here put into, created as any SDK creates one."""
    s3(state).create_bucket(Bucket="e2e")


def connect(state: Path) -> http.client.HTTPConnection:
    port = int(json.loads((state / "server.json").read_text())["port"])
    return http.client.HTTPConnection(HOST, port, timeout=30)


def raw(state: Path, method: str, path: str) -> tuple[int, bytes]:
    status, _, body = exchange(state, method, path, {})
    return status, body


def exchange(
    state: Path, method: str, path: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    """One request on a connection of its own: the answer's status, headers and body."""
    connection = connect(state)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


class DeclaredPayload(S3SigV4Auth):
    """S3's signature over the payload hash given, whatever body follows."""

    def __init__(self, state: Path, sha256: str) -> None:
        keys = daemon.credentials(state)
        super().__init__(BotoCredentials(keys.access_key_id, keys.secret_access_key), "s3", "us-east-1")
        self.declared = sha256

    def payload(self, request: AWSRequest) -> str:
        return self.declared


def signed_put(state: Path, path: str, length: int, sha256: str, headers: dict[str, str]) -> dict[str, str]:
    """The headers of a PUT signed as S3 signs it, over the payload hash it declares."""
    port = json.loads((state / "server.json").read_text())["port"]
    request = AWSRequest(method="PUT", url=f"http://{HOST}:{port}{path}",
                         headers={"Content-Length": str(length), **headers})
    DeclaredPayload(state, sha256).add_auth(request)
    return {"Host": f"{HOST}:{port}", **dict(request.headers.items())}


def send_head(connection: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> None:
    connection.putrequest("PUT", path, skip_host=True, skip_accept_encoding=True)
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()


def test_a_bucket_and_its_creation_date_outlive_the_server(state: Path) -> None:
    client = s3(state)
    with pytest.raises(ClientError) as missing:
        client.put_object(Bucket="e2e-kept", Key="k", Body=b"x")
    assert missing.value.response["Error"]["Code"] == "NoSuchBucket"
    assert client.create_bucket(Bucket="e2e-kept")["Location"] == "/e2e-kept"
    created = {b["Name"]: b["CreationDate"] for b in client.list_buckets()["Buckets"]}["e2e-kept"]
    client.put_object(Bucket="e2e-kept", Key="k", Body=b"x")
    daemon.stop(state)
    client = s3(state)  # a new server on the same state
    assert {b["Name"]: b["CreationDate"] for b in client.list_buckets()["Buckets"]}["e2e-kept"] == created
    head = client.head_bucket(Bucket="e2e-kept")["ResponseMetadata"]["HTTPHeaders"]
    assert head["x-amz-bucket-region"] == "us-east-1"
    assert client.get_object(Bucket="e2e-kept", Key="k")["Body"].read() == b"x"


def test_an_sdk_reads_pages_and_versions_of_the_local_store(state: Path) -> None:
    client = s3(state)
    for number in range(7):
        client.put_object(Bucket="e2e", Key=f"run/part-{number}.csv", Body=b"x" * number)
    first = client.put_object(Bucket="e2e", Key="run/model.tar.gz", Body=b"first model")["VersionId"]
    client.put_object(Bucket="e2e", Key="run/model.tar.gz", Body=b"second model, longer")

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


def test_a_body_larger_than_any_api_document_goes_to_the_store(state: Path) -> None:
    body = bytes(range(256)) * (API_BODY_LIMIT // 256 + 40_000)  # ~74 MB
    client = s3(state)
    put = client.put_object(Bucket="e2e", Key="large/body.bin", Body=body)
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert store(state).versions("s3://e2e/large/body.bin") == [put["VersionId"]]
    head = client.head_object(Bucket="e2e", Key="large/body.bin")
    assert (head["ContentLength"], head["ETag"]) == (len(body), put["ETag"])
    assert store(state).path_for("s3://e2e/large/body.bin").read_bytes() == body


def test_boto3s_managed_upload_sends_a_large_file_in_parts_and_it_comes_back_whole(
    state: Path, tmp_path: Path
) -> None:
    """`upload_file` as the SageMaker SDK calls it: over 8 MB, parts sent side by side on their
    own connections, then completed; the download reads it back in ranges."""
    data = bytes(range(256)) * (20 * 1024 * 1024 // 256) + b"tail"
    source, copy = tmp_path / "reviews.csv", tmp_path / "copy.csv"
    source.write_bytes(data)
    client = s3(state)
    client.upload_file(str(source), "e2e", "datasets/reviews.csv")
    head = client.head_object(Bucket="e2e", Key="datasets/reviews.csv")
    assert (head["ContentLength"], head["ETag"].endswith('-3"')) == (len(data), True)  # 8 MB parts
    client.download_file("e2e", "datasets/reviews.csv", str(copy))
    assert copy.read_bytes() == data
    in_progress = client.list_multipart_uploads(Bucket="e2e")
    assert "Uploads" not in in_progress


def test_a_body_is_written_to_disk_while_it_arrives(state: Path) -> None:
    """Half a body sent: the server has already put that half on disk, not in its memory."""
    half = 12 * 1024 * 1024
    body = b"a" * half + b"b" * half
    path = "/e2e/streamed.bin"
    headers = signed_put(state, path, len(body), hashlib.sha256(body).hexdigest(), {})
    staging = StateLayout(state).objects / ".tmp"
    connection = connect(state)
    try:
        send_head(connection, path, headers)
        connection.send(body[:half])
        deadline = time.monotonic() + 20
        while sum(p.stat().st_size for p in staging.glob("*")) < half and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sum(p.stat().st_size for p in staging.glob("*")) == half
        assert not store(state).exists("s3://e2e/streamed.bin")  # nothing stored before the end
        connection.send(body[half:])
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"")
        assert response.getheader("ETag") == f'"{hashlib.md5(body).hexdigest()}"'
    finally:
        connection.close()
    assert store(state).path_for("s3://e2e/streamed.bin").read_bytes() == body


def test_headers_and_user_metadata_go_and_come_back_with_each_version(state: Path) -> None:
    client = s3(state)
    first = client.put_object(Bucket="e2e", Key="kept/report.html", Body=b"<p>", ContentType="text/html",
                              CacheControl="no-store", Metadata={"Run-Id": "42"})
    second = client.put_object(Bucket="e2e", Key="kept/report.html", Body=b"plain")
    older = client.head_object(Bucket="e2e", Key="kept/report.html", VersionId=first["VersionId"])
    assert (older["ContentType"], older["CacheControl"], older["Metadata"]) == ("text/html", "no-store",
                                                                                {"run-id": "42"})
    current = client.get_object(Bucket="e2e", Key="kept/report.html", ResponseContentDisposition="inline")
    assert (current["Body"].read(), current["ContentType"], current["Metadata"]) == (
        b"plain", "binary/octet-stream", {})
    assert (current["VersionId"], current["ContentDisposition"]) == (second["VersionId"], "inline")
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket="e2e", Key="kept/report.html", Body=b"x", Metadata={"big": "x" * 2048})
    error = refused.value.response["Error"]
    assert (error["Code"], error["Size"], error["MaxSizeAllowed"]) == ("MetadataTooLarge", "2051", "2048")


class Pattern:
    """`size` bytes of a repeating pattern, handed out as asked and digested on the way."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.md5 = hashlib.md5()

    def read(self, size: int) -> bytes:
        chunk = (bytes(range(256)) * (size // 256 + 1))[: min(size, self.left)]
        self.left -= len(chunk)
        self.md5.update(chunk)
        return chunk


def test_a_large_object_is_sent_from_its_file_as_it_is_read(state: Path) -> None:
    """The end of the version's file is changed once the first megabyte has arrived: a server that
    reads the file as it sends (and holds a chunk of it, not the object) sends the changed end."""
    size = 64 * 1024 * 1024  # far more than the socket buffers between server and client
    source = Pattern(size)
    objects = store(state)
    objects.put_stream("s3://e2e/large/out.bin", source, lambda: None, {})
    client = s3(state)
    got = client.get_object(Bucket="e2e", Key="large/out.bin")
    chunks = got["Body"].iter_chunks(1 << 20)
    first = next(chunks)
    with objects.describe("s3://e2e/large/out.bin").path.open("r+b") as stored:
        stored.seek(size - 4)
        stored.write(b"TAIL")
    rest = b"".join(chunks)
    assert len(first) + len(rest) == size and rest.endswith(b"TAIL")
    head = client.head_object(Bucket="e2e", Key="large/out.bin")
    assert got["ETag"] == head["ETag"] == f'"{source.md5.hexdigest()}"'


def test_an_object_stored_before_versions_kept_records_is_still_served(state: Path) -> None:
    objects = store(state)
    objects.put_bytes("s3://e2e/old/format.txt", b"stored long ago")
    record_path(objects.describe("s3://e2e/old/format.txt").path).unlink()
    client = s3(state)
    etags = {client.get_object(Bucket="e2e", Key="old/format.txt")["ETag"] for _ in range(2)}
    assert etags == {f'"{hashlib.md5(b"stored long ago").hexdigest()}"'}
    assert client.get_object(Bucket="e2e", Key="old/format.txt")["Body"].read() == b"stored long ago"


def test_a_body_unlike_its_signed_hash_is_refused_and_stores_nothing(state: Path) -> None:
    path = "/e2e/tampered.bin"
    headers = signed_put(state, path, 8, hashlib.sha256(b"expected").hexdigest(), {})
    connection = connect(state)
    try:
        send_head(connection, path, headers)
        connection.send(b"tampered")
        response = connection.getresponse()
        document = ElementTree.fromstring(response.read())
    finally:
        connection.close()
    assert (response.status, document.findtext("Code")) == (400, "XAmzContentSHA256Mismatch")
    assert document.findtext("S3ComputedContentSHA256") == hashlib.sha256(b"tampered").hexdigest()
    assert not store(state).exists("s3://e2e/tampered.bin")


def test_a_wrong_content_md5_is_refused_and_stores_nothing(state: Path) -> None:
    client = s3(state)
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket="e2e", Key="md5/checked.txt", Body=b"data", ContentMD5=wrong)
    error = refused.value.response
    assert (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]) == (400, "BadDigest")
    assert not store(state).exists("s3://e2e/md5/checked.txt")


def test_a_refused_header_is_answered_before_the_body_is_sent(state: Path) -> None:
    """With `Expect: 100-continue` the client sends its body only when told to: a PUT refused for
    a header is answered without it, as boto3 then sends none."""
    path = "/e2e/tagged.bin"
    length = 50 * 1024 * 1024
    headers = signed_put(state, path, length, "UNSIGNED-PAYLOAD",
                         {"Expect": "100-continue", "x-amz-tagging": "team=ml"})
    connection = connect(state)
    try:
        send_head(connection, path, headers)  # and no body
        response = connection.getresponse()
        document = ElementTree.fromstring(response.read())
    finally:
        connection.close()
    assert (response.status, document.findtext("Code"), document.findtext("Header")) == (
        501, "NotImplemented", "x-amz-tagging")
    with pytest.raises(ClientError) as refused:
        s3(state).put_object(Bucket="e2e", Key="tagged.bin", Body=b"data", Tagging="team=ml")
    assert refused.value.response["Error"]["Code"] == "NotImplemented"
    assert not store(state).exists("s3://e2e/tagged.bin")


def test_a_wrongly_signed_request_is_refused_in_s3s_words(state: Path) -> None:
    store(state).put_bytes("s3://e2e/secret.txt", b"not for you")
    with pytest.raises(ClientError) as refused:
        s3(state, secret="not-the-secret").get_object(Bucket="e2e", Key="secret.txt")
    error = refused.value.response
    assert (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]) == (
        403, "SignatureDoesNotMatch")


def test_a_client_set_to_another_region_is_told_this_ones_and_signs_for_it_again(state: Path) -> None:
    """boto3's S3 client retries in the region S3's refusal names (AuthorizationHeaderMalformed with a
    Region, and x-amz-bucket-region on a HEAD), as it does against AWS."""
    store(state).put_bytes("s3://e2e/elsewhere.txt", b"found")
    keys = daemon.credentials(state)
    elsewhere = boto3.Session(
        region_name="eu-west-1", aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
    ).client("s3", endpoint_url=daemon.ensure_running(state))

    assert elsewhere.get_object(Bucket="e2e", Key="elsewhere.txt")["Body"].read() == b"found"
    assert elsewhere.head_object(Bucket="e2e", Key="elsewhere.txt")["ContentLength"] == 5
    port = json.loads((state / "server.json").read_text())["port"]
    request = AWSRequest(method="GET", url=f"http://{HOST}:{port}/e2e/elsewhere.txt")
    signer = S3SigV4Auth(BotoCredentials(keys.access_key_id, keys.secret_access_key), "s3", "eu-west-1")
    signer.add_auth(request)
    status, headers, body = exchange(state, "GET", "/e2e/elsewhere.txt", dict(request.headers.items()))
    document = ElementTree.fromstring(body)
    assert (status, document.findtext("Code"), document.findtext("Region")) == (
        400, "AuthorizationHeaderMalformed", "us-east-1")
    assert headers["x-amz-bucket-region"] == "us-east-1"


def test_a_session_token_or_an_unknown_key_is_refused_in_s3s_words(state: Path) -> None:
    """The server's keys are long-term keys: S3 refuses a session token sent with such a key."""
    store(state).put_bytes("s3://e2e/secret.txt", b"not for you")
    keys = daemon.credentials(state)
    stranger = boto3.Session(
        region_name="us-east-1", aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key=keys.secret_access_key,
    ).client("s3", endpoint_url=daemon.ensure_running(state))
    refusals = []
    for client in (s3(state, token="FwoGZXIvYXdzEXAMPLE"), stranger):
        with pytest.raises(ClientError) as refused:
            client.get_object(Bucket="e2e", Key="secret.txt")
        error = refused.value.response
        refusals.append((error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"],
                         error["Error"]["Message"]))
    assert refusals == [
        (400, "InvalidToken", "The provided token is malformed or otherwise invalid."),
        (403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."),
    ]


def test_an_unsigned_request_is_refused_in_s3s_words(state: Path) -> None:
    store(state).put_bytes("s3://e2e/secret.txt", b"not for you")
    status, body = raw(state, "GET", "/e2e/secret.txt")
    document = ElementTree.fromstring(body)
    assert (status, document.tag, document.findtext("Code")) == (403, "Error", "AccessDenied")
    assert b"not for you" not in body
    assert raw(state, "HEAD", "/e2e/secret.txt") == (403, b"")
    for method in ("PUT", "DELETE"):  # as `aws s3 cp/rm --no-sign-request` send them
        status, body = raw(state, method, "/e2e/secret.txt")
        assert (status, ElementTree.fromstring(body).findtext("Code")) == (403, "AccessDenied"), method
    assert store(state).get_bytes("s3://e2e/secret.txt") == b"not for you"


def test_a_presigned_url_reads_and_writes_one_object_until_it_expires(state: Path) -> None:
    """What `aws s3 presign` and generate_presigned_url hand to code without the keys: signed in the
    query, sent by a plain HTTP client."""
    keys = daemon.credentials(state)
    signer = boto3.Session(
        region_name="us-east-1", aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
    ).client("s3", endpoint_url=daemon.ensure_running(state), config=Config(signature_version="s3v4"))
    put_url = signer.generate_presigned_url("put_object", Params={"Bucket": "e2e", "Key": "shared/in.csv"})
    request = urllib.request.Request(put_url, data=b"review,label\n", method="PUT")
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200
    get_url = signer.generate_presigned_url(
        "get_object", Params={"Bucket": "e2e", "Key": "shared/in.csv", "ResponseContentType": "text/csv"}
    )
    with urllib.request.urlopen(get_url, timeout=30) as answer:
        assert (answer.read(), answer.headers["Content-Type"]) == (b"review,label\n", "text/csv")
    other_key = get_url.replace("shared/in.csv", "secret.txt")
    expired = signer.generate_presigned_url("get_object", Params={"Bucket": "e2e", "Key": "shared/in.csv"},
                                            ExpiresIn=1)
    time.sleep(1.5)
    for url, code in ((other_key, "SignatureDoesNotMatch"), (expired, "AccessDenied")):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=30)
        document = ElementTree.fromstring(refused.value.read())
        assert (refused.value.code, document.findtext("Code")) == (403, code)


def ids_of(headers: dict[str, str]) -> tuple[str, str]:
    """An S3 answer's request and host ids, checked to be in S3's forms."""
    request_id, host_id = headers["x-amz-request-id"], headers["x-amz-id-2"]
    assert len(request_id) == 16 and request_id == request_id.upper() and int(request_id, 16) >= 0
    assert len(base64.b64decode(host_id, validate=True)) == 48
    return request_id, host_id


def test_every_s3_answer_carries_s3s_request_and_host_ids_and_an_error_repeats_them(state: Path) -> None:
    """S3 answers every operation with x-amz-request-id and x-amz-id-2, which botocore reads as
    RequestId and HostId; its error document ends with the same two."""
    client = s3(state)
    put = client.put_object(Bucket="e2e", Key="ids.txt", Body=b"identified")["ResponseMetadata"]
    assert (put["RequestId"], put["HostId"]) == ids_of(put["HTTPHeaders"])
    assert "x-amzn-requestid" not in put["HTTPHeaders"]  # SageMaker's JSON APIs' header, not S3's

    with pytest.raises(ClientError) as missing:
        client.get_object(Bucket="e2e", Key="no-such-ids.txt")
    metadata = missing.value.response["ResponseMetadata"]
    assert (metadata["RequestId"], metadata["HostId"]) == ids_of(metadata["HTTPHeaders"])

    status, headers, body = exchange(state, "GET", "/e2e/ids.txt", {})  # unsigned: the door's refusal
    document = ElementTree.fromstring(body)
    assert status == 403 and [child.tag for child in document][-2:] == ["RequestId", "HostId"]
    assert (document.findtext("RequestId"), document.findtext("HostId")) == ids_of(headers)
    status, headers, body = exchange(state, "HEAD", "/e2e/ids.txt", {})
    assert (status, body) == (403, b"") and ids_of(headers)

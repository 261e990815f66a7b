"""A Lambda function's code from the request's zip or from an object in the local S3, as the
SDK's Lambda helper uploads a larger package; a container image is refused."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from buckets import with_buckets

from pipelines.local.api.protocol import Dispatcher
from pipelines.local.service.backend import LocalSageMaker

from .world import ROLE, function_settled
from .world import lambda_call as call


def package(answer: str) -> bytes:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive:
        archive.writestr("app.py", f"def handler(event, context):\n    return {answer!r}\n")
    return raw.getvalue()


def sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Dispatcher, LocalSageMaker]]:
    backend = LocalSageMaker(tmp_path / "state", "us-east-1", "http://127.0.0.1:1")
    yield Dispatcher(backend, check_responses=True), backend
    backend.shutdown()


def test_code_is_read_from_the_s3_object_and_version_named(served: tuple[Dispatcher, LocalSageMaker]) -> None:
    dispatcher, backend = served
    store = with_buckets(backend.context.store, "code")
    first, second = package("first"), package("second")
    store.put_bytes("s3://code/fn.zip", first)
    first_version = store.versions("s3://code/fn.zip")[-1]
    store.put_bytes("s3://code/fn.zip", second)

    status, created = call(dispatcher, "CreateFunction", FunctionName="f", Runtime="python3.12", Role=ROLE,
                           Handler="app.handler", Code={"S3Bucket": "code", "S3Key": "fn.zip",
                                                        "S3ObjectVersion": first_version})
    assert (status, created["CodeSha256"]) == (201, sha(first))
    function_settled(backend.functions, "f")
    assert backend.functions.invoke("f", {}).payload == "first"

    status, updated = call(dispatcher, "UpdateFunctionCode", FunctionName="f", S3Bucket="code",
                           S3Key="fn.zip")
    assert (status, updated["CodeSha256"]) == (200, sha(second))
    function_settled(backend.functions, "f")  # until then invocations run the first code
    assert backend.functions.invoke("f", {}).payload == "second"


@pytest.mark.parametrize(
    ("code", "error", "message"),
    [
        ({"S3Bucket": "code", "S3Key": "missing.zip"}, "InvalidParameterValueException",
         "S3 Error Code: NoSuchKey"),
        ({"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/fn:1"}, "InvalidParameterValueException",
         "the local Lambda runs .zip packages, not container images"),
    ],
)
def test_code_that_cannot_be_read_is_refused(
    served: tuple[Dispatcher, LocalSageMaker], code: dict[str, str], error: str, message: str
) -> None:
    dispatcher, _ = served
    status, body = call(dispatcher, "CreateFunction", FunctionName="f", Runtime="python3.12", Role=ROLE,
                        Handler="app.handler", Code=code)
    assert (status, body["__type"]) == (400, error), body
    assert message in body["message"]
    assert call(dispatcher, "GetFunction", FunctionName="f")[0] == 404

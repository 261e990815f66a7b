"""boto3 clients whose requests go straight to a Dispatcher in this process: no server, no socket.

botocore builds, signs and serializes each request as it would for AWS, and parses the reply as
it would AWS's; only the HTTP exchange is replaced (by a `before-send` handler). So these clients
exercise the wire protocol, the shape checks and the service together, fast enough to run
hundreds of calls in a test.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.config import Config

from pipelines.local.api.protocol import Dispatcher

URL = "http://local-sagemaker.invalid"
# The Dispatcher is behind the server's door, which checks signatures: any keys sign here.
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class HTTPHeaders(dict[str, str]):
    """Header names match whatever their case, as in HTTP."""

    def __init__(self, headers: Mapping[str, str | bytes]) -> None:
        super().__init__(
            {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in headers.items()}
        )

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)


class _Raw:
    """The part of urllib3's response botocore reads: whole, or as a stream."""

    def __init__(self, body: bytes | Iterable[bytes]) -> None:
        self._body = io.BytesIO(body if isinstance(body, bytes) else b"".join(body))

    def stream(self, amt: int = 1024, decode_content: bool = False) -> Iterator[bytes]:
        while chunk := self._body.read(amt):
            yield chunk

    def read(self, amt: int | None = None, decode_content: bool = False) -> bytes:
        return self._body.read(amt)


def client(
    dispatcher: Dispatcher, service: str, region: str = "us-east-1", config: Config | None = None
) -> Any:
    """A boto3 client of `service` ("sagemaker", "sagemaker-runtime", "lambda", "events", "s3"; S3
    path-style, as an SDK addresses a server by IP address) in `region`, the dispatcher's; `config`
    adds to botocore's configuration."""
    base = Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"})
    made = boto3.Session(region_name=region, **KEYS).client(
        service, endpoint_url=URL, config=base.merge(config) if config is not None else base,
    )

    def send(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        elif not isinstance(body, bytes):
            body = body.read()
        headers = HTTPHeaders(dict(request.headers.items()))
        url = urlsplit(request.url)
        target = f"{url.path}?{url.query}" if url.query else url.path
        reply = dispatcher.route(request.method, target, headers, body)
        answer = {"Content-Type": reply.content_type, **reply.headers}
        if reply.length is not None:  # declared ahead, as the server does (a HEAD's, a streamed body's)
            answer["Content-Length"] = str(reply.length)
        return AWSResponse(request.url, reply.status, answer, _Raw(reply.body))

    made.meta.events.register("before-send", send)
    return made

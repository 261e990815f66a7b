"""The local server's own AWS credentials: made once per state directory, readable by its owner only.

The server verifies every request's Signature Version 4 against them; every client of the local
target (the CLI, the deploy Lambda, tests, `local env`) signs with them. A file created with mode
0600 under a 0700 directory keeps other users of the machine, and web pages, from calling the API.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

KEY_ID_PREFIX = "LOCAL"
_KEY_ID_ALPHABET = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str

    def session_arguments(self) -> dict[str, str]:
        """Keyword arguments of `boto3.Session`."""
        return {"aws_access_key_id": self.access_key_id, "aws_secret_access_key": self.secret_access_key}

    def environment(self) -> dict[str, str]:
        """The variables every AWS SDK reads its static credentials from."""
        return {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}


def generate() -> Credentials:
    """An access key id shaped like AWS's (20 characters) and a 40-character secret."""
    suffix = "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(20 - len(KEY_ID_PREFIX)))
    return Credentials(KEY_ID_PREFIX + suffix, secrets.token_urlsafe(30))


def load(path: Path) -> Credentials:
    """The credentials stored at `path` (OSError if absent, ValueError if malformed)."""
    document = json.loads(path.read_text())
    if not isinstance(document, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return Credentials(str(document["aws_access_key_id"]), str(document["aws_secret_access_key"]))


def load_or_create(path: Path) -> Credentials:
    """The stored credentials, made and written (mode 0600, atomically) on first use."""
    try:
        return load(path)
    except FileNotFoundError:
        pass
    created = generate()
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(
            {"aws_access_key_id": created.access_key_id, "aws_secret_access_key": created.secret_access_key},
            handle,
        )
    os.replace(staging, path)
    return created


# Service-specific endpoint variables, read by every current AWS SDK and the AWS CLI; each names the
# local server, which answers the operations of those services that the project uses (README).
ENDPOINT_VARIABLES = (
    "AWS_ENDPOINT_URL_SAGEMAKER",
    "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
    "AWS_ENDPOINT_URL_LAMBDA",
    "AWS_ENDPOINT_URL_EVENTBRIDGE",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS",
    "AWS_ENDPOINT_URL_SCHEDULER",
)


def sdk_environment(url: str, region: str, credentials: Credentials) -> dict[str, str]:
    """The environment with which an AWS SDK's SageMaker, runtime, Lambda, EventBridge, S3,
    CloudWatch Logs and EventBridge Scheduler clients reach the local server at `url`, signed with
    `credentials`."""
    return {
        **dict.fromkeys(ENDPOINT_VARIABLES, url),
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        **credentials.environment(),
    }

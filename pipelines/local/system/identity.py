"""Who the local SageMaker says it is: its account id and ARNs."""

from __future__ import annotations

import hashlib

ACCOUNT = "000000000000"
# S3's canonical user id of the account, which ListBuckets names as the owner: 64 hex digits.
CANONICAL_USER_ID = hashlib.sha256(f"canonical-user:{ACCOUNT}".encode()).hexdigest()


def arn(service: str, region: str, resource: str) -> str:
    """An ARN in the local account, e.g. arn("sagemaker", "us-east-1", "pipeline/name")."""
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{resource}"

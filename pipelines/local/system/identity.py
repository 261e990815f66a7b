"""Who the local SageMaker says it is: its account id and ARNs."""

from __future__ import annotations

ACCOUNT = "000000000000"


def arn(service: str, region: str, resource: str) -> str:
    """An ARN in the local account, e.g. arn("sagemaker", "us-east-1", "pipeline/name")."""
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{resource}"

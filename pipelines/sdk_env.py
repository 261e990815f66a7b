"""Environment the SageMaker Python SDK needs before it is imported.

Importing `sagemaker.mlops` creates boto3 clients (so a region must be set), and `ModelTrainer` asks
IAM to simulate the role's policy. Building a pipeline definition must work offline with no
credentials, so both are settled here, once, without overriding anything the user set explicitly.
(The SDK's telemetry follows the user's own SDK config file; offline it gives up after 2 seconds.)

Building one definition, the SDK makes some thirty boto3 sessions, each of which would parse the
service models (megabytes of JSON) afresh; they share one botocore loader instead, which cuts the
build by more than half. The loader only reads and caches the model files botocore ships.
"""

import os
from functools import cache

import botocore.loaders
import botocore.session


def sdk_environment() -> dict[str, str]:
    """The variables as the SDK sees them once prepare_sdk_environment has run (before or after
    it runs: the definition cache keys on this view, whether or not the SDK is loaded yet)."""
    defaults = {
        "AWS_DEFAULT_REGION": os.environ.get("AWS_REGION", "us-east-1"),
        # The role is checked by SageMaker when a job starts; a definition is only a document.
        "SAGEMAKER_VALIDATE_ROLE": "false",
    }
    return {**defaults, **os.environ}


def prepare_sdk_environment() -> None:
    for name, value in sdk_environment().items():
        os.environ.setdefault(name, value)
    if botocore.session.create_loader is not _shared_loader:
        botocore.session.create_loader = _shared_loader


@cache
def _shared_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
    """One botocore loader per data path for every session of this process."""
    return botocore.loaders.create_loader(search_path_string)

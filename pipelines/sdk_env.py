"""Environment the SageMaker Python SDK needs before it is imported.

Importing `sagemaker.mlops` creates boto3 clients (so a region must be set), and `ModelTrainer` asks
IAM to simulate the role's policy. Building a pipeline definition must work offline with no
credentials, so both are settled here, once, without overriding anything the user set explicitly.
(The SDK's telemetry follows the user's own SDK config file; offline it gives up after 2 seconds.)
"""

import os


def prepare_sdk_environment() -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))
    # The role is checked by SageMaker when a job starts; a definition is only a document.
    os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")

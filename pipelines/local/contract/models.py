"""The service models installed with botocore: the same shapes the AWS SDKs are generated from."""

from __future__ import annotations

from functools import cache

import botocore.session
from botocore.model import OperationModel, ServiceModel


@cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@cache
def service_model(service: str) -> ServiceModel:
    """e.g. service_model("sagemaker"), "sagemaker-runtime", "lambda", "events"."""
    return _session().get_service_model(service)


def operation_model(service: str, operation: str) -> OperationModel:
    return service_model(service).operation_model(operation)

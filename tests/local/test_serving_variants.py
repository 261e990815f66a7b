"""What an endpoint config's variants become for local hosting: each production variant's model,
weights and its own startup health-check limit."""

from __future__ import annotations

from typing import Any

from pipelines.local.hosting.model_process import HEALTH_TIMEOUT_SECONDS, VariantSpec
from pipelines.local.service.serving import Serving

CONTAINER = {"Image": "i", "ModelDataUrl": "s3://b/model.tar.gz", "Environment": {"K": "v"}}


class Records:
    def __init__(self) -> None:
        self.changes: list[dict[str, Any]] = []

    def model(self, name: str) -> dict[str, Any]:
        return {"ModelName": name, "PrimaryContainer": CONTAINER}

    def model_package(self, arn: str) -> dict[str, Any] | None:
        return None

    def set_endpoint(self, name: str, **changes: Any) -> None:
        self.changes.append(changes)


class RecordingEndpoints:
    def __init__(self) -> None:
        self.variants: list[VariantSpec] = []

    def deploy(self, name: str, deployment: str, variants: list[VariantSpec], *rest: Any) -> None:
        self.variants = variants


def test_each_variant_keeps_its_own_startup_health_check_timeout() -> None:
    endpoints = RecordingEndpoints()
    config = {"EndpointConfigName": "c", "ProductionVariants": [
        {"VariantName": "Slow", "ModelName": "m", "ContainerStartupHealthCheckTimeoutInSeconds": 600,
         "InitialVariantWeight": 2.0},
        {"VariantName": "Default", "ModelName": "m"},
    ]}

    Serving(Records(), endpoints).deploy("ep", config)  # type: ignore[arg-type]

    slow, default = endpoints.variants
    assert (slow.variant_name, slow.health_timeout, slow.initial_weight) == ("Slow", 600.0, 2.0)
    assert (default.health_timeout, default.model_data_url) == (HEALTH_TIMEOUT_SECONDS, "s3://b/model.tar.gz")
    assert default.environment == {"K": "v"}

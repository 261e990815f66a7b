"""Endpoints as SageMaker describes them, backed by the model server processes of `hosting`.

This is the glue between API records (models, endpoint configs, endpoints) and the processes: it
turns an endpoint config into variant specs, records each hosting outcome on the endpoint, and
brings endpoints back after a restart. It sees the records only through `Records`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any, Protocol

from pipelines.local.errors import ServiceError
from pipelines.local.hosting.endpoints import (
    CaptureSpec,
    EndpointBusy,
    EndpointNotReady,
    Endpoints,
    InvokeResult,
    VariantNotFound,
    VariantSpec,
)
from pipelines.local.hosting.model_process import HEALTH_TIMEOUT_SECONDS, INSTANCE_PROCESSES, RANDOM
from pipelines.local.jobs.image_python import image_digest
from pipelines.local.storage.database import Body
from pipelines.local.system.instance_types import INSTANCES, Instance
from steps.integrity import DIGEST_KEY

# InvokeEndpoint parameters that address parts or features only other kinds of endpoint have:
# parameter -> (that kind of endpoint, what SageMaker calls the parameter in its refusal).
ROUTING_FOR_OTHER_ENDPOINTS = {
    "TargetModel": ("a multi-model endpoint", "target model header"),
    "TargetContainerHostname": ("a multi-container endpoint", "target container header"),
    "InferenceComponentName": ("an endpoint with inference components", "inference component header"),
    "SessionId": ("an endpoint with stateful sessions", "session header"),
    "EnableExplanations": ("an endpoint with an online explainer", "explanations"),
}

# What CustomAttributes may hold besides its shape's ASCII: visible characters, with spaces and tabs
# between them (an HTTP field value, RFC 7230 3.2.6), as the API reference says.
HEADER_VALUE = re.compile(r"[\x21-\x7e]([\x20\x09]*[\x21-\x7e])*")

# The deploy handler names a model's package in its environment (steps/deploy.py).
PACKAGE_VARIABLE = "MODEL_PACKAGE_ARN"


class Records(Protocol):
    def model(self, name: str) -> Body: ...

    def model_package(self, arn: str) -> Body | None: ...

    def endpoint_config(self, name: str) -> Body: ...

    def endpoints(self) -> list[Body]: ...

    def set_endpoint(self, name: str, **changes: Any) -> None: ...

    def forget_endpoint(self, name: str) -> None: ...


class Serving:
    def __init__(self, records: Records, processes: Endpoints) -> None:
        self.records = records
        self.processes = processes

    def _models(self, config: dict[str, Any]) -> dict[str, Body]:
        """The models a config's variants name, as they are now."""
        return {v["ModelName"]: self.records.model(v["ModelName"]) for v in config["ProductionVariants"]}

    def serving_config(self, endpoint: Body) -> dict[str, Any]:
        """The endpoint config an endpoint serves, as it was deployed."""
        return self._deployed_from(endpoint)[0]

    def _deployed_from(self, endpoint: Body) -> tuple[dict[str, Any], dict[str, Body]]:
        """The config and models an endpoint serves: the copies it keeps, since SageMaker keeps
        serving when they are deleted; an endpoint recorded without copies looks them up."""
        deployed = endpoint.get("_Deployed")
        if deployed:
            return deployed["EndpointConfig"], deployed["Models"]
        config = self.records.endpoint_config(endpoint["_Serving"])
        return config, self._models(config)

    def _variants(self, config: dict[str, Any], models: Mapping[str, Body]) -> list[VariantSpec]:
        variants = []
        for variant in config["ProductionVariants"]:
            model = models[variant["ModelName"]]
            container = model_container(model)
            environment = dict(container.get("Environment") or {})
            instance = _instance(variant.get("InstanceType"))
            variants.append(
                VariantSpec(
                    variant_name=variant.get("VariantName", "AllTraffic"),
                    model_data_url=container.get("ModelDataUrl"),
                    environment=environment,
                    initial_weight=float(variant.get("InitialVariantWeight", 1.0)),
                    model_data_sha256=self._registered_digest(environment.get(PACKAGE_VARIABLE)),
                    health_timeout=float(
                        variant.get("ContainerStartupHealthCheckTimeoutInSeconds", HEALTH_TIMEOUT_SECONDS)
                    ),
                    network_isolation=True in (
                        model.get("EnableNetworkIsolation"), config.get("EnableNetworkIsolation")
                    ),
                    instance_count=int(variant.get("InitialInstanceCount", 1)),
                    routing=(variant.get("RoutingConfig") or {}).get("RoutingStrategy", RANDOM),
                    memory=instance.memory_limit(INSTANCE_PROCESSES) if instance else None,
                    vcpus=instance.vcpus if instance else None,
                )
            )
        return variants

    def _registered_digest(self, package_arn: str | None) -> str | None:
        """The model data's SHA-256 as the model's package registered it ("" if it did not);
        None for a model made without a package (CreateModel alone verifies nothing on AWS)."""
        if not package_arn:
            return None
        package = self.records.model_package(package_arn) or {}
        return str((package.get("CustomerMetadataProperties") or {}).get(DIGEST_KEY, ""))

    def _described(self, config: dict[str, Any], models: Mapping[str, Body]) -> dict[str, Any]:
        """The endpoint fields that describe what a config serves, its images resolved now."""
        capture = config.get("DataCaptureConfig")
        resolved = time.time()
        fields: dict[str, Any] = {
            "EndpointConfigName": config["EndpointConfigName"],
            "ProductionVariants": [
                {
                    "VariantName": v.get("VariantName", "AllTraffic"),
                    "DeployedImages": [
                        deployed_image(model_container(models[v["ModelName"]])["Image"], resolved)
                    ],
                    "CurrentWeight": float(v.get("InitialVariantWeight", 1.0)),
                    "DesiredWeight": float(v.get("InitialVariantWeight", 1.0)),
                    "CurrentInstanceCount": int(v.get("InitialInstanceCount", 1)),
                    "DesiredInstanceCount": int(v.get("InitialInstanceCount", 1)),
                }
                for v in config["ProductionVariants"]
            ],
            "DataCaptureConfig": None,
        }
        if capture:
            fields["DataCaptureConfig"] = {
                "EnableCapture": bool(capture.get("EnableCapture", True)),
                "CaptureStatus": "Started" if capture.get("EnableCapture", True) else "Stopped",
                "CurrentSamplingPercentage": int(capture.get("InitialSamplingPercentage", 100)),
                "DestinationS3Uri": capture["DestinationS3Uri"],
                "KmsKeyId": capture.get("KmsKeyId", ""),
            }
        return fields

    def with_live_instances(self, endpoint: Body) -> Body:
        """The endpoint record with each variant's CurrentInstanceCount as hosting runs it: an
        instance whose process ended is not counted until its replacement answers /ping."""
        live = self.processes.live_instances(endpoint["EndpointName"], endpoint.get("_Serving") or "")
        for variant in endpoint.get("ProductionVariants") or []:
            if variant["VariantName"] in live:
                variant["CurrentInstanceCount"] = live[variant["VariantName"]]
        return endpoint

    def deploy(self, endpoint_name: str, config: dict[str, Any]) -> None:
        """Create or update in the background; the endpoint record follows each outcome."""
        try:
            models = self._models(config)
        except ServiceError as error:
            self.records.set_endpoint(
                endpoint_name, EndpointStatus="Failed", FailureReason=error.message
            )
            return
        deployed = {"EndpointConfig": config, "Models": models}

        def on_status(name: str, status: str, reason: str, serving: str | None) -> None:
            changes: dict[str, Any] = {"EndpointStatus": status, "FailureReason": reason or None}
            if status == "Updating":
                self.records.set_endpoint(name, **changes)
                return
            changes["PendingDeploymentSummary"] = None
            if serving == config["EndpointConfigName"]:
                changes.update(self._described(config, models), _Serving=serving, _Deployed=deployed)
            self.records.set_endpoint(name, **changes)

        try:
            self.processes.deploy(
                endpoint_name,
                config["EndpointConfigName"],
                self._variants(config, models),
                CaptureSpec.from_config(config.get("DataCaptureConfig")),
                on_status,
            )
        except (EndpointBusy, ValueError) as error:
            raise ServiceError("ValidationException", str(error)) from None

    def restore_all(self) -> None:
        """After a restart: serve again what was serving; unfinished updates are abandoned and
        unfinished deletions finished. An endpoint that cannot be served again is Failed with the
        reason; the others still start."""
        for endpoint in self.records.endpoints():
            serving = endpoint.get("_Serving")
            name = endpoint["EndpointName"]
            if endpoint["EndpointStatus"] == "Deleting":  # its servers stopped with the server
                self.records.forget_endpoint(name)
                continue
            if not serving:
                if endpoint["EndpointStatus"] != "Failed":  # a Failed one keeps its own reason
                    self.records.set_endpoint(
                        name,
                        EndpointStatus="Failed",
                        FailureReason="The local SageMaker server stopped before the endpoint was created.",
                    )
                continue
            try:
                config, models = self._deployed_from(endpoint)
            except ServiceError as error:
                self.records.set_endpoint(
                    name,
                    EndpointStatus="Failed",
                    FailureReason=f"Not served again after a restart of the local SageMaker: {error.message}",
                    PendingDeploymentSummary=None,
                )
                continue
            status, reason = self.processes.restore(
                name,
                serving,
                self._variants(config, models),
                CaptureSpec.from_config(config.get("DataCaptureConfig")),
            )
            interrupted = endpoint["EndpointStatus"] == "Updating"
            if interrupted and status == "InService":
                reason = f"Update interrupted by a server restart; still serving {serving}."
            self.records.set_endpoint(
                name,
                EndpointStatus=status,
                FailureReason=reason or None,
                PendingDeploymentSummary=None,
                **self._described(config, models),
            )

    def invoke(self, request: Mapping[str, Any]) -> InvokeResult:
        """InvokeEndpoint on a single-model endpoint: routing to a model, container or inference
        component that such an endpoint does not have is refused, as SageMaker refuses it.
        CustomAttributes go to the model verbatim and its own come back."""
        name = request["EndpointName"]
        for parameter, (kind, header) in ROUTING_FOR_OTHER_ENDPOINTS.items():
            if parameter in request:
                raise ServiceError(
                    "ValidationError", f"Endpoint {name} is not {kind} and does not support {header}."
                )
        attributes = request.get("CustomAttributes", "")
        if attributes and not HEADER_VALUE.fullmatch(attributes):
            raise ServiceError(
                "ValidationError",
                "CustomAttributes must consist of visible US-ASCII characters (spaces and tabs only "
                "between them).",
            )
        try:
            return self.processes.invoke(
                name,
                request.get("Body", b""),
                request.get("ContentType", "application/json"),
                request.get("Accept", "application/json"),
                request.get("TargetVariant"),
                request.get("InferenceId"),
                attributes,
            )
        except (EndpointNotReady, VariantNotFound) as error:
            raise ServiceError("ValidationError", str(error)) from None

    def delete(self, endpoint_name: str) -> None:
        """Stop serving now; the record goes once the servers have drained and stopped."""
        self.processes.delete(endpoint_name, self.records.forget_endpoint)

    def shutdown(self) -> None:
        self.processes.shutdown()


def model_container(model: Body) -> Body:
    """The container a model serves: its PrimaryContainer, or the one of its Containers (hosting
    refuses a model of more)."""
    return dict(model.get("PrimaryContainer") or model["Containers"][0])


def deployed_image(image: str, resolved: float) -> Body:
    """DescribeEndpoint's DeployedImages entry for a container's image: the image as the model
    names it, resolved to the digest of the local environment that runs it (image_python.py)."""
    repository = image.split("@")[0]
    if ":" in repository.rsplit("/", 1)[-1]:  # the tag, not a registry's port
        repository = repository.rsplit(":", 1)[0]
    return {"SpecifiedImage": image, "ResolvedImage": f"{repository}@{image_digest()}",
            "ResolutionTime": resolved}


def _instance(instance_type: Any) -> Instance | None:
    """A variant's instance type from the table CreateEndpointConfig checks it against
    (hosting/limits.py): the memory each instance may hold resident and the vCPUs it runs on;
    none for a type the table lacks."""
    return INSTANCES.get(instance_type) if isinstance(instance_type, str) else None

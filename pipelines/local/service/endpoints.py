"""Models, endpoint configurations and endpoints: the API records; `serving` runs what they describe."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from pipelines.local.contract.members import repeated
from pipelines.local.errors import ServiceError, invalid
from pipelines.local.hosting.capacity import over_limit
from pipelines.local.hosting.limits import (
    archive_source,
    deployment_limits,
    endpoint_config_limits,
    model_limits,
    request_containers,
)
from pipelines.local.jobs.images import UnsupportedImage, check_image
from pipelines.local.service.context import ServiceContext
from pipelines.local.service.listing import Filter, Listing, between, contains, equals
from pipelines.local.service.retention import retained_config
from pipelines.local.service.serving import Serving
from pipelines.local.storage.database import Body, public
from pipelines.local.storage.objects import ObjectStore


def _listing(operation: str, result_key: str, name: str, **more: Filter) -> Listing:
    """Models, endpoint configs and endpoints list alike: by name or creation time, newest first."""
    return Listing(
        operation, result_key, {"Name": name, "CreationTime": "CreationTime", "Status": "EndpointStatus"},
        identity=name,
        filters={
            "NameContains": contains(name), **between("CreationTimeAfter", "CreationTimeBefore"), **more
        },
    )


MODELS = _listing("ListModels", "Models", "ModelName")
ENDPOINT_CONFIGS = _listing("ListEndpointConfigs", "EndpointConfigs", "EndpointConfigName")
ENDPOINTS = _listing(
    "ListEndpoints",
    "Endpoints",
    "EndpointName",
    **between("LastModifiedTimeAfter", "LastModifiedTimeBefore", "LastModifiedTime"),
    StatusEquals=equals("EndpointStatus"),
)
MODEL_SUMMARY = ("ModelName", "ModelArn", "CreationTime")
ENDPOINT_CONFIG_SUMMARY = ("EndpointConfigName", "EndpointConfigArn", "CreationTime")
ENDPOINT_SUMMARY = ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus")
# CreateEndpointConfig members kept as given and described (what local hosting cannot reproduce is
# refused first, by hosting/limits.py).
CONFIG_SETTINGS = ("DataCaptureConfig", "KmsKeyId", "ExecutionRoleArn", "EnableNetworkIsolation")
IN_PROGRESS = ("Creating", "Updating", "Deleting")  # statuses SageMaker updates and deletes nothing in
# What DescribeModel says of instance recommendations: real descriptions always carry one
# (COMPLETED with the instance types Inference Recommender found, or NOT_APPLICABLE); the local
# target computes none, which is what NOT_APPLICABLE means ("unable to provide a default
# recommendation for the model using the information provided").
NO_RECOMMENDATION = {"RecommendationStatus": "NOT_APPLICABLE"}
# ContainerDefinition.Environment: "The maximum length of all keys and values in the map, combined,
# is 32 KB. If you pass multiple containers to a CreateModel request, then the maximum length of all
# of their maps, combined, is also 32 KB."
MODEL_ENVIRONMENT_BYTES = 32 * 1024


def described_container(container: Body) -> Body:
    """The container as DescribeModel answers it: SageMaker fills in `Mode` SingleModel and, for a
    ModelDataUrl, the ModelDataSource it stands for (a gzipped S3 object), as a real description
    of a model created with only an Image and a ModelDataUrl reads."""
    described = {"Mode": "SingleModel", **container}
    if "ModelDataUrl" in container:
        described.setdefault("ModelDataSource", archive_source(container["ModelDataUrl"]))
    return described


class EndpointOperations:
    def __init__(self, context: ServiceContext, serving: Serving) -> None:
        self.context = context
        self.database = context.database
        self.serving = serving

    def create_model(self, request: Body) -> Body:
        name = request["ModelName"]
        _refuse(model_limits(request))
        if request.get("PrimaryContainer") and request.get("Containers"):
            raise invalid("A model names its container as PrimaryContainer or as Containers, not both.")
        _check_environment_size(request_containers(request))
        container = request.get("PrimaryContainer") or (request.get("Containers") or [None])[0]
        if not container or not container.get("Image"):
            raise invalid("A model needs a container with an Image: PrimaryContainer or Containers.")
        _check_serving_image(container["Image"])
        if container.get("ModelDataUrl"):  # without one, the image serves with /opt/ml/model empty
            _check_model_data(self.context.store, container["ModelDataUrl"])
        body = {
            "ModelName": name,
            "ModelArn": self.context.resource_arn("model", name),
            "CreationTime": time.time(),
            "EnableNetworkIsolation": request.get("EnableNetworkIsolation") is True,
        }
        if request.get("PrimaryContainer"):
            body["PrimaryContainer"] = described_container(container)
        else:  # described in the form it was given, as SageMaker does
            body["Containers"] = [described_container(container)]
        if "ExecutionRoleArn" in request:
            body["ExecutionRoleArn"] = request["ExecutionRoleArn"]
        self.context.create("model", name, body, "model", request.get("Tags"))
        return {"ModelArn": body["ModelArn"]}

    def describe_model(self, request: Body) -> Body:
        model = self.context.get("model", request["ModelName"], "model")
        return {**model, "DeploymentRecommendation": NO_RECOMMENDATION}

    def delete_model(self, request: Body) -> Body:
        with self.context.lock:
            body = self.describe_model(request)
            self.database.delete("model", body["ModelName"])
            self.context.delete_tags(body["ModelArn"])
        return {}

    def list_models(self, request: Body) -> Body:
        return MODELS.page(
            self.database.all("model"), request, lambda m: {k: m[k] for k in MODEL_SUMMARY}
        )

    def create_endpoint_config(self, request: Body) -> Body:
        name = request["EndpointConfigName"]
        variants = request.get("ProductionVariants") or []
        if not variants:
            raise invalid("ProductionVariants must have at least one variant")
        _refuse(endpoint_config_limits(request))
        names = [variant["VariantName"] for variant in variants]
        duplicates = repeated(names)
        if duplicates:
            listed = ", ".join(duplicates)
            raise invalid(f"ProductionVariants: variant names must be unique; {listed} given more than once.")
        for variant in variants:
            self.context.get("model", variant["ModelName"], "model")
        body = {
            "EndpointConfigName": name,
            "EndpointConfigArn": self.context.resource_arn("endpoint_config", name),
            "ProductionVariants": variants,
            "CreationTime": time.time(),
            **{member: request[member] for member in CONFIG_SETTINGS if member in request},
        }
        self.context.create(
            "endpoint_config", name, body, "endpoint configuration", request.get("Tags")
        )
        return {"EndpointConfigArn": body["EndpointConfigArn"]}

    def describe_endpoint_config(self, request: Body) -> Body:
        return self.context.get(
            "endpoint_config", request["EndpointConfigName"], "endpoint configuration"
        )

    def delete_endpoint_config(self, request: Body) -> Body:
        with self.context.lock:
            body = self.describe_endpoint_config(request)
            self.database.delete("endpoint_config", body["EndpointConfigName"])
            self.context.delete_tags(body["EndpointConfigArn"])
        return {}

    def list_endpoint_configs(self, request: Body) -> Body:
        return ENDPOINT_CONFIGS.page(
            self.database.all("endpoint_config"),
            request,
            lambda c: {k: c[k] for k in ENDPOINT_CONFIG_SUMMARY},
        )

    def create_endpoint(self, request: Body) -> Body:
        name = request["EndpointName"]
        _refuse(deployment_limits(request))
        config = self.describe_endpoint_config(request)
        _refuse_over_limit(config, None)
        now = time.time()
        body = {
            "EndpointName": name,
            "EndpointArn": self.context.resource_arn("endpoint", name),
            "EndpointConfigName": config["EndpointConfigName"],
            "EndpointStatus": "Creating",
            "CreationTime": now,
            "LastModifiedTime": now,
        }
        if request.get("DeploymentConfig"):
            body["LastDeploymentConfig"] = request["DeploymentConfig"]
        body["PendingDeploymentSummary"] = pending_deployment(config, "Creating", now)
        with self.context.lock:  # a refused deployment takes the record back before anyone sees it
            self.context.create("endpoint", name, body, "endpoint", request.get("Tags"))
            try:
                self.serving.deploy(name, config)
            except ServiceError:
                self.database.delete("endpoint", name)
                self.context.delete_tags(body["EndpointArn"])
                raise
        return {"EndpointArn": body["EndpointArn"]}

    def update_endpoint(self, request: Body) -> Body:
        """RetainAllVariantProperties keeps what the endpoint serves (service/retention.py);
        RetainDeploymentConfig reuses the DeploymentConfig the endpoint last recorded."""
        _refuse(deployment_limits(request))
        with self.context.lock:
            body = self.context.get("endpoint", request["EndpointName"], "endpoint")
            name = body["EndpointName"]
            _refuse_in_progress(body)
            if body["EndpointStatus"] == "Failed":  # SageMaker's answer: delete it, create it again
                raise invalid(f'Cannot update failed endpoint "{body["EndpointArn"]}".')
            config = self.describe_endpoint_config(request)
            if config["EndpointConfigName"] == body.get("_Serving"):
                raise invalid(
                    f"Endpoint {name} already uses endpoint config {config['EndpointConfigName']}."
                )
            # SageMaker keeps the config an endpoint leaves through its update (to roll back to):
            # one deleted while live leaves the endpoint serving, but never updated again
            # (terraform-provider-aws issues 40048 and 48997 record its refusal).
            self.context.get("endpoint_config", body["_Serving"], "endpoint configuration")
            deployment = request.get("DeploymentConfig")
            if not deployment and request.get("RetainDeploymentConfig") is True:
                deployment = body.get("LastDeploymentConfig")
            serving = self.serving.serving_config(body)
            deployed = retained_config(request, config, serving)
            _refuse_over_limit(deployed, serving)
            before = dict(body)
            body.update(EndpointStatus="Updating", LastModifiedTime=time.time())
            body["PendingDeploymentSummary"] = pending_deployment(
                deployed, "Updating", body["LastModifiedTime"]
            )
            body.pop("FailureReason", None)
            body.pop("LastDeploymentConfig", None)
            if deployment:
                body["LastDeploymentConfig"] = deployment
            self.database.put("endpoint", name, body, body["CreationTime"])
            try:
                self.serving.deploy(name, deployed)
            except ServiceError:  # refused: the endpoint stays as it was
                self.database.put("endpoint", name, before, before["CreationTime"])
                raise
        return {"EndpointArn": body["EndpointArn"]}

    def describe_endpoint(self, request: Body) -> Body:
        body = self.context.get("endpoint", request["EndpointName"], "endpoint")
        return public(self.serving.with_live_instances(body))

    def list_endpoints(self, request: Body) -> Body:
        return ENDPOINTS.page(
            self.database.all("endpoint"), request, lambda e: {k: e[k] for k in ENDPOINT_SUMMARY}
        )

    def delete_endpoint(self, request: Body) -> Body:
        """As on SageMaker, the endpoint is Deleting (invocations refused, its name still taken)
        while its servers drain and stop; then it is gone, with its tags."""
        with self.context.lock:
            body = self.context.get("endpoint", request["EndpointName"], "endpoint")
            _refuse_in_progress(body)
            body.update(EndpointStatus="Deleting", LastModifiedTime=time.time())
            self.database.put("endpoint", body["EndpointName"], body, body["CreationTime"])
        self.serving.delete(body["EndpointName"])
        return {}


class EndpointRecords:
    """What `serving` reads and writes of the API records: narrow on purpose, all under the lock."""

    def __init__(self, context: ServiceContext) -> None:
        self.context = context

    def model(self, name: str) -> Body:
        return self.context.get("model", name, "model")

    def endpoint_config(self, name: str) -> Body:
        return self.context.get("endpoint_config", name, "endpoint configuration")

    def model_package(self, arn: str) -> Body | None:
        return self.context.database.package(arn)

    def endpoints(self) -> list[Body]:
        return self.context.database.all("endpoint")

    def forget_endpoint(self, name: str) -> None:
        """A deleted endpoint's record and tags, once its servers have stopped."""
        with self.context.lock:
            body = self.context.database.get("endpoint", name)
            if body is not None:
                self.context.database.delete("endpoint", name)
                self.context.delete_tags(body["EndpointArn"])

    def set_endpoint(self, name: str, **changes: Any) -> None:
        """Record a hosting outcome (called from hosting threads)."""
        with self.context.lock:
            body = self.context.database.get("endpoint", name)
            if body is None:
                return
            for key, value in changes.items():
                if value is None:
                    body.pop(key, None)
                else:
                    body[key] = value
            body["LastModifiedTime"] = time.time()
            self.context.database.put("endpoint", name, body, body["CreationTime"])


def _refuse_in_progress(endpoint: Body) -> None:
    """SageMaker's answer to an update or a deletion while the endpoint is changing."""
    if endpoint["EndpointStatus"] in IN_PROGRESS:
        raise invalid(f'Cannot update in-progress endpoint "{endpoint["EndpointArn"]}".')


def _refuse(problems: list[str]) -> None:
    """What local hosting cannot reproduce (hosting/limits.py), refused before anything is stored."""
    if problems:
        raise invalid("; ".join(problems))


def _refuse_over_limit(deployed: Body, serving: Body | None) -> None:
    """More instances than local hosting runs for one endpoint (hosting/capacity.py)."""
    refusal = over_limit(deployed, serving)
    if refusal:
        raise ServiceError("ResourceLimitExceeded", refusal)


def _check_serving_image(image: Any) -> None:
    """A model server here is the scikit-learn image's serving contract with this machine's
    scikit-learn: a model meant for another image is refused when it is created, naming both, not
    served by something it was not built for."""
    if isinstance(image, str):
        try:
            check_image(image)
        except UnsupportedImage as error:
            raise invalid(f"PrimaryContainer.Image: {error}") from None


def _check_environment_size(containers: list[Mapping[str, Any]]) -> None:
    """The model's Environment maps hold at most 32 KB of keys and values in all, as the API
    reference has it; each key and value is held to 1024 bytes by the request's shape."""
    size = sum(
        len(key.encode()) + len(value.encode())
        for container in containers
        for key, value in (container.get("Environment") or {}).items()
    )
    if size > MODEL_ENVIRONMENT_BYTES:
        raise invalid(
            f"The maximum length of all keys and values in the Environment maps of a model's containers, "
            f"combined, is 32 KB ({MODEL_ENVIRONMENT_BYTES} bytes); these hold {size} bytes."
        )


def _check_model_data(store: ObjectStore, url: str) -> None:
    """SageMaker looks for the model data when the model is created, so a wrong URL fails the
    CreateModel call (the deploy step) rather than a later deployment."""
    try:
        found = store.exists(url)
    except ValueError:  # not an s3:// URI this store can hold
        found = False
    if not found:
        raise invalid(f"Could not find model data at {url}.")


def pending_deployment(config: Body, status: str, started: float) -> Body:
    """DescribeEndpoint's PendingDeploymentSummary while an endpoint is created or updated with a new
    config ("only returned when the endpoint is creating or updating with a new endpoint
    configuration", its API reference): the config, when the change began, and what each variant
    is becoming."""
    variants = []
    for variant in config["ProductionVariants"]:
        pending = {
            "VariantName": variant["VariantName"],
            "DesiredWeight": float(variant.get("InitialVariantWeight", 1.0)),
            "DesiredInstanceCount": int(variant.get("InitialInstanceCount", 1)),
            "VariantStatus": [{"Status": status, "StartTime": started}],
        }
        if "InstanceType" in variant:
            pending["InstanceType"] = variant["InstanceType"]
        variants.append(pending)
    return {"EndpointConfigName": config["EndpointConfigName"], "StartTime": started,
            "ProductionVariants": variants}

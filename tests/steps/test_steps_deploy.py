"""deploy.py: create / skip / unchanged paths against moto, the update path with a Stubber, and the
model data check against the package's registered digest."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from moto import mock_aws
from moto.sagemaker.models import sagemaker_backends

from steps import deploy, integrity

ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
MODEL_DATA = "s3://bucket/sentiment-classifier/model.tar.gz"
MODEL_BYTES = b"the evaluated model.tar.gz" * 1000
MODEL_SHA256 = hashlib.sha256(MODEL_BYTES).hexdigest()
ENVIRONMENT = {"SAGEMAKER_PROGRAM": "inference.py"}
ENDPOINT = "sentiment-classifier"
GROUP = "sentiment-classifier"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region; drop anything that could reach a real account."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")


OTHER_GROUP = "another-project"


@pytest.fixture
def sm() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("sagemaker")
        client.create_model_package_group(ModelPackageGroupName=GROUP)
        client.create_model_package_group(ModelPackageGroupName=OTHER_GROUP)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="bucket")
        s3.put_object(Bucket="bucket", Key="sentiment-classifier/model.tar.gz", Body=MODEL_BYTES)
        yield client


def register(
    sm: Any, status: str = "Approved", baseline: str = "", group: str = GROUP,
    digest: str | None = MODEL_SHA256,
) -> str:
    extra: dict[str, Any] = {}
    if digest is not None:
        extra["CustomerMetadataProperties"] = {integrity.DIGEST_KEY: digest}
    if baseline:
        extra["DriftCheckBaselines"] = {"ModelDataQuality": {
            "Statistics": {"ContentType": "application/json", "S3Uri": f"{baseline}/statistics.json"},
            "Constraints": {"ContentType": "application/json",
                            "S3Uri": f"{baseline}/constraints.json"},
        }}
    arn: str = sm.create_model_package(
        **extra,
        ModelPackageGroupName=group,
        InferenceSpecification={
            "Containers": [
                {"Image": IMAGE, "ModelDataUrl": MODEL_DATA, "Environment": ENVIRONMENT}
            ],
            "SupportedContentTypes": ["application/json", "text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelApprovalStatus=status,
    )["ModelPackageArn"]
    return arn


def event(arn: str, **overrides: Any) -> dict[str, Any]:
    base = {
        "model_package_arn": arn,
        "endpoint_name": ENDPOINT,
        "role_arn": ROLE,
        "instance_type": "ml.m5.large",
        "instance_count": 1,
        "capture_destination": "s3://bucket/sentiment-classifier/capture",
        "capture_percentage": 100,
    }
    return {**base, **overrides}


def test_creates_model_config_and_endpoint(sm: Any) -> None:
    arn = register(sm)
    result = deploy.handler(event(arn, instance_count="2", capture_percentage="25"), None)
    assert result["action"] == "created"
    assert result["model_name"] == f"{ENDPOINT}-{deploy.package_tag(arn, 1)}"
    assert re.fullmatch(rf"{ENDPOINT}-v1-[0-9a-f]{{8}}", result["model_name"])
    assert re.fullmatch(rf"{result['model_name']}-[0-9a-f]{{8}}", result["endpoint_config_name"])
    assert result["model_package_arn"] == arn and result["endpoint_name"] == ENDPOINT
    assert all(isinstance(value, str) for value in result.values())

    model = sm.describe_model(ModelName=result["model_name"])
    assert model["ExecutionRoleArn"] == ROLE
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"] == MODEL_DATA
    assert model["PrimaryContainer"]["Environment"] == {**ENVIRONMENT, "MODEL_PACKAGE_ARN": arn}

    config = sm.describe_endpoint_config(EndpointConfigName=result["endpoint_config_name"])
    (variant,) = config["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic"
    assert variant["ModelName"] == result["model_name"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.m5.large", 2)
    capture = config["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert capture["InitialSamplingPercentage"] == 25
    assert capture["DestinationS3Uri"] == "s3://bucket/sentiment-classifier/capture"
    assert capture["CaptureOptions"] == [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]
    assert capture["CaptureContentTypeHeader"] == {
        "CsvContentTypes": ["text/csv"],
        "JsonContentTypes": ["application/json", "application/jsonlines"],
    }
    endpoint = sm.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointConfigName"] == result["endpoint_config_name"]


def test_second_call_is_unchanged_and_creates_nothing(sm: Any) -> None:
    arn = register(sm)
    first = deploy.handler(event(arn), None)
    created = sm.describe_model(ModelName=first["model_name"])["CreationTime"]
    second = deploy.handler(event(arn, instance_count="1"), None)
    assert second["action"] == "unchanged"
    assert second["endpoint_config_name"] == first["endpoint_config_name"]
    assert len(sm.list_models()["Models"]) == 1
    assert len(sm.list_endpoint_configs()["EndpointConfigs"]) == 1
    assert len(sm.list_endpoints()["Endpoints"]) == 1
    assert sm.describe_model(ModelName=first["model_name"])["CreationTime"] == created


def test_a_new_version_of_the_very_model_already_served_leaves_the_endpoint_alone(sm: Any) -> None:
    """An unchanged rerun registers the cached model again: same group, image, data and settings."""
    first = deploy.handler(event(register(sm)), None)
    again = register(sm)
    assert again.endswith("/2")
    second = deploy.handler(event(again), None)
    assert second["action"] == "unchanged", second
    assert (second["model_name"], second["endpoint_config_name"]) == (
        first["model_name"], first["endpoint_config_name"])
    assert MODEL_DATA in second["reason"]
    assert len(sm.list_models()["Models"]) == 1
    assert len(sm.list_endpoint_configs()["EndpointConfigs"]) == 1


def test_the_same_model_with_new_endpoint_settings_is_rolled_out(
    sm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy.handler(event(register(sm)), None)
    updates: list[dict[str, Any]] = []
    s3 = boto3.client("s3")
    monkeypatch.setattr(deploy.boto3, "client", lambda name, **kwargs: sm if name == "sagemaker" else s3)
    monkeypatch.setattr(sm, "update_endpoint", lambda **request: updates.append(request))  # moto lacks it
    second = deploy.handler(event(register(sm), capture_percentage=50), None)
    assert second["action"] == "updated", second
    assert updates == [{"EndpointName": ENDPOINT, "EndpointConfigName": second["endpoint_config_name"]}]


def test_the_same_version_of_another_group_never_takes_this_groups_names(
    sm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another project's v1 deployed to our endpoint first: ours still gets a model and a config of
    its own, and the endpoint is moved to them instead of being reported "unchanged"."""
    theirs, ours = register(sm, group=OTHER_GROUP), register(sm)
    assert theirs.rsplit("/", 1)[-1] == ours.rsplit("/", 1)[-1] == "1"
    first = deploy.handler(event(theirs), None)
    updates: list[dict[str, Any]] = []
    s3 = boto3.client("s3")
    monkeypatch.setattr(deploy.boto3, "client", lambda name, **kwargs: sm if name == "sagemaker" else s3)
    monkeypatch.setattr(sm, "update_endpoint", lambda **request: updates.append(request))  # moto lacks it
    second = deploy.handler(event(ours), None)
    assert second["action"] == "updated", second
    assert second["model_name"] != first["model_name"]
    assert second["endpoint_config_name"] != first["endpoint_config_name"]
    assert updates == [{"EndpointName": ENDPOINT, "EndpointConfigName": second["endpoint_config_name"]}]
    model = sm.describe_model(ModelName=second["model_name"])
    assert model["PrimaryContainer"]["Environment"]["MODEL_PACKAGE_ARN"] == ours
    config = sm.describe_endpoint_config(EndpointConfigName=second["endpoint_config_name"])
    assert config["ProductionVariants"][0]["ModelName"] == second["model_name"]


def test_a_config_name_leads_back_to_its_version_of_the_same_group_only() -> None:
    """`models approve --wait` reads which version an endpoint heads to from its config's name."""
    mine = "arn:aws:sagemaker:us-east-1:123456789012:model-package/sentiment-classifier/12"
    theirs = "arn:aws:sagemaker:us-east-1:123456789012:model-package/other/12"
    sibling = mine.replace("/12", "/3")
    for endpoint in ("sentiment-classifier", "e" * 63):  # a long name is cut, the suffix kept
        name = deploy.sagemaker_name(endpoint, f"-{deploy.package_tag(mine, 12)}-0123abcd")
        assert deploy.package_of_config(name, sibling) == mine
        assert deploy.package_of_config(name, theirs) is None
    assert deploy.package_of_config("hand-made-config", sibling) is None


def test_package_tags_differ_by_arn_and_fit_in_a_name() -> None:
    mine = "arn:aws:sagemaker:us-east-1:123456789012:model-package/sentiment-classifier/2"
    theirs = "arn:aws:sagemaker:us-east-1:123456789012:model-package/other/2"
    assert deploy.package_tag(mine, 2) == deploy.package_tag(mine, 2)
    assert deploy.package_tag(mine, 2) != deploy.package_tag(theirs, 2)
    name = deploy.sagemaker_name("e" * 63, f"-{deploy.package_tag(mine, 2)}-0123abcd")
    assert len(name) == 63 and re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", name)


def test_unapproved_package_is_skipped(sm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    arn = register(sm, status="PendingManualApproval")
    result = deploy.handler(event(arn), None)
    assert result["action"] == "skipped"
    assert "PendingManualApproval" in result["reason"]
    tag = deploy.package_tag(arn, 1)
    assert capsys.readouterr().out == (
        f"deploy: version {tag}: {arn}, PendingManualApproval\ndeploy: skipped {tag}: {result['reason']}\n")
    assert (result["model_name"], result["endpoint_config_name"]) == ("", "")
    assert sm.list_models()["Models"] == []
    assert sm.list_endpoints()["Endpoints"] == []


def test_config_name_changes_only_with_settings() -> None:
    settings = deploy.read_event(event("arn", instance_count=1))
    same = deploy.read_event(event("arn", instance_count="1", capture_percentage="100"))
    bigger = deploy.read_event(event("arn", instance_count=2))
    sampled = deploy.read_event(event("arn", capture_percentage=10))

    def digest(values: dict[str, Any]) -> str:
        return deploy.settings_digest(deploy.endpoint_config_request(values, "m-v1"))

    assert digest(settings) == digest(same)
    assert len({digest(settings), digest(bigger), digest(sampled)}) == 3


def test_long_names_are_trimmed_safely() -> None:
    first = deploy.sagemaker_name("a" * 59 + "-x" + "b" * 20, "-v12-0123abcd")
    second = deploy.sagemaker_name("a" * 59 + "-y" + "b" * 20, "-v12-0123abcd")
    for name in (first, second):
        assert len(name) == 63
        assert name.endswith("-v12-0123abcd")
        assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", name)
    assert first != second
    assert deploy.sagemaker_name("short", "-v1") == "short-v1"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"role_arn": None}, "missing ['role_arn']"),
        ({"instance_count": "two"}, "instance_count must be a whole number"),
        ({"instance_count": 0}, "at least 1"),
        ({"capture_percentage": "150"}, "0..100"),
        ({"rollback_alarms": "alarm"}, "list of alarm names"),
    ],
)
def test_bad_events_are_rejected(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        deploy.handler(event("arn", **overrides), None)


NOW = datetime(2024, 1, 1, tzinfo=UTC)
PACKAGE_ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/sentiment-classifier/3"
MODEL_NAME = f"{ENDPOINT}-{deploy.package_tag(PACKAGE_ARN, 3)}"


MODEL_ARN_PREFIX = "arn:aws:sagemaker:us-east-1:123456789012:model/"


def stubbed_client(
    monkeypatch: pytest.MonkeyPatch, config_name: str, current: dict[str, Any] | None,
    served_model_data: str | None = None,
) -> Stubber:
    """A client stubbed up to creating config_name, with the endpoint described as `current`, or
    not found when None (and, when it is InService with nothing pending, serving a model of
    served_model_data); each test adds the endpoint update it expects."""
    client = boto3.client("sagemaker", region_name="us-east-1")
    monkeypatch.setattr(deploy.boto3, "client", lambda *args, **kwargs: client)
    monkeypatch.setattr(deploy, "verify_model_data", lambda s3, package, url: MODEL_SHA256)
    stubber = Stubber(client)
    stubber.add_response(
        "describe_model_package",
        {
            "ModelPackageName": GROUP,
            "ModelPackageArn": PACKAGE_ARN,
            "ModelPackageVersion": 3,
            "CreationTime": NOW,
            "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": []},
            "ModelApprovalStatus": "Approved",
            "InferenceSpecification": {
                "Containers": [{"Image": IMAGE, "ModelDataUrl": MODEL_DATA}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
        },
        {"ModelPackageName": PACKAGE_ARN},
    )
    if current is None:
        stubber.add_client_error("describe_endpoint", service_error_code="ValidationException",
                                 service_message=f'Could not find endpoint "{ENDPOINT}".')
    else:
        stubber.add_response("describe_endpoint", current, {"EndpointName": ENDPOINT})
    if served_model_data is not None and current is not None:
        served = "served-model"
        stubber.add_response(
            "describe_endpoint_config",
            {"EndpointConfigName": current["EndpointConfigName"], "CreationTime": NOW,
             "EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/old",
             "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": served}]},
            {"EndpointConfigName": current["EndpointConfigName"]},
        )
        stubber.add_response(
            "describe_model",
            {"ModelName": served, "CreationTime": NOW, "ModelArn": "arn:aws:sagemaker:us-east-1:1:model/s",
             "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": served_model_data}},
            {"ModelName": served},
        )
    stubber.add_client_error(  # moto replaces a model created twice; SageMaker refuses, in these words
        "create_model",
        service_error_code="ValidationException",
        service_message=f'Cannot create already existing model "{MODEL_ARN_PREFIX}{MODEL_NAME}".',
        expected_params={"ModelName": MODEL_NAME, "ExecutionRoleArn": ANY, "PrimaryContainer": ANY},
    )
    stubber.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/c"},
        {"EndpointConfigName": config_name, "ProductionVariants": ANY, "DataCaptureConfig": ANY},
    )
    return stubber


def test_a_model_that_already_exists_is_reused_and_its_config_created(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Creating first: the "already existing" answer means reuse, with no describe before it."""
    new_config = expected_config_name({})
    current = describe_endpoint_response(f"{ENDPOINT}-v2-0badc0de")
    stubber = stubbed_client(monkeypatch, new_config, current, "s3://bucket/older/model.tar.gz")
    looked_again(stubber, current["EndpointConfigName"])
    stubber.add_response("update_endpoint", {"EndpointArn": "arn:aws:sagemaker:us-east-1:1:endpoint/e"},
                         {"EndpointName": ENDPOINT, "EndpointConfigName": new_config})
    with stubber:
        assert deploy.handler(event(PACKAGE_ARN), None)["action"] == "updated"
        stubber.assert_no_pending_responses()
    logged = capsys.readouterr().out
    assert f"deploy: reusing model {MODEL_NAME}\n" in logged
    assert f"deploy: created endpoint config {new_config}\n" in logged


def test_any_other_refusal_of_the_model_fails_the_deploy() -> None:
    client = boto3.client("sagemaker", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_client_error("create_model", service_error_code="ValidationException",
                             service_message="Could not access model data at s3://bucket/model.tar.gz.")
    with stubber, pytest.raises(ClientError, match="Could not access model data"):
        deploy.ensure_model(client, MODEL_NAME, "arn:aws:iam::1:role/r", {"Image": IMAGE}, PACKAGE_ARN)


def describe_endpoint_response(config: str, pending: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "EndpointName": ENDPOINT,
        "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/e",
        "EndpointConfigName": config,
        "EndpointStatus": "InService",
        "CreationTime": NOW,
        "LastModifiedTime": NOW,
    }
    if pending:
        response["PendingDeploymentSummary"] = {"EndpointConfigName": pending}
    return response


OLDER_ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/sentiment-classifier/2"


def looked_again(
    stubber: Stubber, served_config: str = "other-config", served_package: str = OLDER_ARN,
    served_status: str = "Approved", served_at: datetime = datetime(2023, 6, 1, tzinfo=UTC),
) -> None:
    """The look right before an update (deploy.later_approval): the endpoint, its config, model
    and the version it serves, approved at `served_at` (this deploy's version: NOW)."""
    stubber.add_response("describe_endpoint", describe_endpoint_response(served_config),
                         {"EndpointName": ENDPOINT})
    stubber.add_response(
        "describe_endpoint_config",
        {"EndpointConfigName": served_config, "CreationTime": NOW,
         "EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/old",
         "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "served-model"}]},
        {"EndpointConfigName": served_config},
    )
    stubber.add_response(
        "describe_model",
        {"ModelName": "served-model", "CreationTime": NOW,
         "ModelArn": "arn:aws:sagemaker:us-east-1:1:model/s",
         "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": "s3://bucket/older/model.tar.gz",
                              "Environment": {deploy.PACKAGE_VARIABLE: served_package}}},
        {"ModelName": "served-model"},
    )
    if served_package == PACKAGE_ARN:
        return  # this very version: nothing to compare
    stubber.add_response(
        "describe_model_package",
        {"ModelPackageName": GROUP, "ModelPackageArn": served_package, "ModelPackageVersion": 2,
         "CreationTime": datetime(2023, 1, 1, tzinfo=UTC), "LastModifiedTime": served_at,
         "ModelPackageStatus": "Completed", "ModelPackageStatusDetails": {"ValidationStatuses": []},
         "ModelApprovalStatus": served_status},
        {"ModelPackageName": served_package},
    )


def expected_config_name(overrides: dict[str, Any]) -> str:
    settings = deploy.read_event(event(PACKAGE_ARN, **overrides))
    request = deploy.endpoint_config_request(settings, MODEL_NAME)
    return f"{MODEL_NAME}-{deploy.settings_digest(request)}"


@pytest.mark.parametrize("alarms", [[], ["sentiment-5xx", "sentiment-latency"]])
def test_existing_endpoint_on_other_config_is_updated(
    monkeypatch: pytest.MonkeyPatch, alarms: list[str]
) -> None:
    new_config = expected_config_name({"instance_count": 2})
    current = describe_endpoint_response(f"{ENDPOINT}-v2-0badc0de")
    stubber = stubbed_client(monkeypatch, new_config, current, "s3://bucket/older/model.tar.gz")
    update: dict[str, Any] = {"EndpointName": ENDPOINT, "EndpointConfigName": new_config}
    if alarms:
        update["DeploymentConfig"] = {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                "TerminationWaitInSeconds": deploy.BAKE_SECONDS,
            },
            "AutoRollbackConfiguration": {
                "Alarms": [{"AlarmName": "sentiment-5xx"}, {"AlarmName": "sentiment-latency"}]
            },
        }
    looked_again(stubber, current["EndpointConfigName"])
    stubber.add_response(
        "update_endpoint",
        {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/e"},
        update,
    )
    with stubber:
        result = deploy.handler(event(PACKAGE_ARN, instance_count=2, rollback_alarms=alarms), None)
        stubber.assert_no_pending_responses()
    assert result["action"] == "updated"
    assert result["endpoint_config_name"] == new_config
    assert f"{ENDPOINT}-v2-0badc0de" in result["reason"]
    assert ("auto-rollback" in result["reason"]) == bool(alarms)


def test_endpoint_already_moving_to_config_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    new_config = expected_config_name({})
    current = describe_endpoint_response(f"{ENDPOINT}-v2-0badc0de", pending=new_config)
    stubber = stubbed_client(monkeypatch, new_config, current)
    with stubber:
        result = deploy.handler(event(PACKAGE_ARN), None)
        stubber.assert_no_pending_responses()
    assert result["action"] == "unchanged"
    assert result["endpoint_config_name"] == new_config


def fail_endpoint(reason: str) -> None:
    """Make moto's endpoint Failed, as a health check that never passed leaves it on SageMaker."""
    backend = sagemaker_backends["123456789012"]["us-east-1"]
    backend.endpoints[ENDPOINT].endpoint_status = "Failed"
    backend.endpoints[ENDPOINT].failure_reason = reason


@pytest.mark.parametrize("new_version", [False, True])
def test_a_failed_endpoint_is_deleted_and_created_again(sm: Any, new_version: bool) -> None:
    """SageMaker refuses to update a Failed endpoint, even to the config it failed with."""
    first = deploy.handler(event(register(sm)), None)
    fail_endpoint("The primary container did not pass the ping health check.")
    second = deploy.handler(event(register(sm) if new_version else first["model_package_arn"]), None)
    assert second["action"] == "created", second
    assert second["reason"].startswith(
        f"endpoint {ENDPOINT} was Failed (The primary container did not pass the ping health check.); "
        "deleted; creating it with"
    )
    endpoint = sm.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == second["endpoint_config_name"]


def deleting(status: str) -> dict[str, Any]:
    return {**describe_endpoint_response("old-config"), "EndpointStatus": status}


def test_an_endpoint_already_deleting_is_waited_for_then_created(monkeypatch: pytest.MonkeyPatch) -> None:
    new_config = expected_config_name({})
    stubber = stubbed_client(monkeypatch, new_config, deleting("Deleting"))
    stubber.add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint")
    stubber.add_response(
        "create_endpoint",
        {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/e"},
        {"EndpointName": ENDPOINT, "EndpointConfigName": new_config},
    )
    with stubber:
        result = deploy.handler(event(PACKAGE_ARN), None)
        stubber.assert_no_pending_responses()  # no DeleteEndpoint
    assert result["action"] == "created"
    assert result["reason"] == f"endpoint {ENDPOINT} was Deleting; deleted; creating it with {new_config}"


class LambdaContext:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_the_deletion_wait_fits_in_the_invocations_remaining_time() -> None:
    assert deploy.wait_budget(None) == deploy.WAIT_SECONDS
    assert deploy.wait_budget(LambdaContext(115_000)) == deploy.WAIT_SECONDS
    assert deploy.wait_budget(LambdaContext(60_000)) == 60 - deploy.AFTER_WAIT_SECONDS


def approval_event(monkeypatch: pytest.MonkeyPatch, arn: str, **environment: str) -> dict[str, Any]:
    """The approval rule's event for `arn`, with the function's environment set to what `event`
    passes (an approval names only the package), or to `environment` where given."""
    settings = {"ENDPOINT_NAME": ENDPOINT, "EXECUTION_ROLE_ARN": ROLE, "INSTANCE_TYPE": "ml.m5.large",
                "CAPTURE_DESTINATION": "s3://bucket/sentiment-classifier/capture",
                "CAPTURE_PERCENTAGE": "100"}
    for name, value in {**settings, **environment}.items():
        monkeypatch.setenv(name, value)
    return {"detail-type": deploy.APPROVAL_EVENT,
            "detail": {"ModelPackageArn": arn, "ModelApprovalStatus": "Approved"}}


def test_an_approval_event_takes_endpoint_settings_from_the_environment(
    sm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    approval = approval_event(monkeypatch, register(sm), CAPTURE_PERCENTAGE="50")
    result = deploy.handler(approval, None)
    assert result["action"] == "created" and result["endpoint_name"] == ENDPOINT
    config = sm.describe_endpoint_config(EndpointConfigName=result["endpoint_config_name"])
    assert config["DataCaptureConfig"]["InitialSamplingPercentage"] == 50


def test_an_approval_puts_its_version_on_the_endpoint_even_as_a_copy_of_the_served_model(
    sm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`models rollback 2` after an unchanged rerun (v2 is v1's very model): the deploy said
    "unchanged", the endpoint went on serving v1's config, `--wait` waited in vain, and the deploy
    of a version approved before v2 saw no later decision on the endpoint and replaced it."""
    first = deploy.handler(event(register(sm)), None)
    again = register(sm)
    assert deploy.handler(event(again), None)["action"] == "unchanged"  # the pipeline's own deploy
    updates: list[dict[str, Any]] = []
    s3 = boto3.client("s3")
    monkeypatch.setattr(deploy.boto3, "client", lambda name, **kwargs: sm if name == "sagemaker" else s3)
    monkeypatch.setattr(sm, "update_endpoint", lambda **request: updates.append(request))  # moto lacks it
    result = deploy.handler(approval_event(monkeypatch, again), None)
    assert result["action"] == "updated", result
    assert result["model_name"] == f"{ENDPOINT}-{deploy.package_tag(again, 2)}" != first["model_name"]
    assert updates == [{"EndpointName": ENDPOINT, "EndpointConfigName": result["endpoint_config_name"]}]
    model = sm.describe_model(ModelName=result["model_name"])["PrimaryContainer"]
    assert (model["ModelDataUrl"], model["Environment"]["MODEL_PACKAGE_ARN"]) == (MODEL_DATA, again)


def test_describe_serving_finds_the_package_and_its_baseline(sm: Any) -> None:
    baseline = "s3://bucket/executions/abc/baseline"
    arn = register(sm, baseline=baseline)
    deployed = deploy.handler(event(arn), None)
    served = deploy.handler({"action": "describe_serving", "endpoint_name": ENDPOINT}, None)
    assert served == {
        "endpoint_config_name": deployed["endpoint_config_name"],
        "model_package_arn": arn,
        "model_data_url": MODEL_DATA,
        "baseline_uri": baseline,
    }


def test_describe_serving_refuses_a_version_without_baseline(sm: Any) -> None:
    deploy.handler(event(register(sm)), None)
    with pytest.raises(ValueError, match="no drift-check baseline"):
        deploy.describe_serving(sm, ENDPOINT)


# --- the model data check ---------------------------------------------------------------------


def test_model_data_replaced_after_registration_fails_the_deploy(sm: Any) -> None:
    """The endpoint keeps serving the version it served; nothing is created for the bad one."""
    first = deploy.handler(event(register(sm)), None)
    replaced = register(sm)
    boto3.client("s3").put_object(
        Bucket="bucket", Key="sentiment-classifier/model.tar.gz", Body=b"a tarball with a payload"
    )
    with pytest.raises(integrity.ModelDataMismatch) as caught:
        deploy.handler(event(replaced), None)
    message = str(caught.value)
    assert MODEL_DATA in message and MODEL_SHA256 in message and "refusing to serve it" in message
    assert hashlib.sha256(b"a tarball with a payload").hexdigest() in message
    assert [m["ModelName"] for m in sm.list_models()["Models"]] == [first["model_name"]]
    assert sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == first["endpoint_config_name"]


def test_a_package_without_a_registered_digest_is_refused(sm: Any) -> None:
    arn = register(sm, digest=None)
    with pytest.raises(integrity.ModelDataMismatch, match="records no ModelDataSha256"):
        deploy.handler(event(arn), None)
    assert sm.list_models()["Models"] == []


def test_a_digest_that_is_not_sha256_is_refused(sm: Any) -> None:
    with pytest.raises(integrity.ModelDataMismatch, match="not a SHA-256 hex digest"):
        deploy.handler(event(register(sm, digest="abc")), None)


def test_the_registered_digest_is_compared_case_insensitively(sm: Any) -> None:
    assert deploy.handler(event(register(sm, digest=MODEL_SHA256.upper())), None)["action"] == "created"


def test_inside_lambda_the_clients_are_made_once_at_init(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    try:
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "deploy")
        in_lambda = importlib.reload(deploy)
        assert in_lambda.client("sagemaker") is in_lambda.client("sagemaker")
        monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME")
        elsewhere = importlib.reload(deploy)
        assert elsewhere.client("sagemaker") is not elsewhere.client("sagemaker")
    finally:
        monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
        importlib.reload(deploy)


def test_inside_lambda_priming_at_init_sends_nothing_and_leaves_the_clients_sending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Init runs every call a deploy makes once (priming) against answers made in the process: each
    request is built and signed, none is sent, and afterwards the clients send as before."""
    import importlib

    from botocore.httpsession import URLLib3Session

    class Sent(Exception):
        pass

    sent: list[str] = []

    def send(session: Any, request: Any) -> Any:
        sent.append(request.url)
        raise Sent(request.url)

    monkeypatch.setattr(URLLib3Session, "send", send)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    built: list[str] = []
    boto3.DEFAULT_SESSION.events.register(
        "request-created", lambda operation_name, **_: built.append(operation_name)
    )
    try:
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "deploy")
        in_lambda = importlib.reload(deploy)
        assert sent == []
        assert set(built) == {
            "DescribeModelPackage", "GetObject", "DescribeEndpoint", "DescribeEndpointConfig",
            "DescribeModel", "CreateModel", "CreateEndpointConfig", "CreateEndpoint", "UpdateEndpoint",
        }
        with pytest.raises(Sent):
            in_lambda.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
        with pytest.raises(Sent):
            in_lambda.client("s3").get_object(Bucket="bucket", Key="model.tar.gz")
        assert len(sent) == 2
    finally:
        monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
        importlib.reload(deploy)


def changing(status: str, config: str = "other-config") -> dict[str, Any]:
    return {**describe_endpoint_response(config), "EndpointStatus": status}


ENDPOINT_ARN = f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}"


def waited_then_updated(
    monkeypatch: pytest.MonkeyPatch, stubber: Stubber, new_config: str, first_poll: str
) -> dict[str, str]:
    """The deploy, with polls that find another deploy's change under way, then over, and the
    update sent after them."""
    stubber.add_response("describe_endpoint", changing(first_poll), {"EndpointName": ENDPOINT})
    stubber.add_response("describe_endpoint", changing("InService"), {"EndpointName": ENDPOINT})
    looked_again(stubber)
    stubber.add_response("update_endpoint", {"EndpointArn": ENDPOINT_ARN},
                         {"EndpointName": ENDPOINT, "EndpointConfigName": new_config})
    monkeypatch.setattr(deploy, "POLL_SECONDS", 0.01)
    with stubber:
        result = deploy.handler(event(PACKAGE_ARN), None)
        stubber.assert_no_pending_responses()  # two polls, a look at what it serves, the update
    return result


@pytest.mark.parametrize("status", deploy.CHANGING)
def test_another_deploys_change_is_waited_for_then_the_endpoint_updated(
    monkeypatch: pytest.MonkeyPatch, status: str
) -> None:
    """A second pipeline run (or an approval) deploying while the first one's update is under way:
    UpdateEndpoint would be refused ('Cannot update in-progress endpoint'), so the handler waits."""
    new_config = expected_config_name({})
    stubber = stubbed_client(monkeypatch, new_config, changing(status))
    result = waited_then_updated(monkeypatch, stubber, new_config, status)
    assert result["action"] == "updated"
    assert result["reason"] == f"endpoint {ENDPOINT} moving from other-config to {new_config}"


@pytest.mark.parametrize(("refused", "current", "refusal", "first_poll"), [
    ("create_endpoint", None, "Cannot create already existing endpoint", "Creating"),
    ("update_endpoint", describe_endpoint_response("other-config"), "Cannot update in-progress endpoint",
     "Updating"),
])
def test_a_change_another_deploy_made_after_the_look_is_waited_for_then_the_endpoint_updated(
    monkeypatch: pytest.MonkeyPatch, refused: str, current: dict[str, Any] | None, refusal: str,
    first_poll: str,
) -> None:
    """Two executions deploying at once: both looked before either changed the endpoint, and
    SageMaker refused the second one's CreateEndpoint or UpdateEndpoint, which failed that deploy;
    it now looks again and rolls out onto the endpoint as the other left it."""
    new_config = expected_config_name({})
    served = None if current is None else "s3://bucket/older/model.tar.gz"
    stubber = stubbed_client(monkeypatch, new_config, current, served)
    if current is not None:
        looked_again(stubber, current["EndpointConfigName"])
    stubber.add_client_error(
        refused, service_error_code="ValidationException", service_message=f'{refusal} "{ENDPOINT_ARN}".',
        expected_params={"EndpointName": ENDPOINT, "EndpointConfigName": new_config},
    )
    result = waited_then_updated(monkeypatch, stubber, new_config, first_poll)
    assert (result["action"], result["reason"]) == (
        "updated", f"endpoint {ENDPOINT} moving from other-config to {new_config}"
    )


@pytest.mark.parametrize(("status", "polled", "refusal"), [
    ("Failed", "Deleting", "is not deleted after"),
    ("Updating", "Updating", "is still Updating after 0.375 s: another deploy is changing it"),
])
def test_a_wait_that_outlasts_the_budget_fails_the_deploy_changing_nothing(
    monkeypatch: pytest.MonkeyPatch, status: str, polled: str, refusal: str
) -> None:
    """Three polls fit the budget, then a RuntimeError: no CreateEndpoint after a deletion that does
    not end, no UpdateEndpoint while another deploy's change goes on."""
    new_config = expected_config_name({})
    stubber = stubbed_client(monkeypatch, new_config, changing(status))
    if status == "Failed":
        stubber.add_response("delete_endpoint", {}, {"EndpointName": ENDPOINT})
    for _ in range(3):
        stubber.add_response("describe_endpoint", changing(polled), {"EndpointName": ENDPOINT})
    monkeypatch.setattr(deploy, "POLL_SECONDS", 0.125)
    monkeypatch.setattr(deploy, "wait_budget", lambda context: 0.375)
    with stubber, pytest.raises(RuntimeError, match=f"endpoint {ENDPOINT} {refusal}"):
        deploy.handler(event(PACKAGE_ARN), None)
    stubber.assert_no_pending_responses()


def test_an_update_away_from_this_very_config_is_waited_for_then_undone(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """During an update EndpointConfigName is still the config the endpoint leaves: a deploy of
    that config said "unchanged" and the endpoint went on to the other deploy's version."""
    new_config = expected_config_name({})
    leaving = {**changing("Updating", config=new_config),
               "PendingDeploymentSummary": {"EndpointConfigName": "other-config"}}
    stubber = stubbed_client(monkeypatch, new_config, leaving)
    result = waited_then_updated(monkeypatch, stubber, new_config, "Updating")
    assert result["action"] == "updated", result


def test_a_change_to_this_very_config_is_not_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    new_config = expected_config_name({})
    stubber = stubbed_client(monkeypatch, new_config, changing("Creating", config=new_config))
    with stubber:
        result = deploy.handler(event(PACKAGE_ARN), None)
        stubber.assert_no_pending_responses()
    assert result["action"] == "unchanged"


def test_waiting_on_another_deploy_polls_soon_then_less_often(monkeypatch: pytest.MonkeyPatch) -> None:
    """A local update ends within a second, a SageMaker one in minutes: the first look comes after
    half a second, and the waits double up to POLL_SECONDS."""
    slept: list[float] = []
    monkeypatch.setattr(deploy.time, "sleep", slept.append)
    new_config = expected_config_name({})
    stubber = stubbed_client(monkeypatch, new_config, changing("Updating"))
    for _ in range(5):
        stubber.add_response("describe_endpoint", changing("Updating"), {"EndpointName": ENDPOINT})
    stubber.add_response("describe_endpoint", changing("InService"), {"EndpointName": ENDPOINT})
    looked_again(stubber)
    stubber.add_response(
        "update_endpoint",
        {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/e"},
        {"EndpointName": ENDPOINT, "EndpointConfigName": new_config},
    )
    with stubber:
        assert deploy.handler(event(PACKAGE_ARN), None)["action"] == "updated"
        stubber.assert_no_pending_responses()
    assert slept == [0.5, 1.0, 2.0, 4.0, 5, 5]


LATER = datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC)  # a second after this deploy's version (NOW)


@pytest.mark.parametrize(("served_package", "served_status", "served_at", "action"), [
    (OLDER_ARN, "Approved", LATER, "superseded"),
    (OLDER_ARN, "Approved", datetime(2023, 6, 1, tzinfo=UTC), "updated"),
    (OLDER_ARN, "PendingManualApproval", LATER, "superseded"),  # a rollback on its way to Approved
    (OLDER_ARN, "Rejected", LATER, "updated"),  # rejected since: nothing to give way to
    (PACKAGE_ARN, "Approved", LATER, "updated"),  # this very version, approved again: new settings
])
def test_a_deploy_gives_way_to_a_version_approved_after_its_own(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], served_package: str,
    served_status: str, served_at: datetime, action: str,
) -> None:
    """Approvals seconds apart deploy at the same time, in no order: the endpoint ended on whichever
    deploy finished last, not on the version approved last."""
    new_config = expected_config_name({})
    current = describe_endpoint_response(f"{ENDPOINT}-v2-0badc0de")
    stubber = stubbed_client(monkeypatch, new_config, current, "s3://bucket/older/model.tar.gz")
    looked_again(stubber, current["EndpointConfigName"], served_package, served_status, served_at)
    if action == "updated":
        stubber.add_response("update_endpoint", {"EndpointArn": ENDPOINT_ARN},
                             {"EndpointName": ENDPOINT, "EndpointConfigName": new_config})
    with stubber:
        result = deploy.handler(event(PACKAGE_ARN), None)
        stubber.assert_no_pending_responses()
    assert result["action"] == action
    # The last line names the version by its tag: `models approve --wait` stops on a superseded one.
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"deploy: {action} {deploy.package_tag(PACKAGE_ARN, 3)}: {result['reason']}")
    if action == "superseded":
        assert result["reason"] == (
            f"endpoint {ENDPOINT} serves {OLDER_ARN}, {served_status} at 2024-01-01T00:00:01+00:00, "
            "after this version was approved (at 2024-01-01T00:00:00+00:00): the later decision stands"
        )


def test_the_approval_time_is_the_events_own_else_the_versions() -> None:
    """An approval event reports the moment of the change; the version's LastModifiedTime may be
    later (approved again, annotated) by the time its deploy runs."""
    package = {"CreationTime": NOW, "LastModifiedTime": LATER}
    approval = {"detail-type": deploy.APPROVAL_EVENT,
                "detail": {"ModelPackageArn": PACKAGE_ARN, "LastModifiedTime": 1704067200250}}
    assert deploy.approval_time(approval, package) == datetime(2024, 1, 1, 0, 0, 0, 250000, tzinfo=UTC)
    assert deploy.approval_time(event(PACKAGE_ARN), package) == LATER
    assert deploy.approval_time(event(PACKAGE_ARN), {"CreationTime": NOW}) == NOW

"""CreateFunction's and UpdateFunctionConfiguration's members as boto3 sends them: Lambda's limits,
the members the local Lambda refuses because it cannot reproduce them, and the ones it keeps and
echoes as Lambda does."""

from __future__ import annotations

import base64
import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.local.api.protocol import Dispatcher
from pipelines.local.lambdas.configuration import ARCHITECTURE
from pipelines.local.service.backend import LocalSageMaker

from .shapes_support import model
from .world import ROLE, function_settled
from .world import lambda_call as call

HANDLER = b"""
import os


def handler(event, context):
    return {"context": context.log_group_name, "variable": os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]}
"""
OTHER_ARCHITECTURE = "arm64" if ARCHITECTURE == "x86_64" else "x86_64"
BUS = "arn:aws:events:us-east-1:000000000000:event-bus/default"


def code() -> dict[str, str]:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive:
        archive.writestr("app.py", HANDLER)
    return {"ZipFile": base64.b64encode(raw.getvalue()).decode()}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Dispatcher, LocalSageMaker]]:
    backend = LocalSageMaker(tmp_path / "state", "us-east-1", "http://127.0.0.1:1")
    yield Dispatcher(backend, check_responses=True), backend
    backend.shutdown()


def create(served: tuple[Dispatcher, LocalSageMaker], **members: Any) -> tuple[int, dict[str, Any]]:
    """CreateFunction of `f`, once Active when it was created."""
    dispatcher, backend = served
    status, body = call(dispatcher, "CreateFunction", FunctionName="f", Runtime="python3.12", Role=ROLE,
                        Handler="app.handler", Code=code(), **members)
    if status == 201:
        function_settled(backend.functions, "f")
    return status, body


def test_a_timeout_over_900_seconds_is_refused_as_lambda_refuses_it(
    served: tuple[Dispatcher, LocalSageMaker],
) -> None:
    dispatcher, _ = served
    status, refused = create(served, Timeout=901, MemorySize=10241, EphemeralStorage={"Size": 10241})
    assert (status, refused["__type"]) == (400, "ValidationException")
    assert refused["message"] == (
        "3 validation errors detected: "
        "Value '901' at 'timeout' failed to satisfy constraint: Member must have value less than or equal to "
        "900; Value '10241' at 'memorySize' failed to satisfy constraint: Member must have value less than "
        "or equal to 10240; Value '10241' at 'ephemeralStorage.size' failed to satisfy constraint: Member "
        "must have value less than or equal to 10240")
    assert call(dispatcher, "GetFunction", FunctionName="f")[0] == 404

    assert create(served, Timeout=900, MemorySize=10240, EphemeralStorage={"Size": 10240})[0] == 201
    status, refused = call(dispatcher, "UpdateFunctionConfiguration", FunctionName="f", Timeout=901)
    assert (status, refused["__type"]) == (400, "ValidationException")
    assert call(dispatcher, "GetFunctionConfiguration", FunctionName="f")[1]["Timeout"] == 900


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"Layers": ["arn:aws:lambda:us-east-1:000000000000:layer:deps:1"]},
         "^Layers is not supported by the local Lambda: the local Lambda installs no layers: a function runs "
         "with its own package's code only. Call without Layers.$"),
        ({"DeadLetterConfig": {"TargetArn": "arn:aws:sqs:us-east-1:000000000000:failed"}},
         r"^The local Lambda cannot deliver failed asynchronous events \(DeadLetterConfig\) to "
         r"arn:aws:sqs:us-east-1:000000000000:failed: it delivers them to a Lambda function of this account "
         rf"and region, or to the default event bus \({BUS}\); .* Call without DeadLetterConfig, and name "
         "one of those as the OnFailure destination of the function's event invoke config.$"),
        ({"DeadLetterConfig": {"TargetArn": "arn:aws:sns:us-east-1:000000000000:failed"}},
         "cannot deliver failed asynchronous events .* to arn:aws:sns:"),
        ({"VpcConfig": {"SubnetIds": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}},
         "^VpcConfig is not supported by the local Lambda: .* Call without VpcConfig.$"),
        ({"FileSystemConfigs": [{"Arn": "arn:aws:elasticfilesystem:us-east-1:000000000000:access-point/"
                                        "fsap-0123456789abcdef0", "LocalMountPath": "/mnt/data"}]},
         "^FileSystemConfigs is not supported"),
        ({"ImageConfig": {"Command": ["app.handler"]}}, "^ImageConfig is not supported"),
        ({"TracingConfig": {"Mode": "Active"}, "LoggingConfig": {"LogFormat": "JSON"}},
         "^LoggingConfig with LogFormat JSON or log levels is not supported by the local Lambda: its runtime "
         "writes every log line as text. Call with LogFormat Text"),
        ({"LoggingConfig": {"ApplicationLogLevel": "WARN"}},
         "^LoggingConfig with LogFormat JSON or log levels"),
        ({"TenancyConfig": {"TenantIsolationMode": "PER_TENANT"}}, "^TenancyConfig is not supported"),
        ({"DurableConfig": {"RetentionPeriodInDays": 7}}, "^DurableConfig is not supported"),
    ],
)
def test_a_member_the_local_lambda_cannot_reproduce_is_refused_at_create_and_update(
    served: tuple[Dispatcher, LocalSageMaker], members: dict[str, Any], message: str
) -> None:
    dispatcher, _ = served
    status, refused = create(served, **members)
    assert (status, refused["__type"]) == (400, "InvalidParameterValueException")
    assert call(dispatcher, "GetFunction", FunctionName="f")[0] == 404
    assert re.search(message, refused["message"]), refused["message"]

    if not set(members) <= set(model("Lambda", "UpdateFunctionConfiguration").input_shape.members):
        return  # set at create only
    assert create(served)[0] == 201
    status, refused = call(dispatcher, "UpdateFunctionConfiguration", FunctionName="f", **members)
    assert (status, refused["__type"]) == (400, "InvalidParameterValueException")
    assert re.search(message, refused["message"]), refused["message"]
    stored = call(dispatcher, "GetFunctionConfiguration", FunctionName="f")[1]
    assert not set(members) & set(stored) - {"TracingConfig", "LoggingConfig"}
    assert (stored["TracingConfig"], stored["LoggingConfig"]["LogFormat"]) == (
        {"Mode": "PassThrough"}, "Text")


def test_emptied_settings_ask_for_nothing_and_are_accepted(served: tuple[Dispatcher, LocalSageMaker]) -> None:
    dispatcher, _ = served
    emptied = {"Layers": [], "VpcConfig": {"SubnetIds": [], "SecurityGroupIds": []}, "FileSystemConfigs": [],
               "DeadLetterConfig": {"TargetArn": ""}}  # how an update removes each of them on Lambda
    assert create(served, **emptied)[0] == 201
    status, updated = call(dispatcher, "UpdateFunctionConfiguration", FunctionName="f", **emptied)
    assert status == 200, updated


def test_another_architecture_or_a_container_image_or_a_version_is_refused(
    served: tuple[Dispatcher, LocalSageMaker],
) -> None:
    dispatcher, _ = served
    status, refused = create(served, Architectures=[OTHER_ARCHITECTURE])
    assert (status, refused["__type"]) == (400, "InvalidParameterValueException")
    assert refused["message"] == (
        f'Architectures ["{OTHER_ARCHITECTURE}"] is not supported by the local Lambda: it runs functions on '
        f'this machine\'s {ARCHITECTURE}. Call with Architectures ["{ARCHITECTURE}"] or without it.')
    status, refused = create(served, PackageType="Image")
    assert refused["message"].startswith("PackageType Image is not supported by the local Lambda: the local "
                                         "Lambda runs .zip packages, not container images.")

    status, created = create(served, Architectures=[ARCHITECTURE])
    assert (status, created["Architectures"], created["PackageType"]) == (201, [ARCHITECTURE], "Zip")
    status, refused = call(dispatcher, "UpdateFunctionCode", FunctionName="f",
                           Architectures=[OTHER_ARCHITECTURE], **code())
    assert (status, refused["__type"]) == (400, "InvalidParameterValueException")
    assert refused["message"].startswith(f'Architectures ["{OTHER_ARCHITECTURE}"] is not supported')
    for operation, members in (("CreateFunction", {"FunctionName": "g", "Runtime": "python3.12", "Role": ROLE,
                                                   "Handler": "app.handler", "Code": code()}),
                               ("UpdateFunctionCode", {"FunctionName": "f", **code()})):
        status, refused = call(dispatcher, operation, PublishTo="LATEST_PUBLISHED", **members)
        assert (status, refused["message"]) == (
            400, "PublishTo is not supported by the local Lambda: a function has only its $LATEST version "
            "here. Call without PublishTo.")


def test_the_members_lambda_keeps_are_echoed_with_its_defaults(
    served: tuple[Dispatcher, LocalSageMaker],
) -> None:
    dispatcher, backend = served
    status, plain = create(served)
    assert status == 201
    assert (plain["Description"], plain["TracingConfig"], plain["EphemeralStorage"]) == (
        "", {"Mode": "PassThrough"}, {"Size": 512})
    assert plain["SnapStart"] == {"ApplyOn": "None", "OptimizationStatus": "Off"}
    assert plain["LoggingConfig"] == {"LogFormat": "Text", "LogGroup": "/aws/lambda/f"}
    assert (plain["Architectures"], "KMSKeyArn" in plain) == ([ARCHITECTURE], False)
    assert "Tags" not in call(dispatcher, "GetFunction", FunctionName="f")[1]

    key = "arn:aws:kms:us-east-1:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    given = {"Description": "deploys models", "KMSKeyArn": key, "TracingConfig": {"Mode": "Active"},
             "EphemeralStorage": {"Size": 1024}, "SnapStart": {"ApplyOn": "PublishedVersions"},
             "LoggingConfig": {"LogFormat": "Text", "LogGroup": "/team/deploys"}}
    status, updated = call(dispatcher, "UpdateFunctionConfiguration", FunctionName="f", **given)
    assert status == 200, updated
    function_settled(backend.functions, "f")
    echoed = call(dispatcher, "GetFunctionConfiguration", FunctionName="f")[1]
    assert {member: echoed[member] for member in given} == {
        **given, "SnapStart": {"ApplyOn": "PublishedVersions", "OptimizationStatus": "Off"}}
    assert echoed["RevisionId"] == updated["RevisionId"] != plain["RevisionId"]

    status, _ = call(dispatcher, "CreateFunction", FunctionName="g", Runtime="python3.12", Role=ROLE,
                          Handler="app.handler", Code=code(), Tags={"team": "ml"}, Description="tagged")
    assert status == 201
    got = call(dispatcher, "GetFunction", FunctionName="g")[1]
    assert (got["Tags"], got["Configuration"]["Description"]) == ({"team": "ml"}, "tagged")


def test_a_log_group_of_the_functions_own_is_the_one_its_handler_sees(
    served: tuple[Dispatcher, LocalSageMaker],
) -> None:
    _, backend = served
    assert create(served)[0] == 201
    default = "/aws/lambda/f"
    assert backend.functions.invoke("f", {}).payload == {"context": default, "variable": default}
    logging = {"LogGroup": "/team/deploys"}
    backend.functions.update_configuration({"FunctionName": "f", "LoggingConfig": logging})
    function_settled(backend.functions, "f")
    assert backend.functions.invoke("f", {}).payload == {"context": logging["LogGroup"],
                                                         "variable": logging["LogGroup"]}


def test_an_update_for_a_revision_that_is_no_longer_the_functions_is_refused(
    served: tuple[Dispatcher, LocalSageMaker],
) -> None:
    dispatcher, backend = served
    revision = create(served)[1]["RevisionId"]
    status, updated = call(dispatcher, "UpdateFunctionConfiguration", FunctionName="f", RevisionId=revision,
                           Description="first")
    assert status == 200, updated
    function_settled(backend.functions, "f")
    for operation, members in (("UpdateFunctionConfiguration", {"Description": "second"}),
                               ("UpdateFunctionCode", code())):
        status, refused = call(dispatcher, operation, FunctionName="f", RevisionId=revision, **members)
        assert (status, refused["__type"]) == (412, "PreconditionFailedException")
        assert refused["message"] == (
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias "
            "API to retrieve the latest Revision Id")
    kept = call(dispatcher, "GetFunctionConfiguration", FunctionName="f")[1]
    assert (kept["Description"], kept["RevisionId"]) == ("first", updated["RevisionId"])

"""Lambda's event invoke configs as boto3 calls them: Put, Get, Update, Delete and List, their
output shapes, Lambda's errors and ranges, and the destinations the local target refuses because it
cannot deliver to them."""

from __future__ import annotations

import functools
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pipelines.local.api.protocol import Dispatcher
from pipelines.local.service.backend import LocalSageMaker

from .inprocess import client
from .shapes_support import send
from .world import ROLE

ARN = "arn:aws:lambda:us-east-1:000000000000:function:{}"
BUS = "arn:aws:events:us-east-1:000000000000:event-bus/default"


@dataclass
class Local:
    dispatcher: Dispatcher
    lambda_: Any


def package() -> bytes:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return None\n")
    return raw.getvalue()


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Local]:
    """Functions "fail", "succeed" and "sink" (configs may be put while a function is Pending)."""
    backend = LocalSageMaker(tmp_path / "state", "us-east-1", "http://127.0.0.1:1")
    dispatcher = Dispatcher(backend, check_responses=True)
    made = Local(dispatcher, client(dispatcher, "lambda"))
    for name in ("fail", "succeed", "sink"):
        made.lambda_.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE,
                                     Handler="app.handler", Code={"ZipFile": package()})
    yield made
    backend.shutdown()


def error_of(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as refused:
        call()
    return {**refused.value.response["Error"],
            "Status": refused.value.response["ResponseMetadata"]["HTTPStatusCode"]}


def on_failure(destination: str) -> dict[str, Any]:
    return {"OnFailure": {"Destination": destination}}


@pytest.mark.parametrize(
    "destination",
    [
        "arn:aws:sqs:us-east-1:000000000000:deploy-failures",
        "arn:aws:sns:us-east-1:000000000000:alerts",
        "arn:aws:s3:::failure-records",
        "arn:aws:events:us-east-1:000000000000:event-bus/other",
    ],
)
def test_a_destination_the_local_target_cannot_deliver_to_is_refused(local: Local, destination: str) -> None:
    local.lambda_.put_function_event_invoke_config(FunctionName="succeed", MaximumRetryAttempts=1)
    for function, call in (("fail", local.lambda_.put_function_event_invoke_config),
                           ("succeed", local.lambda_.update_function_event_invoke_config)):
        refused = error_of(functools.partial(
            call, FunctionName=function, DestinationConfig=on_failure(destination)))
        assert (refused["Code"], refused["Status"]) == ("InvalidParameterValueException", 400)
        assert refused["Message"].startswith(
            f"The local Lambda cannot deliver invocation records to {destination}: it delivers them to a "
            f"Lambda function of this account and region, or to the default event bus ({BUS})")
    missing = error_of(lambda: local.lambda_.get_function_event_invoke_config(FunctionName="fail"))
    assert missing["Code"] == "ResourceNotFoundException", "nothing was stored"
    kept = local.lambda_.get_function_event_invoke_config(FunctionName="succeed")
    assert kept["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}, "nor changed"


def test_a_lambda_destination_must_be_another_existing_function(local: Local) -> None:
    for destination, message in [
        (ARN.format("ghost"), f"The destination ARN {ARN.format('ghost')} is invalid."),
        (ARN.format("fail"), "You can't specify the function as a destination for itself."),
    ]:
        refused = error_of(functools.partial(local.lambda_.put_function_event_invoke_config,
                                             FunctionName="fail", DestinationConfig=on_failure(destination)))
        assert (refused["Code"], refused["Message"]) == ("InvalidParameterValueException", message)


def test_event_invoke_configs_are_put_got_updated_listed_and_deleted(local: Local) -> None:
    put = local.lambda_.put_function_event_invoke_config(FunctionName="fail", MaximumRetryAttempts=1)
    assert put["FunctionArn"] == ARN.format("fail") + ":$LATEST"
    assert put["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}
    assert put["MaximumRetryAttempts"] == 1 and "MaximumEventAgeInSeconds" not in put
    assert isinstance(put["LastModified"], datetime)

    updated = local.lambda_.update_function_event_invoke_config(
        FunctionName=ARN.format("fail"), MaximumEventAgeInSeconds=3600, DestinationConfig=on_failure(BUS)
    )
    assert (updated["MaximumRetryAttempts"], updated["MaximumEventAgeInSeconds"]) == (1, 3600)
    got = local.lambda_.get_function_event_invoke_config(FunctionName="fail", Qualifier="$LATEST")
    assert got["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {"Destination": BUS}}
    (listed,) = local.lambda_.list_function_event_invoke_configs(
        FunctionName="fail")["FunctionEventInvokeConfigs"]
    assert listed == {k: v for k, v in got.items() if k != "ResponseMetadata"}

    replaced = local.lambda_.put_function_event_invoke_config(
        FunctionName="fail", MaximumEventAgeInSeconds=60)
    assert "MaximumRetryAttempts" not in replaced, "what Put leaves out is Lambda's default again"
    assert replaced["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}

    deleted = local.lambda_.delete_function_event_invoke_config(FunctionName="fail")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    listed_after = local.lambda_.list_function_event_invoke_configs(FunctionName="fail")
    assert listed_after["FunctionEventInvokeConfigs"] == []


def test_event_invoke_config_errors_are_lambdas(local: Local) -> None:
    lambda_ = local.lambda_
    missing_config = f"The function {ARN.format('fail')}:$LATEST doesn't have an EventInvokeConfig"
    cases = [
        (lambda: lambda_.get_function_event_invoke_config(FunctionName="fail"),
         "ResourceNotFoundException", missing_config),
        (lambda: lambda_.delete_function_event_invoke_config(FunctionName="fail"),
         "ResourceNotFoundException", missing_config),
        (lambda: lambda_.update_function_event_invoke_config(FunctionName="fail", MaximumRetryAttempts=1),
         "ResourceNotFoundException", missing_config),
        (lambda: lambda_.get_function_event_invoke_config(FunctionName="fail", Qualifier="7"),
         "ResourceNotFoundException",
         f"The function {ARN.format('fail')}:7 doesn't have an EventInvokeConfig"),
        (lambda: lambda_.put_function_event_invoke_config(FunctionName="ghost", MaximumRetryAttempts=1),
         "ResourceNotFoundException", "The function doesn't exist."),
        (lambda: lambda_.put_function_event_invoke_config(FunctionName="fail", Qualifier="7",
                                                          MaximumRetryAttempts=1),
         "ResourceNotFoundException", "The function doesn't exist."),
        (lambda: lambda_.list_function_event_invoke_configs(FunctionName="ghost"),
         "ResourceNotFoundException", "The function doesn't exist."),
        (lambda: lambda_.put_function_event_invoke_config(FunctionName="fail"),
         "InvalidParameterValueException",
         "You must specify at least one of error handling or destination setting."),
        (lambda: lambda_.put_function_event_invoke_config(FunctionName="fail:$LATEST", Qualifier="7",
                                                          MaximumRetryAttempts=1),
         "InvalidParameterValueException",
         "The derived qualifier from the function name does not match the specified qualifier."),
    ]
    for call, code, message in cases:
        refused = error_of(call)
        assert (refused["Code"], refused["Message"]) == (code, message)


@pytest.mark.parametrize(
    ("setting", "value", "constraint"),
    [
        ("MaximumRetryAttempts", 3, "less than or equal to 2"),
        ("MaximumRetryAttempts", -1, "greater than or equal to 0"),
        ("MaximumEventAgeInSeconds", 59, "greater than or equal to 60"),
        ("MaximumEventAgeInSeconds", 21601, "less than or equal to 21600"),
    ],
)
def test_settings_out_of_lambdas_ranges_are_refused(
    local: Local, setting: str, value: int, constraint: str
) -> None:
    """Sent as is: boto3 itself refuses a value under a minimum before sending it."""
    request = {"FunctionName": "fail", setting: value}
    reply = send(local.dispatcher, "Lambda", "PutFunctionEventInvokeConfig", request)
    refused = json.loads(reply.body)
    assert (reply.status, refused["__type"]) == (400, "ValidationException")
    member = setting[0].lower() + setting[1:]
    violation = f"Value '{value}' at '{member}' failed to satisfy constraint: Member must have value "
    assert violation + constraint in refused["message"]

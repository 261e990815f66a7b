"""Upsert's deploy function on the local target, which has no infra stack: created on the first
upsert, and its configuration follows the settings on every later one."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pipelines.code_bundle import CodeBundle
from pipelines.local.api.protocol import Dispatcher
from pipelines.local.service.backend import LocalSageMaker
from pipelines.publish import publish_deploy_function
from pipelines.settings import Settings, load_settings

from .shapes_support import send


class DispatchedLambda:
    """The Lambda calls publish_deploy_function makes, sent through the local server's REST API
    (blobs base64-encoded, as botocore sends them in a JSON body)."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.calls: list[str] = []

    def _call(self, name: str, request: dict[str, Any]) -> Any:
        self.calls.append(name)
        reply = send(self.dispatcher, "Lambda", name, request)
        answer = json.loads(reply.body) if reply.body else {}
        if reply.status >= 400:
            code = reply.headers.get("x-amzn-ErrorType", "").split(":")[0] or answer.get("__type", "")
            raise ClientError({"Error": {"Code": code, "Message": str(answer)}}, name)
        return answer

    def update_function_code(self, FunctionName: str, ZipFile: bytes) -> Any:
        return self._call("UpdateFunctionCode", {"FunctionName": FunctionName,
                                                 "ZipFile": base64.b64encode(ZipFile).decode()})

    def create_function(self, **request: Any) -> Any:
        request["Code"] = {"ZipFile": base64.b64encode(request["Code"]["ZipFile"]).decode()}
        return self._call("CreateFunction", request)

    def update_function_configuration(self, **request: Any) -> Any:
        return self._call("UpdateFunctionConfiguration", request)

    def get_function(self, FunctionName: str) -> Any:
        return self._call("GetFunction", {"FunctionName": FunctionName})


@pytest.fixture
def lambda_(tmp_path: Path) -> Iterator[DispatchedLambda]:
    backend = LocalSageMaker(tmp_path / "state", "us-east-1", "http://127.0.0.1:1")
    yield DispatchedLambda(Dispatcher(backend, check_responses=True))
    backend.shutdown()


def local_settings(tmp_path: Path, **values: str) -> Settings:
    return load_settings({"target": "local", **values}, environ={}, config_file=tmp_path / "absent.toml")


def publish(settings: Settings, lambda_: DispatchedLambda) -> dict[str, Any]:
    publish_deploy_function(SimpleNamespace(settings=settings, lambda_=lambda_), CodeBundle())  # type: ignore[arg-type]
    configuration: dict[str, Any] = lambda_.get_function(settings.deploy_function_name)["Configuration"]
    return configuration


def test_the_deploy_functions_configuration_follows_the_settings_on_every_upsert(
    tmp_path: Path, lambda_: DispatchedLambda
) -> None:
    first = publish(local_settings(tmp_path), lambda_)
    assert lambda_.calls == ["UpdateFunctionCode", "CreateFunction", "GetFunction"]
    assert first["Environment"]["Variables"]["ENDPOINT_NAME"] == "sentiment-classifier"

    lambda_.calls.clear()
    again = publish(local_settings(tmp_path), lambda_)
    assert lambda_.calls == ["UpdateFunctionCode", "GetFunction"]  # nothing to reconfigure
    assert again == first

    lambda_.calls.clear()
    moved = publish(local_settings(tmp_path, endpoint_name="reviews-v2"), lambda_)
    assert lambda_.calls == ["UpdateFunctionCode", "UpdateFunctionConfiguration", "GetFunction"]
    assert moved["Environment"]["Variables"]["ENDPOINT_NAME"] == "reviews-v2"
    assert (moved["Handler"], moved["Runtime"], moved["Timeout"]) == ("deploy.handler", "python3.12", 120)

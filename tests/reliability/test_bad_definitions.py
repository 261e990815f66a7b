"""CreatePipeline answers every definition with a result or a client error, never a server error.

Each example takes a definition the SDK wrote and replaces one to three of its parts, anywhere in
the tree, with arbitrary JSON: the service must refuse what is wrong with a ValidationException
(or accept what is still valid), and nothing it is sent may make it fail inside with a 500.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mutations import mutated, values

from pipelines.local.api.protocol import Dispatcher
from pipelines.local.jobs.images import local_sklearn_release
from pipelines.local.service.backend import LocalSageMaker

from .test_bad_requests import BASE_SETTINGS


def accepted_definition() -> Any:
    """The SDK-written definition of tests/local/data, made one the local target accepts: its
    images are of the scikit-learn release installed here, and every parameter it reads declared."""
    text = (Path(__file__).parents[1] / "local" / "data" / "sdk-definition.json").read_text()
    document = json.loads(text.replace("1.4-2-cpu-py3", f"{local_sklearn_release()}-1-cpu-py3"))
    document["Parameters"].append(
        {"Name": "ModelApprovalStatus", "Type": "String", "DefaultValue": "PendingManualApproval"}
    )
    return document


DEFINITION = accepted_definition()
ROLE = "arn:aws:iam::000000000000:role/local"
EXAMPLES = 600


@st.composite
def mutated_definitions(draw: st.DrawFn) -> Any:
    return mutated(draw, DEFINITION, values)


def test_the_definition_mutated_is_one_the_service_accepts(dispatcher: Dispatcher) -> None:
    request = {"PipelineName": "unmutated", "PipelineDefinition": json.dumps(DEFINITION), "RoleArn": ROLE,
               "ClientRequestToken": uuid.uuid4().hex}
    reply = dispatcher.json_api("SageMaker.CreatePipeline", json.dumps(request).encode())
    assert reply.status == 200, reply.body


@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dispatcher]:
    backend = LocalSageMaker(tmp_path_factory.mktemp("bad-definitions"), "us-east-1", "http://127.0.0.1:1")
    yield Dispatcher(backend, check_responses=True)
    backend.shutdown()


NAMES = (f"p{n}" for n in itertools.count())


@settings(BASE_SETTINGS, max_examples=EXAMPLES)
@given(document=mutated_definitions())
def test_a_mutated_definition_is_accepted_or_refused_never_a_server_error(
    dispatcher: Dispatcher, document: Any
) -> None:
    request = {"PipelineName": next(NAMES), "PipelineDefinition": json.dumps(document), "RoleArn": ROLE,
               "ClientRequestToken": uuid.uuid4().hex}
    reply = dispatcher.json_api("SageMaker.CreatePipeline", json.dumps(request).encode())
    assert reply.status in (200, 400), reply.body
    if reply.status == 400:
        assert json.loads(reply.body)["__type"] == "ValidationException", reply.body

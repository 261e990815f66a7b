"""CreatePipeline answers every definition with a result or a client error, never a server error.

Each example takes a definition the SDK wrote and replaces one to three of its parts, anywhere in
the tree, with arbitrary JSON: the service must refuse what is wrong with a ValidationException
(or accept what is still valid), and nothing it is sent may make it fail inside with a 500.
"""

from __future__ import annotations

import copy
import itertools
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
Path_ = tuple[str | int, ...]

# What a part may become: any JSON, and the expression shapes a definition is made of.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**12) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
expressions = st.sampled_from([
    {"Get": "Parameters.Nope"}, {"Get": "Steps.Train.Nope"}, {"Get": "Steps.Ghost.X"}, {"Get": 3},
    {"Std:Join": {"On": 1, "Values": "x"}}, {"Std:JsonGet": {"PropertyFile": 7, "Path": []}},
    {"Get": "Execution.Nope"}, {"Bogus:Function": {}}, [], {},
]).map(copy.deepcopy)  # each example its own copy: a later replacement may write inside it
values = json_values | expressions


def paths(node: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    """Every part of the tree, by the keys and indexes that reach it."""
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from paths(child, (*prefix, index))


def replaced(document: Any, path: Path_, value: Any) -> Any:
    if not path:
        return value
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return document


@st.composite
def mutated_definitions(draw: st.DrawFn) -> Any:
    document = copy.deepcopy(DEFINITION)
    for _ in range(draw(st.integers(1, 3))):
        targets = list(paths(document))
        document = replaced(document, draw(st.sampled_from(targets)), draw(values))
    return document


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

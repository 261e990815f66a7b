"""Conditions and functions as SDK v3 writes them run on the local target: the branch taken and the
message built are the ones the definition asks for."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .world import World, local_sagemaker

BUILDER = Path(__file__).parent / "data" / "sdk_conditions_pipeline.py"


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    """Built by the SDK in a process of its own, as `pipelines definition` builds the project's."""
    built = subprocess.run([sys.executable, str(BUILDER)], capture_output=True, text=True, check=True)
    return dict(json.loads(built.stdout))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    backend = local_sagemaker(tmp_path / "state")
    yield World(backend)
    backend.shutdown()


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({}, "yes-x-2-sdk-conditions"),
        ({"Count": "9"}, "yes-x-9-sdk-conditions"),  # Or: its first branch holds
        ({"Name": "y"}, "no-y"),  # Not
        ({"Name": "w"}, "no-w"),  # In
        ({"Count": "3"}, "no-x"),  # Or: neither branch holds
    ],
)
def test_each_condition_as_the_sdk_writes_it_picks_the_branch(
    world: World, definition: dict[str, Any], parameters: dict[str, str], message: str
) -> None:
    pipeline = world.pipeline(definition, name="sdk-conditions")
    given = [{"Name": key, "Value": value} for key, value in parameters.items()]
    assert world.fail_message(world.start(pipeline, PipelineParameters=given)) == message


def test_the_sdk_writes_a_not_as_the_executor_reads_it(definition: dict[str, Any]) -> None:
    (negation, _within, _either) = definition["Steps"][0]["Arguments"]["Conditions"]
    assert negation["Type"] == "Not" and negation["Condition"]["Type"] == "Equals"

"""Print the definition of a pipeline built with SDK v3: a Condition step over every kind of condition
on parameters, each branch a Fail step whose message says which branch ran (a Fail step ends the
execution with its own message). Run as a script by tests/local/test_sdk_conditions.py."""

from __future__ import annotations

from pipelines.sdk_env import prepare_sdk_environment

prepare_sdk_environment()

import boto3  # noqa: E402
from sagemaker.core.workflow.conditions import (  # noqa: E402
    ConditionEquals,
    ConditionGreaterThan,
    ConditionIn,
    ConditionLessThanOrEqualTo,
    ConditionNot,
    ConditionOr,
)
from sagemaker.core.workflow.execution_variables import ExecutionVariables  # noqa: E402
from sagemaker.core.workflow.functions import Join  # noqa: E402
from sagemaker.core.workflow.parameters import ParameterInteger, ParameterString  # noqa: E402
from sagemaker.core.workflow.pipeline_context import PipelineSession  # noqa: E402
from sagemaker.mlops.workflow.condition_step import ConditionStep  # noqa: E402
from sagemaker.mlops.workflow.fail_step import FailStep  # noqa: E402
from sagemaker.mlops.workflow.pipeline import Pipeline  # noqa: E402

name, count = ParameterString("Name", default_value="x"), ParameterInteger("Count", default_value=2)
decide = ConditionStep(
    name="Decide",
    conditions=[
        ConditionNot(ConditionEquals(name, "y")),
        ConditionIn(name, ["x", "z"]),
        ConditionOr([ConditionGreaterThan(count, 5), ConditionLessThanOrEqualTo(count, 2)]),
    ],
    if_steps=[FailStep(name="Yes", error_message=Join(on="-", values=[
        "yes", name, count, ExecutionVariables.PIPELINE_NAME]))],
    else_steps=[FailStep(name="No", error_message=Join(on="-", values=["no", name]))],
)
session = PipelineSession(boto_session=boto3.Session(region_name="us-east-1"), default_bucket="bucket")
pipeline = Pipeline(
    name="sdk-conditions", parameters=[name, count], steps=[decide], sagemaker_session=session
)
print(pipeline.definition())

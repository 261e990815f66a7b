"""The approval rule fires for an Approved version of the project's group, and for nothing else.

Patterns are matched by moto's implementation of EventBridge pattern matching, not by a copy of
the pattern's logic, on events shaped like SageMaker's "Model Package State Change".
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from infra_helpers import ACCOUNT, REGION, Stack
from moto.events.models import EventPattern
from moto.events.utils import EventMessageType

GROUP = "sentiment-classifier"


def state_change(
    status: str = "Approved",
    group: str = GROUP,
    detail_type: str = "SageMaker Model Package State Change",
    source: str = "aws.sagemaker",
) -> EventMessageType:
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{group}/3"
    return {
        "version": "0",
        "id": "8ecfa1b5-36a7-4c1a-8b8e-0f6c2e3c1a11",
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": "2024-05-01T12:00:00Z",
        "region": REGION,
        "resources": [arn],
        "detail": {
            "ModelPackageGroupName": group,
            "ModelPackageVersion": 3,
            "ModelPackageArn": arn,
            "ModelPackageName": f"{group}/3",
            "CreationTime": 1714564800000,
            "ModelPackageStatus": "Completed",
            "ModelApprovalStatus": status,
        },
    }


@pytest.fixture(scope="module")
def pattern(stack: Stack) -> EventPattern:
    rule = stack.properties("ModelApprovedRule")
    assert rule["State"] == "ENABLED"
    return EventPattern.load(json.dumps(rule["EventPattern"]))


@pytest.mark.parametrize(
    "event, fires",
    [
        (state_change(), True),
        (state_change(status="Rejected"), False),
        (state_change(status="PendingManualApproval"), False),
        (state_change(group="another-model"), False),
        (state_change(group="sentiment-classifier-v2"), False),
        (state_change(detail_type="SageMaker Model State Change"), False),
        (state_change(source="custom.sagemaker"), False),
    ],
    ids=["approved", "rejected", "pending", "other-group", "group-prefix", "other-type", "other-source"],
)
def test_rule_fires_only_for_approved_versions_of_the_group(
    pattern: EventPattern, event: EventMessageType, fires: bool
) -> None:
    assert pattern.matches_event(event) is fires


def test_rule_follows_the_group_parameter(template: dict[str, Any]) -> None:
    stack = Stack(template, ModelPackageGroupName="reviews-v2")
    rule = stack.properties("ModelApprovedRule")
    pattern = EventPattern.load(json.dumps(rule["EventPattern"]))
    assert pattern.matches_event(state_change(group="reviews-v2"))
    assert not pattern.matches_event(state_change(group=GROUP))


def test_rule_invokes_the_deploy_function_which_allows_exactly_this_rule(stack: Stack) -> None:
    (target,) = stack.properties("ModelApprovedRule")["Targets"]
    assert target["Arn"] == stack.arn("DeployFunction")
    permission = stack.properties("ModelApprovedRulePermission")
    assert permission == {
        "Action": "lambda:InvokeFunction",
        "FunctionName": stack.physical_id("DeployFunction"),
        "Principal": "events.amazonaws.com",
        "SourceAccount": ACCOUNT,
        "SourceArn": stack.arn("ModelApprovedRule"),
    }

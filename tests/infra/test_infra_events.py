"""The approval rule fires when an update makes a version of the project's group Approved, and for
nothing else: not for a version created Approved, nor for an annotation of an Approved one.

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

from pipelines.publish import approval_rule_pattern
from pipelines.settings import Settings

GROUP = "sentiment-classifier"


def state_change(
    status: str = "Approved",
    group: str = GROUP,
    detail_type: str = "SageMaker Model Package State Change",
    source: str = "aws.sagemaker",
    updated: list[str] | None = None,
) -> EventMessageType:
    """SageMaker's event for version 3; `updated` is what an update changed (None: its creation)."""
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
            **({} if updated is None else {"UpdatedModelPackageFields": updated}),
        },
    }


APPROVAL = ["ModelApprovalStatus"]


@pytest.fixture(scope="module")
def pattern(stack: Stack) -> EventPattern:
    rule = stack.properties("ModelApprovedRule")
    assert rule["State"] == "ENABLED"
    return EventPattern.load(json.dumps(rule["EventPattern"]))


@pytest.mark.parametrize(
    "event, fires",
    [
        (state_change(updated=APPROVAL), True),
        (state_change(updated=["ApprovalDescription", "ModelApprovalStatus"]), True),
        (state_change(), False),
        (state_change(updated=["CustomerMetadataProperties"]), False),
        (state_change(status="Rejected", updated=APPROVAL), False),
        (state_change(status="PendingManualApproval", updated=APPROVAL), False),
        (state_change(group="another-model", updated=APPROVAL), False),
        (state_change(group="sentiment-classifier-v2", updated=APPROVAL), False),
        (state_change(detail_type="SageMaker Model State Change", updated=APPROVAL), False),
        (state_change(source="custom.sagemaker", updated=APPROVAL), False),
    ],
    ids=["approved", "approved-with-description", "created-approved", "annotated", "rejected", "pending",
         "other-group", "group-prefix", "other-type", "other-source"],
)
def test_rule_fires_only_when_an_update_approves_a_version_of_the_group(
    pattern: EventPattern, event: EventMessageType, fires: bool
) -> None:
    assert pattern.matches_event(event) is fires


def test_rule_follows_the_group_parameter(template: dict[str, Any]) -> None:
    stack = Stack(template, ModelPackageGroupName="reviews-v2")
    rule = stack.properties("ModelApprovedRule")
    pattern = EventPattern.load(json.dumps(rule["EventPattern"]))
    assert pattern.matches_event(state_change(group="reviews-v2", updated=APPROVAL))
    assert not pattern.matches_event(state_change(group=GROUP, updated=APPROVAL))


def test_the_local_target_puts_the_same_rule(stack: Stack) -> None:
    local = approval_rule_pattern(Settings(model_package_group=GROUP))
    assert stack.properties("ModelApprovedRule")["EventPattern"] == local


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

"""infra/deploy.py against moto's CloudFormation, and without any credentials at all.

moto 5.2.5 builds most of the stack from the template but not all of it, so these tests check
what moto does build and the template tests cover the rest statically:
- AWS::S3::BucketPolicy, AWS::SQS::QueuePolicy, AWS::Lambda::EventInvokeConfig,
  AWS::CloudWatch::Alarm and AWS::IAM::OIDCProvider are skipped (moto warns, creates nothing);
- of the bucket's properties only BucketEncryption is applied (no versioning, public access
  block or lifecycle), so the destroy test turns versioning on itself;
- a stack made through a change set gets no Outputs, so `settings` is tested on create_stack.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from infra_helpers import (
    ACCOUNT,
    GITHUB_REPOSITORY,
    INFRA,
    REGION,
    STACK_NAME,
    TEMPLATE,
    load_template,
)

from pipelines.settings import Settings, load_settings

pytestmark = pytest.mark.filterwarnings(
    "ignore:Tried to parse AWS..(S3..BucketPolicy|SQS..QueuePolicy|Lambda..EventInvokeConfig|"
    "CloudWatch..Alarm|IAM..OIDCProvider) :UserWarning"
)
MOTO_SKIPS = {
    "ArtifactBucketPolicy",
    "AccessLogBucketPolicy",
    "DeployFailureQueuePolicy",
    "DeployFunctionEventInvokeConfig",
    "DeployFunctionErrorsAlarm",
    "DeployFailuresAlarm",
    "GitHubOidcProvider",
}
BUCKET = f"sentiment-classifier-{ACCOUNT}-{REGION}"
FUNCTION = "sentiment-classifier-deploy"
GITHUB_PARAMETER = f"GitHubRepository={GITHUB_REPOSITORY}"


def aws(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def deploy(module: ModuleType, *argv: str, answer: str = "") -> int:
    return int(module.main(list(argv), ask=lambda _question: answer))


def stack_status() -> str | None:
    stacks = [
        s for s in aws("cloudformation").describe_stacks()["Stacks"] if s["StackName"] == STACK_NAME
    ]
    return str(stacks[0]["StackStatus"]) if stacks else None


@pytest.mark.usefixtures("fake_aws")
def test_deploy_yes_creates_the_stack(
    deploy_module: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy(deploy_module, "deploy", "--yes", "--parameter", GITHUB_PARAMETER) == 0
    printed = capsys.readouterr().out
    for expected in (
        f"stack:      {STACK_NAME} (to create)",
        f"region:     {REGION}",
        f"GitHubRepository                 {GITHUB_REPOSITORY}  [given]",
        "PipelineName                     sentiment-classifier  [settings]",
        "Add     ArtifactBucket",
        "Add     GitHubPipelineRole",
        "Add     GitHubApprovalRole",
    ):
        assert expected in printed, expected
    assert stack_status() == "CREATE_COMPLETE"
    cloudformation = aws("cloudformation")
    resources = cloudformation.list_stack_resources(StackName=STACK_NAME)["StackResourceSummaries"]
    built = {r["LogicalResourceId"] for r in resources} - {""}
    assert built == set(load_template()["Resources"]) - MOTO_SKIPS

    encryption = aws("s3").get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

    function = aws("lambda").get_function(FunctionName=FUNCTION)["Configuration"]
    configuration = (function["Runtime"], function["Handler"], function["Timeout"])
    assert configuration == ("python3.12", "deploy.handler", 120)
    variables = function["Environment"]["Variables"]
    roles = {r["Arn"]: r for r in boto3.client("iam").list_roles()["Roles"]}
    execution_role = roles[variables["EXECUTION_ROLE_ARN"]]
    trusted = execution_role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
    assert trusted == {"Service": "sagemaker.amazonaws.com"}
    assert roles[function["Role"]]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "lambda.amazonaws.com"
    }
    assert variables["CAPTURE_DESTINATION"] == Settings(bucket=BUCKET).s3_uri("data-capture")

    events = aws("events")
    (rule,) = events.list_rules()["Rules"]
    assert json.loads(rule["EventPattern"])["detail"]["ModelApprovalStatus"] == ["Approved"]
    (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert target["Arn"] == function["FunctionArn"]


@pytest.mark.usefixtures("fake_aws")
def test_redeploy_keeps_what_was_not_given_and_applies_what_was(
    deploy_module: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy(deploy_module, "deploy", "--yes", "--parameter", GITHUB_PARAMETER) == 0
    assert deploy(deploy_module, "deploy", "--yes", "--parameter", "CapturePercentage=50") == 0
    function = aws("lambda").get_function(FunctionName=FUNCTION)["Configuration"]
    assert str(function["Environment"]["Variables"]["CAPTURE_PERCENTAGE"]) == "50"
    parameters = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in aws("cloudformation").describe_stacks(StackName=STACK_NAME)["Stacks"][0]["Parameters"]
    }
    assert parameters["GitHubRepository"] == GITHUB_REPOSITORY
    assert "GitHubRepository                 (unchanged)  [previous value]" in capsys.readouterr().out
    assert deploy(deploy_module, "deploy", "--yes") == 0
    assert "no changes: the stack is up to date" in capsys.readouterr().out


@pytest.mark.usefixtures("fake_aws")
@pytest.mark.parametrize("answer", ["n", ""])
def test_declining_the_change_set_creates_nothing(
    deploy_module: ModuleType, capsys: pytest.CaptureFixture[str], answer: str
) -> None:
    assert deploy(deploy_module, "deploy", answer=answer) == 1
    assert "cancelled; nothing changed" in capsys.readouterr().out
    assert stack_status() in (None, "DELETE_COMPLETE")
    assert aws("s3").list_buckets()["Buckets"] == []


@pytest.mark.usefixtures("fake_aws")
def test_an_unknown_parameter_is_refused_before_anything_happens(
    deploy_module: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy(deploy_module, "deploy", "--yes", "--parameter", "GithubRepo=octo/x") == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: unknown parameter GithubRepo; the template has: PipelineName")
    assert stack_status() is None


def put_versions() -> int:
    """Two versions and a delete marker of one object, one capture object: 4 entries."""
    s3 = aws("s3")
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    key = "sentiment-classifier/data/train.csv"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"review_text,sentiment\nok,1\n")
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"review_text,sentiment\ngood,1\n")
    s3.delete_object(Bucket=BUCKET, Key=key)
    s3.put_object(Bucket=BUCKET, Key="sentiment-classifier/data-capture/x.jsonl", Body=b"{}")
    return 4


def create_endpoint(role_arn: str) -> None:
    sm = aws("sagemaker")
    sm.create_model(
        ModelName="sentiment-classifier-v1",
        ExecutionRoleArn=role_arn,
        PrimaryContainer={"Image": "image", "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz"},
    )
    sm.create_endpoint_config(
        EndpointConfigName="sentiment-classifier-v1-0123abcd",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "sentiment-classifier-v1",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(
        EndpointName="sentiment-classifier", EndpointConfigName="sentiment-classifier-v1-0123abcd"
    )


@pytest.mark.usefixtures("fake_aws")
def test_destroy_lists_asks_then_removes_endpoint_versions_and_stack(
    deploy_module: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy(deploy_module, "deploy", "--yes") == 0
    versions = put_versions()
    function = aws("lambda").get_function(FunctionName=FUNCTION)["Configuration"]
    create_endpoint(function["Environment"]["Variables"]["EXECUTION_ROLE_ARN"])
    capsys.readouterr()

    assert deploy(deploy_module, "destroy", answer="y") == 1, "only the stack name confirms"
    printed = capsys.readouterr().out
    assert f"every object version in s3://{BUCKET} ({versions})" in printed
    assert "endpoint sentiment-classifier (" in printed and "cancelled; nothing deleted" in printed
    assert stack_status() == "CREATE_COMPLETE"

    s3 = aws("s3")
    (log_bucket,) = [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"] != BUCKET]
    s3.put_object(Bucket=log_bucket, Key="artifact-bucket/2024-01-01-00-00-00-ABC", Body=b"log")
    assert deploy(deploy_module, "destroy", answer=STACK_NAME) == 0
    printed = capsys.readouterr().out
    assert f"deleted stack {STACK_NAME}" in printed
    assert f"kept: AccessLogBucket {log_bucket} (audit record)" in printed
    assert f"s3://{log_bucket}" not in printed, "the access logs are not emptied"
    assert stack_status() in (None, "DELETE_COMPLETE")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [log_bucket]
    assert s3.list_objects_v2(Bucket=log_bucket)["KeyCount"] == 1
    assert aws("sagemaker").list_endpoints()["Endpoints"] == []


@pytest.mark.usefixtures("fake_aws")
def test_destroy_without_a_stack_deletes_nothing(
    deploy_module: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy(deploy_module, "destroy", "--yes") == 0
    assert "does not exist" in capsys.readouterr().out


@pytest.mark.usefixtures("fake_aws")
def test_settings_prints_a_pipeline_toml_the_cli_accepts(
    deploy_module: ModuleType, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    aws("cloudformation").create_stack(
        StackName=STACK_NAME, TemplateBody=TEMPLATE.read_text(), Capabilities=["CAPABILITY_IAM"]
    )
    assert deploy(deploy_module, "settings") == 0
    text = capsys.readouterr().out
    assert "target" not in tomllib.loads(text)["pipeline"], "local stays the default target"
    (tmp_path / "pipeline.toml").write_text(text)
    settings = load_settings({"target": "sagemaker"}, {}, tmp_path / "pipeline.toml")
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in aws("cloudformation").describe_stacks(StackName=STACK_NAME)["Stacks"][0]["Outputs"]
    }
    assert (settings.bucket, settings.role_arn, settings.region) == (
        outputs["BucketName"],
        outputs["ExecutionRoleArn"],
        REGION,
    )
    assert settings.schedule_role_arn == outputs["ScheduleRoleArn"], "monitor setup reads it"
    settings.require_aws()


@pytest.mark.parametrize("command", ["deploy", "destroy", "settings"])
def test_missing_credentials_is_one_line_and_no_traceback(isolated_env: Path, command: str) -> None:
    argv = [sys.executable, str(INFRA / "deploy.py"), command]
    result = subprocess.run(
        argv if command == "settings" else [*argv, "--yes"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: no AWS credentials: configure them (aws configure, AWS_PROFILE or SSO) and retry"
    ]


@pytest.mark.usefixtures("fake_aws")
def test_a_bucket_deleted_by_hand_counts_as_empty(deploy_module: ModuleType) -> None:
    """(moto's own stack deletion then fails on the missing bucket; CloudFormation skips it.)"""
    s3 = aws("s3")
    s3.create_bucket(Bucket="still-here")
    s3.put_object(Bucket="still-here", Key="k", Body=b"x")
    assert len(deploy_module.object_versions(s3, "still-here")) == 1
    assert deploy_module.object_versions(s3, "deleted-by-hand") == []

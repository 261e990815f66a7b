"""The CloudFormation template: lint-clean, and each resource as the project needs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.api import ManualArgs, lint_file
from infra_helpers import (
    ACCOUNT,
    GITHUB_REPOSITORY,
    INFRA,
    REGION,
    REPO,
    TEMPLATE,
    Request,
    Stack,
    as_list,
    decide,
    environment_reads,
    iam_reference,
    s3_locations,
)

from pipelines.publish import deploy_function_environment, local_function_configuration
from pipelines.settings import FIELDS, Settings, load_settings

# Actions granted on "*" because they take no resource-level restriction that fits.
STAR_RESOURCE_ACTIONS = {
    "ecr:GetAuthorizationToken",  # registry login, account-wide by design
    "cloudwatch:PutMetricData",  # limited by the cloudwatch:namespace condition instead
    "sagemaker:ListModelPackages",  # a listing; the group is a request parameter, not a resource
}
LAMBDA_ENVIRONMENT = {
    "ENDPOINT_NAME",
    "EXECUTION_ROLE_ARN",
    "INSTANCE_TYPE",
    "INSTANCE_COUNT",
    "CAPTURE_DESTINATION",
    "CAPTURE_PERCENTAGE",
}


def allow_statements(stack: Stack) -> list[tuple[str, dict[str, Any]]]:
    return [
        (role, statement)
        for role, document in stack.all_policy_documents()
        for statement in as_list(document["Statement"])
        if statement["Effect"] == "Allow"
    ]


def test_cfn_lint_finds_nothing_including_informational_checks() -> None:
    config = ManualArgs(include_checks=["I"], regions=["us-east-1", "eu-west-1", "us-west-2"])
    matches = lint_file(TEMPLATE, config=config)
    assert [f"{m.rule.id} line {m.linenumber}: {m.message}" for m in matches] == []


def test_validate_command_runs_cfn_lint_on_every_template() -> None:
    result = subprocess.run(
        [sys.executable, str(INFRA / "deploy.py"), "validate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    templates = len(list(INFRA.glob("*.yaml")))
    assert f"cfn-lint: {templates} template(s) clean" in result.stdout


def test_validate_fails_on_a_broken_template(tmp_path: Path) -> None:
    """The verdict is cfn-lint's: a template with an error makes validate fail."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        TEMPLATE.read_text(encoding="utf-8").replace("Runtime: python3.12", "Runtime: python2.0")
    )
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--", str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "python2.0" in result.stdout


def test_bucket_is_versioned_encrypted_and_private(stack: Stack) -> None:
    bucket = stack.properties("ArtifactBucket")
    assert bucket["BucketName"] == f"sentiment-classifier-{ACCOUNT}-{REGION}"
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }


def test_a_given_bucket_name_is_used(template: dict[str, Any]) -> None:
    named = Stack(template, BucketName="my-own-bucket")
    assert named.properties("ArtifactBucket")["BucketName"] == "my-own-bucket"


@pytest.mark.parametrize("secure, decision", [("false", "Deny"), ("true", "ImplicitDeny")])
def test_bucket_policy_denies_requests_without_tls(stack: Stack, secure: str, decision: str) -> None:
    policy = stack.properties("ArtifactBucketPolicy")
    assert policy["Bucket"] == stack.physical_id("ArtifactBucket")
    bucket_arn = stack.arn("ArtifactBucket")
    for action, resource in [
        ("s3:GetObject", f"{bucket_arn}/sentiment-classifier/data/train.csv"),
        ("s3:PutObject", f"{bucket_arn}/anything"),
        ("s3:ListBucket", bucket_arn),
    ]:
        request = Request(action, resource, {"aws:SecureTransport": secure})
        assert decide([policy["PolicyDocument"]], request) == decision, action


def test_lifecycle_expires_monitoring_reports_but_not_what_serving_needs(stack: Stack) -> None:
    """Hourly runs each leave a folder; they expire. Baselines, models, data and code do not:
    the monitoring pipeline reads the serving version's baseline however old it is."""
    from pipelines.definition import definition_json

    rules = {r["Id"]: r for r in stack.properties("ArtifactBucket")["LifecycleConfiguration"]["Rules"]}
    monitoring = rules["expire-monitoring-outputs"]
    assert monitoring["Status"] == "Enabled" and int(monitoring["ExpirationInDays"]) == 90
    bucket = stack.physical_id("ArtifactBucket")
    settings = Settings(target="sagemaker", bucket=bucket, role_arn=stack.arn("ExecutionRole"))
    expiring = f"s3://{bucket}/{monitoring['Prefix']}"
    assert settings.monitoring_output_uri(settings.endpoint_name, "abc123").startswith(expiring)
    kept = s3_locations(json.loads(definition_json(settings)))
    assert any(uri.endswith("/baseline") for uri in kept)
    for uri in kept | {settings.s3_uri("data-capture")}:
        assert not uri.startswith(expiring), f"{uri} would expire with the monitoring reports"


def test_monitoring_retention_follows_its_parameter(template: dict[str, Any]) -> None:
    stack = Stack(template, MonitoringRetentionDays="7")
    rules = {r["Id"]: r for r in stack.properties("ArtifactBucket")["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-monitoring-outputs"]["ExpirationInDays"] == "7"


def test_lifecycle_expires_capture_data_and_noncurrent_versions(stack: Stack) -> None:
    rules = {r["Id"]: r for r in stack.properties("ArtifactBucket")["LifecycleConfiguration"]["Rules"]}
    capture, noncurrent = rules["expire-data-capture"], rules["expire-noncurrent-versions"]
    bucket = stack.physical_id("ArtifactBucket")
    captured = Settings(bucket=bucket).s3_uri("data-capture") + "/endpoint/AllTraffic/x.jsonl"
    assert captured.startswith(f"s3://{bucket}/{capture['Prefix']}")
    assert not Settings(bucket=bucket).data_uri.startswith(f"s3://{bucket}/{capture['Prefix']}")
    assert capture["Status"] == "Enabled" and int(capture["ExpirationInDays"]) == 30
    assert "Prefix" not in noncurrent and noncurrent["Status"] == "Enabled"
    assert int(noncurrent["NoncurrentVersionExpiration"]["NoncurrentDays"]) == 90


def test_no_allow_statement_grants_a_wildcard_action_on_every_resource(stack: Stack) -> None:
    statements = allow_statements(stack)
    assert len(statements) > 20
    for role, statement in statements:
        actions, resources = as_list(statement["Action"]), as_list(statement["Resource"])
        wildcard = [a for a in actions if a == "*" or a.endswith(":*")]
        assert not wildcard, f"{role}: wildcard action {wildcard}"
        if "*" in resources:
            assert set(actions) <= STAR_RESOURCE_ACTIONS, f"{role}: {actions} on *"


def test_every_granted_action_exists_in_iam(stack: Stack) -> None:
    """A typo in an action name grants nothing and fails silently in AWS; not here."""
    reference = iam_reference()
    for role, statement in allow_statements(stack):
        for action in as_list(statement["Action"]):
            service, name = action.split(":")
            known = {a.lower() for a in reference[service]["Actions"]}
            assert name.lower() in known, f"{role}: {action} is not an IAM action"


@pytest.mark.parametrize(
    "role, service",
    [("ExecutionRole", "sagemaker.amazonaws.com"), ("DeployFunctionRole", "lambda.amazonaws.com")],
)
def test_service_roles_trust_only_their_service(stack: Stack, role: str, service: str) -> None:
    (statement,) = stack.properties(role)["AssumeRolePolicyDocument"]["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }


@pytest.mark.parametrize(
    "context, decision",
    [
        ({"aws:SourceAccount": ACCOUNT}, "Allow"),
        ({"aws:SourceAccount": "210987654321"}, "ImplicitDeny"),
        ({}, "ImplicitDeny"),
    ],
)
def test_schedule_role_trusts_only_the_scheduler_of_this_account(
    stack: Stack, context: dict[str, str], decision: str
) -> None:
    """Confused-deputy guard: Scheduler acting for another account's schedule cannot assume it."""
    trust = stack.properties("ScheduleRole")["AssumeRolePolicyDocument"]
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    assert decide([trust], Request("sts:AssumeRole", "*", context)) == decision


def test_the_longest_pipeline_name_keeps_its_schedule_name(template: dict[str, Any]) -> None:
    """`monitor setup` shortens schedule names over 64 characters (with a digest); the CI role's
    schedule ARN is <PipelineName>-monitor-schedule, so PipelineName's limit must prevent that."""
    from pipelines.monitoring_schedule import resource_names

    longest = "p" * int(template["Parameters"]["PipelineName"]["MaxLength"])
    monitoring = Settings(pipeline_name=longest).monitoring_pipeline_name
    schedule = resource_names(monitoring, Settings().endpoint_name)["schedule"]
    assert schedule == f"{longest}-monitor-schedule"
    stack = Stack(template, GitHubRepository="octo/sentiment", PipelineName=longest)
    granted = [
        resource
        for document in stack.role_policies("GitHubPipelineRole")
        for statement in as_list(document["Statement"])
        if "scheduler:CreateSchedule" in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    ]
    assert granted == [f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/{schedule}"]


def github_token(sub: str, aud: str = "sts.amazonaws.com") -> dict[str, str]:
    return {
        "token.actions.githubusercontent.com:sub": sub,
        "token.actions.githubusercontent.com:aud": aud,
    }


BRANCH = "repo:octo/sentiment:ref:refs/heads/main"
ENVIRONMENT = "repo:octo/sentiment:environment:model-approval"
ROLE_SUBJECTS = {"GitHubPipelineRole": BRANCH, "GitHubApprovalRole": ENVIRONMENT}


@pytest.mark.parametrize(
    "sub, aud",
    [
        (BRANCH, "sts.amazonaws.com"),
        (ENVIRONMENT, "sts.amazonaws.com"),
        ("repo:octo/sentiment:ref:refs/heads/feature", "sts.amazonaws.com"),
        ("repo:octo/sentiment:pull_request", "sts.amazonaws.com"),
        ("repo:octo/sentiment:environment:production", "sts.amazonaws.com"),
        ("repo:octo/sentiment-fork:ref:refs/heads/main", "sts.amazonaws.com"),
        ("repo:octo/sentiment-fork:environment:model-approval", "sts.amazonaws.com"),
        ("repo:evil/sentiment:ref:refs/heads/main", "sts.amazonaws.com"),
        (BRANCH, "other-audience"),
        (ENVIRONMENT, "other-audience"),
    ],
)
@pytest.mark.parametrize("role", sorted(ROLE_SUBJECTS))
def test_each_github_role_trusts_exactly_one_subject(stack: Stack, role: str, sub: str, aud: str) -> None:
    """The pipeline role: the main branch outside any environment. The approval role: only a job
    in the model-approval environment, whose reviewers GitHub asks first."""
    trust = stack.properties(role)["AssumeRolePolicyDocument"]
    request = Request("sts:AssumeRoleWithWebIdentity", "*", github_token(sub, aud))
    expected = "Allow" if (sub, aud) == (ROLE_SUBJECTS[role], "sts.amazonaws.com") else "ImplicitDeny"
    assert decide([trust], request) == expected
    (statement,) = trust["Statement"]
    assert set(statement["Condition"]) == {"StringEquals"}, "no StringLike wildcards"
    assert statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == (
        ROLE_SUBJECTS[role]
    )


def test_the_approval_role_names_the_environment_parameter(template: dict[str, Any]) -> None:
    stack = Stack(template, GitHubRepository="octo/sentiment", GitHubEnvironment="prod-approval")
    trust = stack.properties("GitHubApprovalRole")["AssumeRolePolicyDocument"]
    (statement,) = trust["Statement"]
    subject = statement["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"]
    assert subject == "repo:octo/sentiment:environment:prod-approval"


@pytest.mark.parametrize("create", ["true", "false"])
def test_the_oidc_provider_is_created_or_reused(template: dict[str, Any], create: str) -> None:
    stack = Stack(template, GitHubRepository="octo/sentiment", CreateGitHubOidcProvider=create)
    provider_arn = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
    for role in ROLE_SUBJECTS:
        (statement,) = stack.properties(role)["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Federated": provider_arn}
    providers = stack.of_type("AWS::IAM::OIDCProvider")
    assert len(providers) == (create == "true")
    if providers:
        properties = stack.properties("GitHubOidcProvider")
        assert properties["Url"] == "https://token.actions.githubusercontent.com"
        assert properties["ClientIdList"] == ["sts.amazonaws.com"]


def test_without_a_repository_no_github_resources_exist(template: dict[str, Any]) -> None:
    stack = Stack(template)
    assert not stack.of_type("AWS::IAM::OIDCProvider")
    assert not set(ROLE_SUBJECTS) & set(stack.resources)
    outputs = {
        name
        for name, output in template["Outputs"].items()
        if "Condition" not in output or stack.condition(output["Condition"])
    }
    assert not {"GitHubPipelineRoleArn", "GitHubApprovalRoleArn"} & outputs
    assert "PipelineEnvironment" in outputs


def test_deploy_function_is_the_placeholder_with_the_endpoint_settings(stack: Stack) -> None:
    function = stack.properties("DeployFunction")
    assert function["FunctionName"] == Settings().deploy_function_name
    assert (function["Runtime"], function["Handler"], int(function["Timeout"])) == (
        "python3.12",
        "deploy.handler",
        120,
    )
    assert int(function["MemorySize"]) == local_function_configuration(Settings())["MemorySize"] == 256
    code = function["Code"]["ZipFile"]
    assert "raise" in code and "run `make upsert-pipeline` to publish the handler" in code
    compile(code, "index.py", "exec")
    variables = function["Environment"]["Variables"]
    assert set(variables) == LAMBDA_ENVIRONMENT
    bucket = stack.physical_id("ArtifactBucket")
    assert variables == {
        "ENDPOINT_NAME": Settings().endpoint_name,
        "EXECUTION_ROLE_ARN": stack.arn("ExecutionRole"),
        "INSTANCE_TYPE": Settings().endpoint_instance_type,
        "INSTANCE_COUNT": "1",
        "CAPTURE_DESTINATION": Settings(bucket=bucket).s3_uri("data-capture"),
        "CAPTURE_PERCENTAGE": "100",
    }


def test_the_function_sets_exactly_the_variables_the_handler_reads() -> None:
    from steps import deploy

    assert set(deploy.ENVIRONMENT_KEYS.values()) == LAMBDA_ENVIRONMENT
    direct = environment_reads(REPO / "steps" / "deploy.py")
    assert {name for name in direct if not name.startswith("AWS_")} <= LAMBDA_ENVIRONMENT


def test_default_names_match_the_pipeline_settings(
    template: dict[str, Any], deploy_module: Any
) -> None:
    defaults = Settings()
    parameters = template["Parameters"]
    assert deploy_module.SETTINGS_PARAMETERS, "deploy.py maps parameters to settings"
    for parameter, setting in deploy_module.SETTINGS_PARAMETERS.items():
        assert str(parameters[parameter]["Default"]) == str(getattr(defaults, setting)), parameter


def test_pipeline_environment_output_is_a_complete_sagemaker_configuration(stack: Stack) -> None:
    value = stack.resolve(stack.template["Outputs"]["PipelineEnvironment"]["Value"])
    environ = dict(pair.split("=", 1) for pair in value.split())
    assert {name.removeprefix("PIPELINE_").lower() for name in environ} <= set(FIELDS)
    assert "PIPELINE_TARGET" not in environ, "local stays the default target"
    settings = load_settings(
        {"target": "sagemaker"}, environ=environ, config_file=Path("/nonexistent/pipeline.toml")
    )
    settings.require_aws()
    assert settings.region == REGION
    assert settings.bucket == stack.physical_id("ArtifactBucket")
    assert settings.role_arn == stack.arn("ExecutionRole")
    assert settings.deploy_function_arn == stack.arn("DeployFunction")
    assert settings.schedule_role_arn == stack.arn("ScheduleRole"), "monitor setup needs it"
    assert settings.monitoring_pipeline_name == f"{stack.parameters['PipelineName']}-monitor"


def output_variables(stack: Stack, output: str) -> dict[str, str]:
    value = stack.resolve(stack.template["Outputs"][output]["Value"])
    return dict(pair.split("=", 1) for pair in value.split())


def workflow_environment(name: str, variables: dict[str, str]) -> dict[str, str]:
    """What a workflow's jobs run the CLI with: its and its job's `env`, the repository variables
    substituted (one GitHub does not have is empty)."""
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / name).read_text())
    (job,) = workflow["jobs"].values()
    environ = {}
    for key, value in {**workflow.get("env", {}), **job.get("env", {})}.items():
        text = str(value)
        if text.startswith("${{ vars.") and text.endswith(" }}"):
            text = variables.get(text.removeprefix("${{ vars.").removesuffix(" }}"), "")
        environ[key] = text
    return environ


@pytest.mark.parametrize("workflow", ["pipeline.yml", "model-approval.yml"])
def test_the_workflows_act_on_the_stacks_names_when_its_parameters_rename_them(
    template: dict[str, Any], workflow: str
) -> None:
    """A stack deployed with other names: the workflows read the defaults instead, so CI upserted a
    pipeline, registered into a group and published to a function the stack's roles may not touch."""
    renamed = Stack(
        template, GitHubRepository=GITHUB_REPOSITORY, PipelineName="reviews-staging",
        ModelPackageGroupName="reviews-staging", EndpointName="reviews-staging",
        DeployFunctionName="reviews-staging-deploy", BucketPrefix="reviews-staging",
        EndpointInstanceType="ml.c5.large", EndpointInstanceCount="2", CapturePercentage="25",
    )
    environ = workflow_environment(workflow, output_variables(renamed, "GitHubVariables"))
    seen = load_settings({"target": "sagemaker"}, environ=environ,
                         config_file=Path("/nonexistent/pipeline.toml"))
    stack_settings = load_settings({"target": "sagemaker"},
                                   environ=output_variables(renamed, "PipelineEnvironment"),
                                   config_file=Path("/nonexistent/pipeline.toml"))
    assert seen.pipeline_name == "reviews-staging"
    assert seen.deploy_function_name == "reviews-staging-deploy"
    assert {**vars(seen), "schedule_role_arn": ""} == {**vars(stack_settings), "schedule_role_arn": ""}


def test_a_pipeline_run_sizes_the_endpoint_as_an_approval_does(template: dict[str, Any]) -> None:
    """A stack deployed with EndpointInstanceCount=2 and CapturePercentage=25 gave approvals' deploys
    2 instances and 25 % capture, while the pipeline's DeployEndpoint defaulted to 1 and 100: the
    next run that registered an Approved version halved the endpoint and captured every request."""
    sized = Stack(template, GitHubRepository=GITHUB_REPOSITORY, EndpointInstanceCount="2",
                  CapturePercentage="25")
    function = sized.properties("DeployFunction")["Environment"]["Variables"]
    environ = workflow_environment("pipeline.yml", output_variables(sized, "GitHubVariables"))
    settings = load_settings({"target": "sagemaker"}, environ=environ,
                             config_file=Path("/nonexistent/pipeline.toml"))
    # the pipeline's defaults (tests/test_definition.py: they are these settings)
    assert (settings.endpoint_instance_count, settings.capture_percentage) == (2, 25)
    assert (function["INSTANCE_COUNT"], function["CAPTURE_PERCENTAGE"]) == ("2", "25")
    assert deploy_function_environment(settings) == {**function, "EXECUTION_ROLE_ARN": settings.role_arn}


def test_github_variables_output_names_what_the_workflows_read(stack: Stack) -> None:
    value = stack.resolve(stack.template["Outputs"]["GitHubVariables"]["Value"])
    variables = dict(pair.split("=", 1) for pair in value.split())
    assert variables["AWS_ROLE_ARN"] == stack.arn("GitHubPipelineRole")
    assert variables["AWS_APPROVAL_ROLE_ARN"] == stack.arn("GitHubApprovalRole")
    assert variables["PIPELINE_SCHEDULE_ROLE_ARN"] == stack.arn("ScheduleRole")
    workflows = "".join(p.read_text() for p in (REPO / ".github" / "workflows").glob("*.yml"))
    for name in variables:
        assert f"vars.{name}" in workflows, name

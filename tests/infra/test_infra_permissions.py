"""Each role can do what its code calls, on the project's resources, and not beyond them.

The calls are read from the code (AST), not listed by hand: a new boto3 call in the deploy
handler or in a CLI command a workflow runs fails here until the role allows it.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
import yaml
from infra_helpers import (
    ACCOUNT,
    REGION,
    REPO,
    WORKFLOWS,
    CallGraph,
    Request,
    Stack,
    allowed,
    cli_commands,
    iam_actions,
    iam_reference,
    make_invocations,
    makefile_targets,
    module_operations,
    run_scripts,
)

from pipelines.code_bundle import CodeBundle
from pipelines.settings import Settings
from steps.deploy import sagemaker_name

SM = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
PASS_TO_SAGEMAKER = {"iam:PassedToService": "sagemaker.amazonaws.com"}
# Calls that pass the execution role along, so IAM also checks iam:PassRole on it.
PASSES_ROLE = {"sagemaker:CreatePipeline", "sagemaker:UpdatePipeline", "sagemaker:CreateModel"}
# publish.py creates the function itself only on the local target; on AWS the stack owns it.
LOCAL_ONLY = {("lambda", "CreateFunction")}
CLI_MODULES = ["pipelines.cli", "pipelines.executions", "pipelines.publish", "pipelines.aws"]


def samples(stack: Stack) -> dict[str, list[str]]:
    """Resource type (IAM's names) -> ARNs the project's code touches, built from its names."""
    settings = Settings(bucket=stack.physical_id("ArtifactBucket"))
    endpoint = settings.endpoint_name
    bucket_arn = stack.arn("ArtifactBucket")
    bundle = CodeBundle()
    return {
        "endpoint": [f"{SM}:endpoint/{endpoint}"],
        "endpoint-config": [f"{SM}:endpoint-config/{sagemaker_name(endpoint, '-v3-0123abcd')}"],
        "model": [f"{SM}:model/{sagemaker_name(endpoint, '-v3')}"],
        "model-package": [f"{SM}:model-package/{settings.model_package_group}/3"],
        "model-package-group": [f"{SM}:model-package-group/{settings.model_package_group}"],
        "pipeline": [f"{SM}:pipeline/{settings.pipeline_name}"],
        "pipeline-execution": [f"{SM}:pipeline/{settings.pipeline_name}/execution/0a1b2c3d4e5f"],
        "function": [stack.arn("DeployFunction")],
        "role": [stack.arn("ExecutionRole")],
        "bucket": [bucket_arn],
        "object": [
            *(f"{bucket_arn}/{bundle.key(settings.prefix, name)}" for name in bundle.artifacts),
            f"{bucket_arn}/{settings.data_uri.split('/', 3)[3]}/train.csv",
        ],
    }


@cache
def resource_types(action: str) -> tuple[str, ...]:
    service, name = action.split(":")
    actions = {k.lower(): v for k, v in iam_reference()[service]["Actions"].items()}
    return tuple(actions[name.lower()].get("Resources", []))


def requests_for(stack: Stack, service: str, operation: str) -> Iterator[Request]:
    """The authorizations one call needs: its action on each resource it names, plus PassRole."""
    by_type = samples(stack)
    for action in iam_actions(service, operation):
        types = [t for t in resource_types(action) if t in by_type]
        arns = [arn for t in types for arn in by_type[t]] or ["*"]
        for arn in arns:
            context = {**PASS_TO_SAGEMAKER, "s3:prefix": arn.split(":::", 1)[-1].partition("/")[2]}
            yield Request(action, arn, context)
        if action in PASSES_ROLE:
            yield Request("iam:PassRole", stack.arn("ExecutionRole"), PASS_TO_SAGEMAKER)


def refused(documents: list[dict[str, Any]], requests: list[Request]) -> list[str]:
    return [f"{r.action} on {r.resource}" for r in requests if not allowed(documents, r)]


# --- deploy Lambda ----------------------------------------------------------------------------


def test_deploy_role_allows_every_call_of_the_deploy_handler(stack: Stack) -> None:
    operations = module_operations(REPO / "steps" / "deploy.py")
    names = {op for _, op in operations}
    assert {"DescribeModelPackage", "CreateModel", "CreateEndpoint", "UpdateEndpoint"} <= names
    documents = stack.role_policies("DeployFunctionRole")
    requests = [r for op in sorted(operations) for r in requests_for(stack, *op)]
    assert refused(documents, requests) == []


def test_deploy_role_writes_only_its_own_logs(stack: Stack) -> None:
    documents = stack.role_policies("DeployFunctionRole")
    own = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/sentiment-classifier-deploy"
    assert allowed(documents, Request("logs:PutLogEvents", f"{own}:log-stream:2024/01/01/x"))
    other = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/other:log-stream:x"
    assert not allowed(documents, Request("logs:PutLogEvents", other))


@pytest.mark.parametrize(
    "action, resource, context",
    [
        ("sagemaker:CreateEndpoint", f"{SM}:endpoint/other-endpoint", {}),
        ("sagemaker:UpdateEndpoint", f"{SM}:endpoint/sentiment-classifier-shadow", {}),
        ("sagemaker:DeleteEndpoint", f"{SM}:endpoint/sentiment-classifier", {}),
        ("sagemaker:CreateModel", f"{SM}:model/other-v1", {}),
        ("sagemaker:DescribeModelPackage", f"{SM}:model-package/other-group/1", {}),
        ("sagemaker:UpdateModelPackage", f"{SM}:model-package/sentiment-classifier/1", {}),
        ("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin", PASS_TO_SAGEMAKER),
        ("iam:PassRole", "EXECUTION_ROLE", {"iam:PassedToService": "lambda.amazonaws.com"}),
        ("s3:GetObject", "arn:aws:s3:::any-bucket/key", {}),
    ],
)
def test_deploy_role_reaches_nothing_else(
    stack: Stack, action: str, resource: str, context: dict[str, str]
) -> None:
    resource = stack.arn("ExecutionRole") if resource == "EXECUTION_ROLE" else resource
    assert not allowed(stack.role_policies("DeployFunctionRole"), Request(action, resource, context))


# --- GitHub Actions role ------------------------------------------------------------------------


def cli_handlers() -> dict[str, str]:
    """CLI command -> handler function name, read from build_parser's add(...) calls."""
    tree = ast.parse((REPO / "pipelines" / "cli.py").read_text(encoding="utf-8"))
    handlers: dict[str, str] = {}
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        if isinstance(call.func, ast.Name) and call.func.id == "add" and len(call.args) >= 2:
            command, handler = call.args[0], call.args[1]
            if isinstance(command, ast.Constant) and isinstance(handler, ast.Name):
                handlers[str(command.value)] = handler.id
    return handlers


def aws_commands() -> tuple[set[str], set[str]]:
    """What the workflows run against AWS: CLI commands (direct or through make) and `aws` calls."""
    targets = makefile_targets()
    commands: set[str] = set()
    actions: set[str] = set()

    def expand(target: str) -> None:
        for line in targets[target]:
            if line.startswith("prerequisite ") and line.split()[1] in targets:
                expand(line.split()[1])
            match = re.match(r"\$\(CLI\)\s+([a-z][\w-]*)", line)
            if match:
                commands.add(match.group(1))

    for path in WORKFLOWS.glob("*.yml"):
        for script in run_scripts(yaml.safe_load(path.read_text(encoding="utf-8"))):
            commands.update(c for c in cli_commands(script) if "--target sagemaker" in script)
            for target, variables in make_invocations(script):
                if variables.get("TARGET") == "sagemaker":
                    expand(target)
            for service, operation in re.findall(r"\baws\s+([a-z0-9-]+)\s+([a-z][a-z0-9-]*)", script):
                pascal = "".join(part.capitalize() for part in operation.split("-"))
                actions.add(f"{service}:{pascal}")
    return commands, actions


def test_ci_role_allows_what_the_workflows_run(stack: Stack) -> None:
    commands, aws_cli_actions = aws_commands()
    assert {"upsert", "start", "status", "models"} <= commands
    handlers = cli_handlers()
    graph = CallGraph(CLI_MODULES)
    operations: set[tuple[str, str]] = set()
    for command in commands:
        operations |= graph.operations("pipelines.cli", handlers[command])
    assert operations >= LOCAL_ONLY, "LOCAL_ONLY names a call the code no longer makes"
    operations -= LOCAL_ONLY
    assert ("s3", "PutObject") in operations and ("lambda", "UpdateFunctionCode") in operations
    requests = [r for op in sorted(operations) for r in requests_for(stack, *op)]
    for action in sorted(aws_cli_actions):
        requests += list(requests_for(stack, *action.split(":")))
    assert refused(stack.role_policies("GitHubRole"), requests) == []


@pytest.mark.parametrize(
    "action, resource, context",
    [
        ("s3:PutObject", "BUCKET/sentiment-classifier/executions/x/model/model.tar.gz", {}),
        ("s3:PutObject", "BUCKET/other-prefix/code/x.py", {}),
        ("s3:DeleteObject", "BUCKET/sentiment-classifier/data/train.csv", {}),
        ("lambda:UpdateFunctionCode", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:other", {}),
        ("lambda:UpdateFunctionConfiguration", "FUNCTION", {}),
        ("sagemaker:StartPipelineExecution", f"{SM}:pipeline/other-pipeline", {}),
        ("sagemaker:DeletePipeline", f"{SM}:pipeline/sentiment-classifier", {}),
        ("sagemaker:UpdateModelPackage", f"{SM}:model-package/other-group/1", {}),
        ("sagemaker:CreateEndpoint", f"{SM}:endpoint/sentiment-classifier", {}),
        ("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin", PASS_TO_SAGEMAKER),
        ("iam:PassRole", "EXECUTION_ROLE", {"iam:PassedToService": "ec2.amazonaws.com"}),
    ],
)
def test_ci_role_reaches_nothing_else(
    stack: Stack, action: str, resource: str, context: dict[str, str]
) -> None:
    resource = (
        resource.replace("BUCKET", stack.arn("ArtifactBucket"))
        .replace("FUNCTION", stack.arn("DeployFunction"))
        .replace("EXECUTION_ROLE", stack.arn("ExecutionRole"))
    )
    assert not allowed(stack.role_policies("GitHubRole"), Request(action, resource, context))


# --- SageMaker execution role -----------------------------------------------------------------


@pytest.fixture(scope="module")
def definition(stack: Stack) -> dict[str, Any]:
    """The real pipeline definition for this stack's bucket and role."""
    from pipelines.definition import definition_json

    settings = Settings(
        target="sagemaker",
        region=REGION,
        bucket=stack.physical_id("ArtifactBucket"),
        role_arn=stack.arn("ExecutionRole"),
    )
    loaded = json.loads(definition_json(settings))
    assert isinstance(loaded, dict)
    return loaded


def all_steps(steps: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for step in steps:
        yield step
        if step["Type"] == "Condition":
            yield from all_steps(step["Arguments"]["IfSteps"] + step["Arguments"]["ElseSteps"])


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def step_requests(stack: Stack, step: dict[str, Any]) -> list[Request]:
    """What SageMaker does with the pipeline's role to run one step."""
    execution = "0a1b2c3d4e5f"
    pass_role = Request("iam:PassRole", stack.arn("ExecutionRole"), PASS_TO_SAGEMAKER)
    job = f"pipelines-{execution}-{step['Name'].lower()}-a1b2c3d4e5"
    if step["Type"] == "Processing":
        assert step["Arguments"]["RoleArn"] == stack.arn("ExecutionRole")
        return [Request("sagemaker:CreateProcessingJob", f"{SM}:processing-job/{job}"), pass_role]
    if step["Type"] == "Training":
        assert step["Arguments"]["RoleArn"] == stack.arn("ExecutionRole")
        return [Request("sagemaker:CreateTrainingJob", f"{SM}:training-job/{job}"), pass_role]
    if step["Type"] == "RegisterModel":
        group = step["Arguments"]["ModelPackageGroupName"]
        return [
            Request("sagemaker:CreateModelPackageGroup", f"{SM}:model-package-group/{group}"),
            Request("sagemaker:CreateModelPackage", f"{SM}:model-package/{group}/1"),
        ]
    if step["Type"] == "Lambda":
        assert step["FunctionArn"] == stack.arn("DeployFunction")
        return [Request("lambda:InvokeFunction", step["FunctionArn"])]
    assert step["Type"] in ("Condition", "Fail"), f"no permissions modelled for {step['Type']}"
    return []


def test_execution_role_runs_every_step_of_the_pipeline(
    stack: Stack, definition: dict[str, Any]
) -> None:
    steps = list(all_steps(definition["Steps"]))
    assert {s["Type"] for s in steps} >= {"Processing", "Training", "RegisterModel", "Lambda"}
    requests = [r for step in steps for r in step_requests(stack, step)]
    if definition.get("PipelineExperimentConfig"):  # experiment = pipeline, trial = execution
        requests += [
            Request("sagemaker:CreateExperiment", f"{SM}:experiment/{Settings().pipeline_name}"),
            Request("sagemaker:CreateTrial", f"{SM}:experiment-trial/0a1b2c3d4e5f"),
        ]
    assert refused(stack.role_policies("ExecutionRole"), requests) == []


def test_execution_role_reads_and_writes_every_s3_location_of_the_definition(
    stack: Stack, definition: dict[str, Any]
) -> None:
    uris = {s for s in strings(definition) if s.startswith("s3://")}
    assert len(uris) >= 5
    bucket = stack.physical_id("ArtifactBucket")
    documents = stack.role_policies("ExecutionRole")
    for uri in sorted(uris):
        assert uri.startswith(f"s3://{bucket}/"), f"{uri} is outside the project's bucket"
        key = uri.removeprefix(f"s3://{bucket}/")
        for action, resource in [
            ("s3:GetObject", f"arn:aws:s3:::{bucket}/{key}"),
            ("s3:PutObject", f"arn:aws:s3:::{bucket}/{key}/part-0"),
        ]:
            assert allowed(documents, Request(action, resource)), f"{action} {resource}"
        listing = Request("s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": key})
        assert allowed(documents, listing), f"list {key}"


def test_execution_role_pulls_the_images_of_the_definition(
    stack: Stack, definition: dict[str, Any]
) -> None:
    images = {s for s in strings(definition) if ".dkr.ecr." in s}
    assert images
    documents = stack.role_policies("ExecutionRole")
    for image in images:
        registry, _, repository = image.partition("/")
        account, region = registry.split(".")[0], registry.split(".")[3]
        arn = f"arn:aws:ecr:{region}:{account}:repository/{repository.split(':')[0]}"
        assert allowed(documents, Request("ecr:BatchGetImage", arn)), image
    assert allowed(documents, Request("ecr:GetAuthorizationToken", "*"))


def test_pipeline_and_approval_rule_deploy_the_same_way(
    stack: Stack, definition: dict[str, Any]
) -> None:
    """The Lambda step's inputs and the function's environment agree (both paths deploy)."""
    (deploy,) = [s for s in all_steps(definition["Steps"]) if s["Type"] == "Lambda"]
    environment = stack.properties("DeployFunction")["Environment"]["Variables"]
    assert deploy["Arguments"]["capture_destination"] == environment["CAPTURE_DESTINATION"]
    assert deploy["Arguments"]["role_arn"] == environment["EXECUTION_ROLE_ARN"]


@pytest.mark.parametrize(
    "action, resource, context",
    [
        ("s3:GetObject", "arn:aws:s3:::another-bucket/sentiment-classifier/data/train.csv", {}),
        ("s3:PutObject", "BUCKET/other-prefix/x", {}),
        ("s3:ListBucket", "BUCKET", {"s3:prefix": "other-prefix/"}),
        ("sagemaker:CreateTrainingJob", f"{SM}:training-job/not-from-a-pipeline", {}),
        ("sagemaker:CreateModelPackage", f"{SM}:model-package/other-group/1", {}),
        ("sagemaker:CreateEndpoint", f"{SM}:endpoint/sentiment-classifier", {}),
        ("lambda:InvokeFunction", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:other", {}),
        ("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin", PASS_TO_SAGEMAKER),
        ("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "Billing"}),
    ],
)
def test_execution_role_reaches_nothing_else(
    stack: Stack, action: str, resource: str, context: dict[str, str]
) -> None:
    resource = resource.replace("BUCKET", stack.arn("ArtifactBucket"))
    assert not allowed(stack.role_policies("ExecutionRole"), Request(action, resource, context))

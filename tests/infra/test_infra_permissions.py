"""Each role can do what its code calls, on the project's resources, and not beyond them.

The calls are read from the code (AST), not listed by hand: a new boto3 call in the deploy
handler, in a step script or in a CLI command a workflow runs fails here until the role allows it.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any

import pytest
import yaml
from infra_helpers import (
    ACCOUNT,
    EXECUTION_ID,
    REGION,
    REPO,
    WORKFLOWS,
    CallGraph,
    Invocation,
    Request,
    Stack,
    allowed,
    as_list,
    call_arguments,
    cli_invocations,
    decide,
    iam_actions,
    iam_reference,
    make_invocations,
    makefile_targets,
    module_operations,
    pipeline_value,
    run_scripts,
    s3_locations,
)

from pipelines.code_bundle import CodeBundle
from pipelines.monitoring_schedule import (
    SCHEDULE_GROUP,
    START_PIPELINE_TARGET,
    alarm_specs,
    pipeline_input,
    resource_names,
)
from pipelines.settings import Settings
from steps.deploy import sagemaker_name
from steps.monitoring.cloudwatch import FEATURES

SM = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
SCHEDULER = f"arn:aws:scheduler:{REGION}:{ACCOUNT}"
ALARM = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm"
SCHEDULE = "sentiment-classifier-monitor-schedule"
PASS_TO_SAGEMAKER = {"iam:PassedToService": "sagemaker.amazonaws.com"}
PASS_TO_SCHEDULER = {"iam:PassedToService": "scheduler.amazonaws.com"}
# Calls that pass a role along, so IAM also checks iam:PassRole on it: (role, receiving service).
PASSES_ROLE = {
    "sagemaker:CreatePipeline": ("ExecutionRole", PASS_TO_SAGEMAKER),
    "sagemaker:UpdatePipeline": ("ExecutionRole", PASS_TO_SAGEMAKER),
    "sagemaker:CreateModel": ("ExecutionRole", PASS_TO_SAGEMAKER),
    "scheduler:CreateSchedule": ("ScheduleRole", PASS_TO_SCHEDULER),
    "scheduler:UpdateSchedule": ("ScheduleRole", PASS_TO_SCHEDULER),
}
# Listing calls made without naming their resources (DescribeAlarms with AlarmNamePrefix) are
# authorized on every resource of the type, not on the ones that come back.
LISTING_RESOURCES = {"cloudwatch:DescribeAlarms": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:*"}
# The jobs' logs are only read stream by stream (step_logs.job_log: `start --wait` shows the end of a
# failed job's), in the groups SageMaker's jobs write to; the deploy function's group only through
# FilterLogEvents (the "log-group" samples).
JOB_STREAM = f"pipelines-{EXECUTION_ID}-Train-GqoGUcMKCE/algo-1-1796678431"  # as SageMaker names one
LOG_GROUP = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group"
JOB_LOG_GROUPS = [f"{LOG_GROUP}:/aws/sagemaker/{kind}Jobs" for kind in ("Processing", "Training")]
JOB_LOG_RESOURCES = {
    "logs:DescribeLogStreams": [f"{group}:*" for group in JOB_LOG_GROUPS],
    "logs:GetLogEvents": [f"{group}:log-stream:{JOB_STREAM}" for group in JOB_LOG_GROUPS],
}
# publish.py creates and configures the function itself only on the local target; on AWS the stack
# owns it, its configuration and its event invoke config.
LOCAL_FUNCTION = {
    ("lambda", "CreateFunction"), ("lambda", "UpdateFunctionConfiguration"),
    ("lambda", "PutFunctionEventInvokeConfig"),
}
# The project's bucket too: created by upsert and `data upload` on the local target, by the stack on AWS.
LOCAL_BUCKET = ("s3", "CreateBucket")
LOCAL_ONLY = {*LOCAL_FUNCTION, LOCAL_BUCKET}
CLI_MODULES = [
    "pipelines.cli",
    "pipelines.executions",
    "pipelines.publish",
    "pipelines.datasets",
    "pipelines.step_logs",
    "pipelines.aws",
    "pipelines.monitoring_run",
    "pipelines.monitoring_schedule",
    "steps.deploy",  # what the CLI calls of it: describe_endpoint, package_tag, describe_serving
]
# The step code that runs in SageMaker jobs or behind the endpoint, with the execution role: the
# scripts and the library folder they import (steps/monitoring/ publishes the metrics).
# steps/deploy.py is the deploy Lambda's (its role is checked on its own).
EXECUTION_ROLE_SCRIPTS = sorted(p for p in (REPO / "steps").rglob("*.py") if p.name != "deploy.py")


def both_pipelines() -> list[str]:
    settings = Settings()
    return [settings.pipeline_name, settings.monitoring_pipeline_name]


def samples(stack: Stack, pipelines: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Resource type (IAM's names) -> ARNs the project's code touches, built from its names.

    `pipelines` narrows pipeline and execution ARNs to the pipelines a command works on.
    """
    settings = Settings(bucket=stack.physical_id("ArtifactBucket"))
    endpoint = settings.endpoint_name
    bucket_arn = stack.arn("ArtifactBucket")
    bundle = CodeBundle()
    pipelines = both_pipelines() if pipelines is None else list(pipelines)
    # What `monitor setup` names: the same call the CLI makes, so a renamed resource shows here.
    monitoring = resource_names(settings.monitoring_pipeline_name, endpoint)
    alarms = [
        spec["AlarmName"]
        for spec in alarm_specs(endpoint, monitoring["alarm_prefix"], FEATURES, 0.1, 3600)
    ]
    alarms.append(f"{monitoring['alarm_prefix']}retired-feature-drift")  # a stale one, deleted
    return {
        "endpoint": [f"{SM}:endpoint/{endpoint}"],
        "endpoint-config": [f"{SM}:endpoint-config/{sagemaker_name(endpoint, '-v3-0123abcd')}"],
        "model": [f"{SM}:model/{sagemaker_name(endpoint, '-v3')}"],
        "model-package": [f"{SM}:model-package/{settings.model_package_group}/3"],
        "model-package-group": [f"{SM}:model-package-group/{settings.model_package_group}"],
        "pipeline": [f"{SM}:pipeline/{name}" for name in pipelines],
        "pipeline-execution": [f"{SM}:pipeline/{name}/execution/{EXECUTION_ID}" for name in pipelines],
        # a pipeline's processing step runs as pipelines-<execution id>-<step name>-<suffix>
        "processing-job": [f"{SM}:processing-job/pipelines-{EXECUTION_ID}-Preprocess-bPVYsMzUlc"],
        "function": [stack.arn("DeployFunction")],
        "log-group": [
            f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{settings.deploy_function_name}:*"
        ],
        "role": [stack.arn("ExecutionRole")],
        "bucket": [bucket_arn],
        "object": [
            *(f"{bucket_arn}/{bundle.key(settings.prefix, name)}" for name in bundle.artifacts),
            f"{bucket_arn}/{settings.data_uri.split('/', 3)[3]}/train.csv",
        ],
        "schedule": [
            f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/{SCHEDULE_GROUP}/{monitoring['schedule']}"
        ],
        "topic": [f"arn:aws:sns:{REGION}:{ACCOUNT}:{monitoring['topic']}"],
        "alarm": [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}" for name in alarms],
    }


@cache
def resource_types(action: str) -> tuple[str, ...]:
    service, name = action.split(":")
    actions = {k.lower(): v for k, v in iam_reference()[service]["Actions"].items()}
    return tuple(actions[name.lower()].get("Resources", []))


def requests_for(
    stack: Stack,
    service: str,
    operation: str,
    by_type: dict[str, list[str]] | None = None,
    context: dict[str, str] | None = None,
) -> Iterator[Request]:
    """The authorizations one call needs: its action on each resource it names, plus PassRole."""
    by_type = samples(stack) if by_type is None else by_type
    for action in iam_actions(service, operation):
        types = [t for t in resource_types(action) if t in by_type]
        arns = [arn for t in types for arn in by_type[t]] or ["*"]
        if action in LISTING_RESOURCES:
            arns = [LISTING_RESOURCES[action]]
        arns = JOB_LOG_RESOURCES.get(action, arns)
        for arn in arns:
            prefix = arn.split(":::", 1)[-1].partition("/")[2]
            yield Request(action, arn, {"s3:prefix": prefix, **(context or {})})
        if action in PASSES_ROLE:
            role, passed_to = PASSES_ROLE[action]
            yield Request("iam:PassRole", stack.arn(role), passed_to)


def refused(documents: list[dict[str, Any]], requests: list[Request]) -> list[str]:
    return [f"{r.action} on {r.resource}" for r in requests if not allowed(documents, r)]


# --- deploy Lambda ----------------------------------------------------------------------------


def test_deploy_role_allows_every_call_of_the_deploy_handler(stack: Stack) -> None:
    operations = module_operations(REPO / "steps" / "deploy.py")
    names = {op for _, op in operations}
    assert {"DescribeModelPackage", "CreateModel", "CreateEndpoint", "UpdateEndpoint", "DeleteEndpoint"} <= (
        names
    )
    documents = stack.role_policies("DeployFunctionRole")
    requests = [r for op in sorted(operations) for r in requests_for(stack, *op)]
    assert refused(documents, requests) == []


def test_deploy_role_says_what_the_endpoint_serves(stack: Stack) -> None:
    """describe_serving (the monitoring pipeline's first step) walks endpoint -> config -> model
    -> model package; each link is a call the role must allow on the project's names."""
    operations = CallGraph(["steps.deploy"]).operations("steps.deploy", "describe_serving")
    assert {op for _, op in operations} == {
        "DescribeEndpoint",
        "DescribeEndpointConfig",
        "DescribeModel",
        "DescribeModelPackage",
    }
    requests = [r for op in sorted(operations) for r in requests_for(stack, *op)]
    assert {r.resource.split(":")[5].split("/")[0] for r in requests} == {
        "endpoint",
        "endpoint-config",
        "model",
        "model-package",
    }
    assert refused(stack.role_policies("DeployFunctionRole"), requests) == []


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
        ("sagemaker:DeleteEndpoint", f"{SM}:endpoint/other-endpoint", {}),
        ("sagemaker:DeleteEndpoint", f"{SM}:endpoint-config/sentiment-classifier-v1", {}),
        ("sagemaker:DescribeEndpoint", f"{SM}:endpoint/other-endpoint", {}),
        ("sagemaker:DescribeModel", f"{SM}:model/other-v1", {}),
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


# --- GitHub Actions roles -----------------------------------------------------------------------

# The workflows that reach AWS and the stack role each one must get.
AWS_WORKFLOWS = {"pipeline.yml": "GitHubPipelineRole", "model-approval.yml": "GitHubApprovalRole"}
# A flag that keeps a command from calling functions: what they would reach is not needed.
SKIPPED_BY_FLAG = {"--skip-deploy-handler": frozenset({"begin_publishing", "wait_for_function"})}
MODEL_PACKAGE = f"{SM}:model-package/sentiment-classifier/3"


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


def load_workflow(name: str) -> dict[str, Any]:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    assert isinstance(workflow, dict)
    return workflow


def github_variables(stack: Stack) -> dict[str, str]:
    """Repository variable -> role logical id, from the stack's GitHubVariables output."""
    text = stack.template["Outputs"]["GitHubVariables"]["Value"]["Fn::Sub"]
    return dict(re.findall(r"(\w+)=\$\{(\w+Role)\.Arn\}", text))


def assumed_role(stack: Stack, name: str) -> str:
    """The stack role a workflow's credentials step assumes, through the variable it reads."""
    references = {
        str(step["with"]["role-to-assume"])
        for job in load_workflow(name)["jobs"].values()
        for step in job.get("steps", [])
        if str(step.get("uses", "")).startswith("aws-actions/configure-aws-credentials@")
    }
    (reference,) = references
    match = re.fullmatch(r"\$\{\{ vars\.(\w+) \}\}", reference)
    assert match, reference
    return github_variables(stack)[match.group(1)]


def aws_commands(name: str) -> tuple[set[Invocation], set[str]]:
    """What one workflow runs against AWS: CLI invocations (direct or through make), and `aws`
    CLI calls as IAM actions."""
    targets = makefile_targets()
    invocations: set[Invocation] = set()
    actions: set[str] = set()

    def expand(target: str) -> None:
        for line in targets[target]:
            if line.startswith("prerequisite ") and line.split()[1] in targets:
                expand(line.split()[1])
            match = re.match(r"\$\(CLI\)\s+([a-z][\w-]*)(?:[ \t]+([a-z][\w-]*))?", line)
            if match:
                invocations.add(Invocation(match.group(1), match.group(2)))

    for script in run_scripts(load_workflow(name)):
        if "--target sagemaker" in script:
            invocations.update(cli_invocations(script))
        for target, variables in make_invocations(script):
            if variables.get("TARGET") == "sagemaker":
                expand(target)
        for service, operation in re.findall(r"\baws\s+([a-z0-9-]+)\s+([a-z][a-z0-9-]*)", script):
            pascal = "".join(part.capitalize() for part in operation.split("-"))
            actions.add(f"{service}:{pascal}")
    return invocations, actions


def handler_of(graph: CallGraph, command: str, action: str | None) -> str:
    """The function a CLI invocation runs: the command's handler, or the function that handler
    hands this action to (`monitor setup` -> _monitor_setup), so `setup` is not charged with
    what `run` calls."""
    handler = cli_handlers()[command]
    return graph.action_handlers("pipelines.cli", handler).get(action or "", handler)


# The function through which a command's --monitoring flag picks its pipeline (cli._pipeline):
# the monitoring pipeline's with the flag, the training pipeline's without.
PIPELINE_CHOICE = "_pipeline"


def pipelines_used(graph: CallGraph, function: str, flags: frozenset[str] = frozenset()) -> list[str]:
    """The pipelines a handler works on, read from the settings it reads: pipeline_name is the
    training pipeline, monitoring_pipeline_name the monitoring one, and where it picks one by
    --monitoring, the one `flags` pick; none of these means both."""
    settings = Settings()
    chooses = any(node.name == PIPELINE_CHOICE for node in graph.reachable("pipelines.cli", function))
    attributes = graph.attributes("pipelines.cli", function, frozenset({PIPELINE_CHOICE}))
    if chooses:
        attributes.add("monitoring_pipeline_name" if "--monitoring" in flags else "pipeline_name")
    used = [
        name
        for attribute, name in [
            ("pipeline_name", settings.pipeline_name),
            ("monitoring_pipeline_name", settings.monitoring_pipeline_name),
        ]
        if attribute in attributes
    ]
    return used or both_pipelines()


def workflow_operations(
    stack: Stack, name: str
) -> tuple[set[Invocation], set[tuple[str, str]], list[Request]]:
    """A workflow's invocations, the boto3 operations they reach, and the requests they make."""
    invocations, aws_cli_actions = aws_commands(name)
    graph = CallGraph(CLI_MODULES)
    everything: set[tuple[str, str]] = set()
    requests: list[Request] = []
    for invocation in sorted(invocations, key=str):
        handler = handler_of(graph, invocation.command, invocation.action)
        skipped = frozenset().union(*(SKIPPED_BY_FLAG[f] for f in invocation.flags if f in SKIPPED_BY_FLAG))
        operations = graph.operations("pipelines.cli", handler, skipped)
        everything |= operations
        by_type = samples(stack, pipelines_used(graph, handler, invocation.flags))
        if handler in OBJECTS_READ:
            by_type["object"] = OBJECTS_READ[handler](stack)
        requests += [
            r for op in sorted(operations - LOCAL_ONLY) for r in requests_for(stack, *op, by_type)
        ]
    for action in sorted(aws_cli_actions):
        service, operation = action.split(":")
        requests += list(requests_for(stack, service, operation))
    return invocations, everything, requests


def evaluation_reports(stack: Stack) -> list[str]:
    """The metrics file of a registered version (what `models list` reads), where the training
    definition's Evaluate step writes it."""
    from pipelines.definition import definition_json

    definition = json.loads(definition_json(stack_settings(stack)))
    (output,) = [
        o
        for step in all_steps(definition["Steps"])
        for o in step["Arguments"].get("ProcessingOutputConfig", {}).get("Outputs", [])
        if o["OutputName"] == "evaluation"
    ]
    uri = pipeline_value(definition, output["S3Output"]["S3Uri"])
    assert uri.startswith(f"s3://{stack.physical_id('ArtifactBucket')}/")
    return [f"arn:aws:s3:::{uri.removeprefix('s3://')}/evaluation.json"]


# Handlers that read S3 objects other than the code and data samples.
# `models list` reads evaluation reports; cmd_models reaches it for every action.
OBJECTS_READ = {"cmd_models": evaluation_reports, "_list_models": evaluation_reports}


def test_pipelines_used_tells_the_commands_apart() -> None:
    graph = CallGraph(CLI_MODULES)
    assert pipelines_used(graph, "cmd_upsert") == both_pipelines()
    assert pipelines_used(graph, "cmd_start") == [Settings().pipeline_name]
    assert handler_of(graph, "monitor", "setup") == "_monitor_setup"
    assert handler_of(graph, "monitor", "run") == "cmd_monitor"
    assert pipelines_used(graph, "_monitor_setup") == [Settings().monitoring_pipeline_name]
    # status, logs, stop, retry and graph act on one pipeline, the one --monitoring picks
    assert pipelines_used(graph, "cmd_status") == [Settings().pipeline_name]
    assert pipelines_used(graph, "cmd_status", frozenset({"--monitoring"})) == [
        Settings().monitoring_pipeline_name]


def test_a_skipping_flag_removes_only_what_it_skips() -> None:
    graph = CallGraph(CLI_MODULES)
    full = graph.operations("pipelines.cli", "cmd_upsert")
    skipped = graph.operations("pipelines.cli", "cmd_upsert", SKIPPED_BY_FLAG["--skip-deploy-handler"])
    assert full - skipped == {
        ("lambda", "UpdateFunctionCode"),
        ("lambda", "CreateFunction"),
        ("lambda", "UpdateFunctionConfiguration"),
        ("lambda", "PutFunctionEventInvokeConfig"),
        ("lambda", "GetFunctionConfiguration"),  # waiting for those changes to be done
    }
    assert ("sagemaker", "CreatePipeline") in skipped


def test_each_aws_workflow_assumes_its_own_role(stack: Stack) -> None:
    assert {name: assumed_role(stack, name) for name in AWS_WORKFLOWS} == AWS_WORKFLOWS
    assert assumed_role(stack, "pipeline.yml") != assumed_role(stack, "model-approval.yml")


def test_the_pipeline_role_allows_what_the_pipeline_workflow_runs(stack: Stack) -> None:
    invocations, everything, requests = workflow_operations(stack, "pipeline.yml")
    assert {"upsert", "start", "status", "monitor"} <= {i.command for i in invocations}
    assert Invocation("monitor", "setup") in invocations
    assert Invocation("upsert", None, frozenset({"--skip-deploy-handler"})) in invocations
    assert {
        ("s3", "PutObject"),
        ("sagemaker", "CreatePipeline"),
        ("sagemaker", "StartPipelineExecution"),
        ("scheduler", "CreateSchedule"),
        ("sns", "CreateTopic"),
        ("cloudwatch", "PutMetricAlarm"),
        ("cloudwatch", "DescribeAlarms"),
    } <= everything
    assert not {("lambda", "UpdateFunctionCode"), ("sagemaker", "UpdateModelPackage")} & everything
    assert LOCAL_BUCKET in everything, "LOCAL_ONLY names a call the code no longer makes"
    assert refused(stack.role_policies("GitHubPipelineRole"), requests) == []


def test_the_approval_role_allows_what_the_approval_workflow_runs(stack: Stack) -> None:
    invocations, everything, requests = workflow_operations(stack, "model-approval.yml")
    assert {"models", "publish-handler"} <= {i.command for i in invocations}
    assert everything >= LOCAL_FUNCTION, "LOCAL_ONLY names a call the code no longer makes"
    assert {
        ("sagemaker", "UpdateModelPackage"),
        ("sagemaker", "ListModelPackages"),
        ("lambda", "UpdateFunctionCode"),
    } <= everything
    rollback = {r.action for r in requests}
    assert {"sagemaker:DescribeModelPackage", "sagemaker:UpdateModelPackage"} <= rollback
    assert refused(stack.role_policies("GitHubApprovalRole"), requests) == []


@pytest.mark.parametrize(
    "action, resource",
    [
        ("sagemaker:UpdateModelPackage", MODEL_PACKAGE),
        ("lambda:UpdateFunctionCode", "FUNCTION"),
        ("lambda:UpdateFunctionConfiguration", "FUNCTION"),
        ("lambda:PutFunctionEventInvokeConfig", "FUNCTION"),
    ],
)
def test_the_pipeline_role_is_explicitly_denied_approving_and_changing_the_deployer(
    stack: Stack, action: str, resource: str
) -> None:
    """An explicit deny: no policy attached to the role later can grant these."""
    resource = resource.replace("FUNCTION", stack.arn("DeployFunction"))
    assert decide(stack.role_policies("GitHubPipelineRole"), Request(action, resource)) == "Deny"


def test_the_approval_role_approves_and_publishes_the_handler(stack: Stack) -> None:
    documents = stack.role_policies("GitHubApprovalRole")
    for request in [
        Request("sagemaker:UpdateModelPackage", MODEL_PACKAGE, {"sagemaker:ModelApprovalStatus": "Approved"}),
        Request("lambda:UpdateFunctionCode", stack.arn("DeployFunction")),
    ]:
        assert decide(documents, request) == "Allow", request


@pytest.mark.parametrize(
    "action, resource, context",
    [
        ("s3:PutObject", "BUCKET/sentiment-classifier/executions/x/model/model.tar.gz", {}),
        ("s3:PutObject", "BUCKET/other-prefix/code/x.py", {}),
        ("s3:DeleteObject", "BUCKET/sentiment-classifier/data/train.csv", {}),
        ("lambda:UpdateFunctionCode", "FUNCTION", {}),
        ("lambda:UpdateFunctionCode", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:other", {}),
        ("lambda:UpdateFunctionConfiguration", "FUNCTION", {}),
        ("lambda:InvokeFunction", "FUNCTION", {}),
        ("sagemaker:StartPipelineExecution", f"{SM}:pipeline/other-pipeline", {}),
        ("sagemaker:StartPipelineExecution", f"{SM}:pipeline/sentiment-classifier-monitor", {}),
        ("sagemaker:DeletePipeline", f"{SM}:pipeline/sentiment-classifier", {}),
        ("sagemaker:DeletePipeline", f"{SM}:pipeline/sentiment-classifier-monitor", {}),
        ("sagemaker:UpdatePipeline", f"{SM}:pipeline/other-pipeline-monitor", {}),
        ("sagemaker:UpdateModelPackage", MODEL_PACKAGE, {}),
        ("sagemaker:UpdateModelPackage", f"{SM}:model-package/other-group/1", {}),
        ("sagemaker:CreateModelPackage", MODEL_PACKAGE, {}),
        ("sagemaker:CreateEndpoint", f"{SM}:endpoint/sentiment-classifier", {}),
        ("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin", PASS_TO_SAGEMAKER),
        ("iam:PassRole", "EXECUTION_ROLE", {"iam:PassedToService": "ec2.amazonaws.com"}),
        ("iam:PassRole", "EXECUTION_ROLE", PASS_TO_SCHEDULER),
        ("iam:PassRole", "SCHEDULE_ROLE", PASS_TO_SAGEMAKER),
        ("scheduler:CreateSchedule", f"{SCHEDULER}:schedule/default/other-schedule", {}),
        ("scheduler:UpdateSchedule", f"{SCHEDULER}:schedule/other-group/{SCHEDULE}", {}),
        ("scheduler:DeleteSchedule", f"{SCHEDULER}:schedule/default/{SCHEDULE}", {}),
        ("sns:CreateTopic", f"arn:aws:sns:{REGION}:{ACCOUNT}:other-topic", {}),
        ("sns:Subscribe", f"arn:aws:sns:{REGION}:{ACCOUNT}:sentiment-classifier-monitoring", {}),
        ("sns:Publish", f"arn:aws:sns:{REGION}:{ACCOUNT}:sentiment-classifier-monitoring", {}),
        ("sns:DeleteTopic", f"arn:aws:sns:{REGION}:{ACCOUNT}:sentiment-classifier-monitoring", {}),
        ("cloudwatch:PutMetricAlarm", f"{ALARM}:other-alarm", {}),
        ("cloudwatch:PutMetricAlarm", f"{ALARM}:sentiment-classifier-deploy-errors", {}),
        ("cloudwatch:DeleteAlarms", f"{ALARM}:sentiment-classifier-deploy-failed-approvals", {}),
        ("cloudwatch:DeleteAlarms", f"{ALARM}:sentiment-classifier-5xx", {}),
        ("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "SentimentClassifier/Monitoring"}),
        ("sqs:DeleteMessage", "QUEUE", {}),
        ("sqs:ReceiveMessage", "QUEUE", {}),
        # A failed job's log is read, never written, and no other group's.
        ("logs:GetLogEvents", f"{LOG_GROUP}:/aws/sagemaker/Endpoints/x:log-stream:a", {}),
        ("logs:GetLogEvents", f"{LOG_GROUP}:/other/app:log-stream:a", {}),
        ("logs:PutLogEvents", f"{JOB_LOG_GROUPS[1]}:log-stream:{JOB_STREAM}", {}),
        ("logs:DeleteLogStream", f"{JOB_LOG_GROUPS[0]}:log-stream:{JOB_STREAM}", {}),
    ],
)
@pytest.mark.parametrize("role", sorted(AWS_WORKFLOWS.values()))
def test_the_github_roles_reach_nothing_else(
    stack: Stack, role: str, action: str, resource: str, context: dict[str, str]
) -> None:
    """Both roles, so the approval role gets nothing of the pipeline role's either: what one of
    them needs (publishing the handler, approving) is tested as allowed above."""
    if role == "GitHubApprovalRole" and (action, resource) in [
        ("lambda:UpdateFunctionCode", "FUNCTION"),
        ("sagemaker:UpdateModelPackage", MODEL_PACKAGE),
    ]:
        pytest.skip("the approval role's own job, tested above")
    resource = (
        resource.replace("BUCKET", stack.arn("ArtifactBucket"))
        .replace("FUNCTION", stack.arn("DeployFunction"))
        .replace("EXECUTION_ROLE", stack.arn("ExecutionRole"))
        .replace("SCHEDULE_ROLE", stack.arn("ScheduleRole"))
        .replace("QUEUE", stack.arn("DeployFailureQueue"))
    )
    assert not allowed(stack.role_policies(role), Request(action, resource, context))


@pytest.mark.parametrize(
    "action, resource",
    [
        ("sagemaker:CreatePipeline", f"{SM}:pipeline/sentiment-classifier"),
        ("sagemaker:UpdatePipeline", f"{SM}:pipeline/sentiment-classifier"),
        ("sagemaker:StartPipelineExecution", f"{SM}:pipeline/sentiment-classifier"),
        ("s3:PutObject", "BUCKET/sentiment-classifier/code/x.py"),
        ("iam:PassRole", "EXECUTION_ROLE"),
        ("scheduler:CreateSchedule", f"{SCHEDULER}:schedule/default/{SCHEDULE}"),
    ],
)
def test_the_approval_role_runs_no_pipeline(stack: Stack, action: str, resource: str) -> None:
    resource = resource.replace("BUCKET", stack.arn("ArtifactBucket")).replace(
        "EXECUTION_ROLE", stack.arn("ExecutionRole")
    )
    documents = stack.role_policies("GitHubApprovalRole")
    assert not allowed(documents, Request(action, resource, PASS_TO_SAGEMAKER))
    assert allowed(stack.role_policies("GitHubPipelineRole"), Request(action, resource, PASS_TO_SAGEMAKER))


# --- SageMaker execution role -----------------------------------------------------------------

PIPELINES = ["training", "monitoring"]
# Step types each definition must have, so a test cannot pass on an empty definition.
STEP_TYPES = {
    "training": {"Processing", "Training", "RegisterModel", "Lambda"},
    "monitoring": {"Lambda", "Processing"},
}


def stack_settings(stack: Stack) -> Settings:
    return Settings(
        target="sagemaker",
        region=REGION,
        bucket=stack.physical_id("ArtifactBucket"),
        role_arn=stack.arn("ExecutionRole"),
    )


@pytest.fixture(scope="module")
def definitions(stack: Stack) -> dict[str, dict[str, Any]]:
    """The real definitions of both pipelines for this stack's bucket and role."""
    from pipelines.definition import definition_json
    from pipelines.monitoring_definition import monitoring_definition_json

    settings = stack_settings(stack)
    loaded = {
        "training": json.loads(definition_json(settings)),
        "monitoring": json.loads(monitoring_definition_json(settings)),
    }
    assert all(isinstance(d, dict) for d in loaded.values())
    return loaded


@pytest.fixture(scope="module")
def definition(definitions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return definitions["training"]


def pipeline_name(stack: Stack, pipeline: str) -> str:
    settings = stack_settings(stack)
    return settings.pipeline_name if pipeline == "training" else settings.monitoring_pipeline_name


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


def step_requests(
    stack: Stack, step: dict[str, Any], definition: dict[str, Any] | None = None
) -> list[Request]:
    """What SageMaker does with the pipeline's role to run one step (parameters at their
    defaults in `definition`)."""
    pass_role = Request("iam:PassRole", stack.arn("ExecutionRole"), PASS_TO_SAGEMAKER)
    job = f"pipelines-{EXECUTION_ID}-{step['Name'].lower()}-a1b2c3d4e5"
    if step["Type"] == "Processing":
        assert step["Arguments"]["RoleArn"] == stack.arn("ExecutionRole")
        return [Request("sagemaker:CreateProcessingJob", f"{SM}:processing-job/{job}"), pass_role]
    if step["Type"] == "Training":
        assert step["Arguments"]["RoleArn"] == stack.arn("ExecutionRole")
        return [Request("sagemaker:CreateTrainingJob", f"{SM}:training-job/{job}"), pass_role]
    if step["Type"] == "RegisterModel":
        group = step["Arguments"]["ModelPackageGroupName"]
        status = pipeline_value(definition or {}, step["Arguments"]["ModelApprovalStatus"])
        return [
            Request("sagemaker:CreateModelPackageGroup", f"{SM}:model-package-group/{group}"),
            Request(
                "sagemaker:CreateModelPackage",
                f"{SM}:model-package/{group}/1",
                {"sagemaker:ModelApprovalStatus": str(status)},
            ),
        ]
    if step["Type"] == "Lambda":
        assert step["FunctionArn"] == stack.arn("DeployFunction")
        return [Request("lambda:InvokeFunction", step["FunctionArn"])]
    assert step["Type"] in ("Condition", "Fail"), f"no permissions modelled for {step['Type']}"
    return []


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_execution_role_runs_every_step_of_the_pipeline(
    stack: Stack, definitions: dict[str, dict[str, Any]], pipeline: str
) -> None:
    definition = definitions[pipeline]
    steps = list(all_steps(definition["Steps"]))
    assert {s["Type"] for s in steps} >= STEP_TYPES[pipeline]
    requests = [r for step in steps for r in step_requests(stack, step, definition)]
    experiment = definition.get("PipelineExperimentConfig")
    if experiment:  # experiment = pipeline, trial = execution
        assert experiment["ExperimentName"] == {"Get": "Execution.PipelineName"}
        name = pipeline_name(stack, pipeline)
        requests += [
            Request("sagemaker:CreateExperiment", f"{SM}:experiment/{name}"),
            Request("sagemaker:CreateTrial", f"{SM}:experiment-trial/{EXECUTION_ID}"),
        ]
    assert refused(stack.role_policies("ExecutionRole"), requests) == []


@pytest.mark.parametrize(
    "status, decision",
    [("PendingManualApproval", "Allow"), ("Rejected", "Allow"), ("Approved", "Deny"), (None, "Allow")],
)
def test_a_pipeline_cannot_register_a_version_as_approved(
    stack: Stack, definition: dict[str, Any], status: str | None, decision: str
) -> None:
    """Whoever may start or upsert a pipeline could otherwise approve by registering a version as
    Approved (ModelApprovalStatus=Approved): the approval rule would deploy it, no reviewer asked."""
    (register,) = [s for s in all_steps(definition["Steps"]) if s["Type"] == "RegisterModel"]
    assert register["Arguments"]["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    context = {} if status is None else {"sagemaker:ModelApprovalStatus": status}
    request = Request("sagemaker:CreateModelPackage", f"{SM}:model-package/sentiment-classifier/1", context)
    assert decide(stack.role_policies("ExecutionRole"), request) == decision


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_execution_role_reads_and_writes_every_s3_location_of_the_definition(
    stack: Stack, definitions: dict[str, dict[str, Any]], pipeline: str
) -> None:
    uris = s3_locations(definitions[pipeline])
    settings = stack_settings(stack)
    if pipeline == "training":
        assert len(uris) >= 5
        assert settings.s3_uri("executions", EXECUTION_ID, "baseline") in uris
    else:  # what monitor.py --mode check reads and writes, for the default endpoint
        endpoint = settings.endpoint_name
        assert settings.s3_uri("data-capture", endpoint) + "/" in uris  # its folder only
        assert settings.monitoring_output_uri(endpoint, EXECUTION_ID) in uris
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


def test_the_monitoring_check_reads_what_the_serving_lookup_returns(
    definitions: dict[str, dict[str, Any]],
) -> None:
    """The model and baseline inputs come from ResolveServingModel, i.e. from the registered
    version, whose S3 locations the training pipeline wrote (and the test above covers)."""
    steps = {s["Name"]: s for s in definitions["monitoring"]["Steps"]}
    inputs = {
        i["InputName"]: i["S3Input"]["S3Uri"]
        for i in steps["CheckDrift"]["Arguments"]["ProcessingInputs"]
    }
    lookup = "Steps.ResolveServingModel.OutputParameters"
    assert inputs["model"] == {"Get": f"{lookup}['model_data_url']"}
    assert inputs["baseline"] == {"Get": f"{lookup}['baseline_uri']"}
    assert pipeline_value(definitions["monitoring"], inputs["model"]) is None
    assert steps["ResolveServingModel"]["Arguments"]["action"] == "describe_serving"


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_execution_role_pulls_the_images_of_the_definition(
    stack: Stack, definitions: dict[str, dict[str, Any]], pipeline: str
) -> None:
    images = {s for s in strings(definitions[pipeline]) if ".dkr.ecr." in s}
    assert images
    documents = stack.role_policies("ExecutionRole")
    for image in images:
        registry, _, repository = image.partition("/")
        account, region = registry.split(".")[0], registry.split(".")[3]
        arn = f"arn:aws:ecr:{region}:{account}:repository/{repository.split(':')[0]}"
        assert allowed(documents, Request("ecr:BatchGetImage", arn)), image
    assert allowed(documents, Request("ecr:GetAuthorizationToken", "*"))


def script_requests(stack: Stack, path: Any) -> list[Request]:
    """The calls of one step script; PutMetricData with the namespace the call names."""
    requests: list[Request] = []
    for service, operation in sorted(module_operations(path)):
        contexts: list[dict[str, str]] = [{}]
        if (service, operation) == ("cloudwatch", "PutMetricData"):
            namespaces = [call.get("Namespace") for call in call_arguments(path, "put_metric_data")]
            assert namespaces, f"{path.name}: put_metric_data without a Namespace keyword"
            for namespace in namespaces:
                assert isinstance(namespace, str) and not namespace.startswith("<"), (
                    f"{path.name}: the namespace {namespace} is not a constant, so IAM's "
                    "cloudwatch:namespace condition cannot be checked here"
                )
            contexts = [{"cloudwatch:namespace": str(n)} for n in namespaces]
        for context in contexts:
            requests += list(requests_for(stack, service, operation, context=context))
    return requests


def test_execution_role_allows_every_call_of_the_step_scripts(stack: Stack) -> None:
    """monitor.py publishes the drift metrics the alarms watch; the role must let it, in the
    namespace it names (and the alarms read)."""
    assert [p.name for p in EXECUTION_ROLE_SCRIPTS if p.name == "monitor.py"] == ["monitor.py"]
    requests = [r for path in EXECUTION_ROLE_SCRIPTS for r in script_requests(stack, path)]
    metrics = [r for r in requests if r.action == "cloudwatch:PutMetricData"]
    assert [r.context["cloudwatch:namespace"] for r in metrics] == ["SentimentClassifier/Monitoring"]
    assert {spec["Namespace"] for spec in alarm_specs("e", "p-", FEATURES, 0.1, 60)} == {
        metrics[0].context["cloudwatch:namespace"]
    }, "the alarms watch another namespace than monitor.py publishes to"
    assert refused(stack.role_policies("ExecutionRole"), requests) == []


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
        ("s3:GetObject", "arn:aws:s3:::another-bucket/sentiment-classifier/data-capture/x", {}),
        ("s3:PutObject", "BUCKET/other-prefix/x", {}),
        ("s3:PutObject", "BUCKET/other-prefix/monitoring/sentiment-classifier/x/report.html", {}),
        ("s3:ListBucket", "BUCKET", {"s3:prefix": "other-prefix/"}),
        ("sagemaker:CreateTrainingJob", f"{SM}:training-job/not-from-a-pipeline", {}),
        ("sagemaker:CreateProcessingJob", f"{SM}:processing-job/sentiment-monitor-2024", {}),
        ("sagemaker:CreateModelPackage", f"{SM}:model-package/other-group/1", {}),
        ("sagemaker:CreateEndpoint", f"{SM}:endpoint/sentiment-classifier", {}),
        ("sagemaker:StartPipelineExecution", f"{SM}:pipeline/sentiment-classifier-monitor", {}),
        ("sagemaker:CreateExperiment", f"{SM}:experiment/other-pipeline", {}),
        ("lambda:InvokeFunction", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:other", {}),
        ("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin", PASS_TO_SAGEMAKER),
        ("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "Billing"}),
        ("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "SentimentClassifier/Other"}),
        ("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "SentimentClassifier/Monitoring2"}),
        ("cloudwatch:PutMetricData", "*", {}),
        ("cloudwatch:PutMetricAlarm", f"{ALARM}:sentiment-classifier-monitoring-violations", {}),
    ],
)
def test_execution_role_reaches_nothing_else(
    stack: Stack, action: str, resource: str, context: dict[str, str]
) -> None:
    resource = resource.replace("BUCKET", stack.arn("ArtifactBucket"))
    assert not allowed(stack.role_policies("ExecutionRole"), Request(action, resource, context))


# --- EventBridge Scheduler role ---------------------------------------------------------------


def scheduled_request(pipeline: str) -> Request:
    """What the schedule's universal target does with the role: the SDK call the target ARN names,
    on the pipeline its input names (built by the code `monitor setup` runs)."""
    service, _, api = START_PIPELINE_TARGET.rpartition(":aws-sdk:")[2].partition(":")
    action = f"{service}:{api[0].upper()}{api[1:]}"
    request = pipeline_input(pipeline, Settings().endpoint_name, 1.0)
    return Request(action, f"{SM}:pipeline/{request['PipelineName']}")


def test_schedule_role_has_a_single_permission(stack: Stack) -> None:
    statements = [s for d in stack.role_policies("ScheduleRole") for s in as_list(d["Statement"])]
    (statement,) = statements
    assert statement["Effect"] == "Allow"
    assert as_list(statement["Action"]) == ["sagemaker:StartPipelineExecution"]
    assert as_list(statement["Resource"]) == [f"{SM}:pipeline/{Settings().monitoring_pipeline_name}"]
    assert "Condition" not in statement


@pytest.mark.parametrize(
    "pipeline, decision",
    [("sentiment-classifier-monitor", True), ("sentiment-classifier", False), ("other", False)],
)
def test_schedule_role_starts_the_monitoring_pipeline_and_not_the_training_one(
    stack: Stack, pipeline: str, decision: bool
) -> None:
    request = scheduled_request(pipeline)
    assert request.action == "sagemaker:StartPipelineExecution"
    assert allowed(stack.role_policies("ScheduleRole"), request) is decision


@pytest.mark.parametrize(
    "action, resource, context",
    [
        ("sagemaker:UpdatePipeline", f"{SM}:pipeline/sentiment-classifier-monitor", {}),
        ("sagemaker:StopPipelineExecution", f"{SM}:pipeline/sentiment-classifier-monitor", {}),
        ("iam:PassRole", "EXECUTION_ROLE", PASS_TO_SAGEMAKER),
        ("lambda:InvokeFunction", "FUNCTION", {}),
    ],
)
def test_schedule_role_reaches_nothing_else(
    stack: Stack, action: str, resource: str, context: dict[str, str]
) -> None:
    resource = resource.replace("EXECUTION_ROLE", stack.arn("ExecutionRole")).replace(
        "FUNCTION", stack.arn("DeployFunction")
    )
    assert not allowed(stack.role_policies("ScheduleRole"), Request(action, resource, context))

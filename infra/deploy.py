"""Check, create or update, and delete the project's AWS stack (infra/template.yaml).

    python infra/deploy.py validate
    python infra/deploy.py deploy [--yes] [--parameter Key=Value ...]
    python infra/deploy.py destroy [--yes]
    python infra/deploy.py settings > pipeline.toml   (role_arn, schedule_role_arn, names ...)

Nothing changes before the plan is printed and confirmed: `deploy` goes through a change set so the
exact resource changes are shown first, and `destroy` lists what it deletes, billed endpoint and
bucket contents included. Errors a user can fix end in one line, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    WaiterError,
)
from cfnlint.decode import cfn_yaml

from pipelines.settings import Settings, SettingsError, load_settings

INFRA_DIR = Path(__file__).resolve().parent
TEMPLATE = INFRA_DIR / "template.yaml"
DEFAULT_STACK_NAME = "sentiment-classifier-infra"
CAPABILITIES = ["CAPABILITY_IAM"]
# New stacks take their names from the pipeline settings, so both sides agree without retyping.
SETTINGS_PARAMETERS = {
    "PipelineName": "pipeline_name",
    "ModelPackageGroupName": "model_package_group",
    "EndpointName": "endpoint_name",
    "DeployFunctionName": "deploy_function_name",
    "BucketPrefix": "prefix",
    "EndpointInstanceType": "endpoint_instance_type",
    "EndpointInstanceCount": "endpoint_instance_count",
    "CapturePercentage": "capture_percentage",
}
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
BROKEN_STATES = ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED", "CREATE_FAILED")
WAIT = {"Delay": 5, "MaxAttempts": 720}  # up to an hour, polled every 5 s

Ask = Callable[[str], str]


class UserError(Exception):
    """Something the user can fix; printed as one line."""


def say(text: str = "") -> None:
    print(text, flush=True)


def template_parameters(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template's Parameters section (name -> declaration)."""
    template = cfn_yaml.load(str(path))
    if not isinstance(template, dict):
        raise UserError(f"{path}: not a CloudFormation template")
    return dict(template.get("Parameters", {}))


def retained_resources(path: Path = TEMPLATE) -> set[str]:
    """Logical ids the template keeps when the stack is deleted (DeletionPolicy Retain)."""
    template = cfn_yaml.load(str(path))
    resources = template.get("Resources", {}) if isinstance(template, dict) else {}
    return {name for name, body in resources.items() if body.get("DeletionPolicy") == "Retain"}


def parse_assignments(pairs: Sequence[str], known: Sequence[str]) -> dict[str, str]:
    """`Key=Value` flags as stack parameters, refusing keys the template does not declare."""
    given: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--parameter takes Key=Value, got {pair!r}")
        if key not in known:
            raise UserError(f"unknown parameter {key}; the template has: {', '.join(known)}")
        given[key] = value
    return given


def plan_parameters(
    declared: dict[str, Any], given: dict[str, str], settings: Settings, previous: set[str] | None
) -> list[tuple[str, str | None, str]]:
    """(key, value or None for 'keep', where from) for each declared parameter, in order.

    On update, a parameter not given keeps its previous value: re-running deploy without
    GitHubRepository must not quietly delete the CI role.
    """
    plan: list[tuple[str, str | None, str]] = []
    for key, declaration in declared.items():
        if key in given:
            plan.append((key, given[key], "given"))
        elif previous is not None and key in previous:
            plan.append((key, None, "previous value"))
        elif key in SETTINGS_PARAMETERS:
            plan.append((key, str(getattr(settings, SETTINGS_PARAMETERS[key])), "settings"))
        else:
            plan.append((key, str(declaration.get("Default", "")), "template default"))
    return plan


def as_cloudformation(plan: list[tuple[str, str | None, str]]) -> list[dict[str, Any]]:
    return [
        {"ParameterKey": key, "UsePreviousValue": True}
        if value is None
        else {"ParameterKey": key, "ParameterValue": value}
        for key, value, _ in plan
    ]


def describe_stack(cf: Any, name: str) -> dict[str, Any] | None:
    try:
        return dict(cf.describe_stacks(StackName=name)["Stacks"][0])
    except ClientError as error:
        if "does not exist" in str(error.response.get("Error", {}).get("Message", "")):
            return None
        raise


def confirm(ask: Ask, question: str, expected: str = "y") -> bool:
    """A yes only when typed; no terminal (CI, a pipe) counts as no."""
    try:
        return ask(f"{question} ").strip().lower() == expected.lower()
    except EOFError:
        return False


def wait(cf: Any, waiter: str, **kwargs: Any) -> None:
    cf.get_waiter(waiter).wait(WaiterConfig=WAIT, **kwargs)


def failure_reasons(cf: Any, stack_name: str, since: float) -> Iterator[str]:
    """The resource failures of the last operation, oldest first, for a one-look diagnosis."""
    events = cf.describe_stack_events(StackName=stack_name)["StackEvents"]
    for event in reversed(events):
        failed = str(event.get("ResourceStatus", "")).endswith("FAILED")
        if failed and event["Timestamp"].timestamp() >= since:
            yield f"  {event['LogicalResourceId']}: {event.get('ResourceStatusReason', '')}"


def print_outputs(stack: dict[str, Any]) -> None:
    say("outputs:")
    for output in stack.get("Outputs") or []:
        say(f"  {output['OutputKey']:<24} {output['OutputValue']}")


def cmd_validate(args: argparse.Namespace, ask: Ask) -> int:
    """cfn-lint every template here; its exit code is the verdict (warnings fail too)."""
    beside = Path(sys.executable).with_name("cfn-lint")
    linter = str(beside) if beside.exists() else shutil.which("cfn-lint")
    if not linter:
        raise UserError("cfn-lint is not installed: run `make install`")
    templates = sorted(str(path) for path in INFRA_DIR.glob("*.yaml"))
    code = subprocess.run([linter, "--", *templates], check=False).returncode
    say(f"cfn-lint: {len(templates)} template(s) {'clean' if code == 0 else 'have findings'}")
    return code


def create_change_set(
    cf: Any, args: argparse.Namespace, parameters: list[dict[str, Any]], change_type: str
) -> tuple[str, list[dict[str, Any]]] | None:
    """Create the change set; return its name and resource changes, or None if nothing changes.

    CloudFormation says "nothing to do" either at once (ValidationError) or by failing the
    change set; an available change set with no resource changes still updates outputs.
    """
    name = f"deploy-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        cf.create_change_set(
            StackName=args.stack_name,
            ChangeSetName=name,
            ChangeSetType=change_type,
            TemplateBody=TEMPLATE.read_text(encoding="utf-8"),
            Parameters=parameters,
            Capabilities=CAPABILITIES,
            Description="make infra-deploy",
        )
    except ClientError as error:
        if any(text in str(error) for text in NO_CHANGES):
            return None
        raise
    try:
        wait(cf, "change_set_create_complete", StackName=args.stack_name, ChangeSetName=name)
    except WaiterError:
        described = cf.describe_change_set(StackName=args.stack_name, ChangeSetName=name)
        reason = str(described.get("StatusReason", ""))
        if any(text in reason for text in NO_CHANGES):
            cf.delete_change_set(StackName=args.stack_name, ChangeSetName=name)
            return None
        raise UserError(f"change set {name} failed: {reason}") from None
    described = cf.describe_change_set(StackName=args.stack_name, ChangeSetName=name)
    return name, list(described.get("Changes", []))


def print_changes(changes: list[dict[str, Any]]) -> None:
    say("changes:" if changes else "changes: none to resources (parameters or outputs only)")
    for change in changes:
        resource = change.get("ResourceChange", {})
        replacement = resource.get("Replacement")
        note = f"  (replacement: {replacement})" if resource.get("Action") == "Modify" else ""
        say(
            f"  {resource.get('Action', '?'):<7} {resource.get('LogicalResourceId', '?'):<28} "
            f"{resource.get('ResourceType', '')}{note}"
        )


def cmd_deploy(args: argparse.Namespace, ask: Ask) -> int:
    """Plan (parameters, change set), confirm, execute, wait, show the outputs."""
    cf = client("cloudformation", args.region)
    declared = template_parameters()
    given = parse_assignments(args.parameter or [], list(declared))
    stack = describe_stack(cf, args.stack_name)
    status = stack["StackStatus"] if stack else "new"
    if status in BROKEN_STATES:
        raise UserError(
            f"stack {args.stack_name} is {status}: remove it with `make infra-destroy`, then deploy"
        )
    if status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise UserError(f"stack {args.stack_name} is busy ({status}): wait for it, then retry")
    creating = stack is None or status == "REVIEW_IN_PROGRESS"
    previous = None if creating else {p["ParameterKey"] for p in (stack or {}).get("Parameters", [])}
    plan = plan_parameters(declared, given, args.settings, previous)
    say(f"stack:      {args.stack_name} ({'to create' if creating else status})")
    say(f"region:     {args.region}")
    say(f"template:   {TEMPLATE}")
    say("parameters:")
    for key, value, origin in plan:
        say(f"  {key:<32} {'(unchanged)' if value is None else value or '(empty)'}  [{origin}]")
    change_type = "CREATE" if creating else "UPDATE"
    created = create_change_set(cf, args, as_cloudformation(plan), change_type)
    if created is None:
        say("no changes: the stack is up to date")
        print_outputs(stack or {})
        return 0
    name, changes = created
    print_changes(changes)
    if not args.yes and not confirm(ask, f"execute change set {name}? [y/N]"):
        if creating:
            cf.delete_stack(StackName=args.stack_name)  # only the empty REVIEW_IN_PROGRESS shell
        else:
            cf.delete_change_set(StackName=args.stack_name, ChangeSetName=name)
        say("cancelled; nothing changed")
        return 1
    started = time.time()
    cf.execute_change_set(StackName=args.stack_name, ChangeSetName=name)
    say(f"executing {name} ...")
    try:
        wait(cf, f"stack_{'create' if creating else 'update'}_complete", StackName=args.stack_name)
    except WaiterError:
        say(f"stack {args.stack_name} did not reach {change_type}_COMPLETE:")
        for line in failure_reasons(cf, args.stack_name, started - 60):
            say(line)
        return 1
    done = describe_stack(cf, args.stack_name) or {}
    say(f"stack {args.stack_name}: {done.get('StackStatus')}")
    print_outputs(done)
    say("next: python infra/deploy.py settings > pipeline.toml   (see docs/aws.md)")
    return 0


def object_versions(s3: Any, bucket: str) -> list[dict[str, str]]:
    """Every object version and delete marker: a versioned bucket is empty only without them.

    A bucket deleted by hand counts as empty; CloudFormation then skips it.
    """
    found: list[dict[str, str]] = []
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                found.append({"Key": item["Key"], "VersionId": item["VersionId"]})
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "NoSuchBucket":
            raise
    return found


def empty_bucket(s3: Any, bucket: str, versions: list[dict[str, str]]) -> None:
    for start in range(0, len(versions), 1000):
        batch = versions[start : start + 1000]
        response = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        if response.get("Errors"):
            first = response["Errors"][0]
            raise UserError(f"cannot empty {bucket}: {first['Key']}: {first.get('Message')}")
        say(f"  deleted {start + len(batch)}/{len(versions)} object versions")


def live_endpoint(sm: Any, name: str) -> str | None:
    """The endpoint's status if the deploy Lambda created it (it is not a stack resource)."""
    try:
        return str(sm.describe_endpoint(EndpointName=name)["EndpointStatus"])
    except ClientError as error:
        if "Could not find" in str(error.response.get("Error", {}).get("Message", "")):
            return None
        raise


def cmd_destroy(args: argparse.Namespace, ask: Ask) -> int:
    """List everything that goes, confirm by stack name, then endpoint, bucket, stack."""
    cf = client("cloudformation", args.region)
    stack = describe_stack(cf, args.stack_name)
    if stack is None:
        say(f"stack {args.stack_name} does not exist in {args.region}: nothing to delete")
        return 0
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    resources = cf.list_stack_resources(StackName=args.stack_name)["StackResourceSummaries"]
    retained = retained_resources()
    kept = [r for r in resources if r["LogicalResourceId"] in retained]
    buckets = [
        r["PhysicalResourceId"]
        for r in resources
        if r["ResourceType"] == "AWS::S3::Bucket" and r not in kept
    ]
    s3, sm = client("s3", args.region), client("sagemaker", args.region)
    endpoint = parameters.get("EndpointName", "")
    endpoint_status = live_endpoint(sm, endpoint) if endpoint else None
    contents = {bucket: object_versions(s3, bucket) for bucket in buckets}
    say(f"stack:   {args.stack_name} ({stack['StackStatus']})")
    say(f"region:  {args.region}")
    say("will delete:")
    if endpoint_status:
        say(f"  endpoint {endpoint} ({endpoint_status}; billed per instance-hour)")
    for bucket, versions in contents.items():
        say(f"  every object version in s3://{bucket} ({len(versions)}): data, models, captures")
    for resource in resources:
        if resource not in kept:
            say(
                f"  {resource['ResourceType']:<28} {resource['LogicalResourceId']:<28} "
                f"{resource.get('PhysicalResourceId', '')}".rstrip()
            )
    for resource in kept:
        say(f"kept: {resource['LogicalResourceId']} {resource.get('PhysicalResourceId', '')} (audit record)")
    say(
        "kept: the pipelines, model package group, models and endpoint configs (no charge), and "
        "what `monitor setup` made (schedule, drift alarms: cents a month); docs/aws.md "
        "shows how to remove them"
    )
    question = f"type the stack name ({args.stack_name}) to delete all of this:"
    if not args.yes and not confirm(ask, question, expected=args.stack_name):
        say("cancelled; nothing deleted")
        return 1
    if endpoint_status:
        sm.delete_endpoint(EndpointName=endpoint)
        say(f"deleting endpoint {endpoint} ...")
        wait(sm, "endpoint_deleted", EndpointName=endpoint)
    for bucket in contents:
        say(f"emptying s3://{bucket} ...")
        empty_bucket(s3, bucket, object_versions(s3, bucket))  # again: captures may have landed
    started = time.time()
    cf.delete_stack(StackName=args.stack_name)
    say(f"deleting stack {args.stack_name} ...")
    try:
        wait(cf, "stack_delete_complete", StackName=args.stack_name)
    except WaiterError:
        say(f"stack {args.stack_name} was not deleted:")
        for line in failure_reasons(cf, args.stack_name, started - 60):
            say(line)
        return 1
    say(f"deleted stack {args.stack_name}")
    return 0


def settings_toml(environment: str, stack_name: str, region: str) -> str:
    """pipeline.toml text from the stack's PipelineEnvironment output (PIPELINE_X=value ...)."""
    lines = [
        f"# Settings for stack {stack_name} in {region}: python infra/deploy.py settings",
        "[pipeline]",
    ]
    for assignment in environment.split():
        name, _, value = assignment.partition("=")
        lines.append(f"{name.removeprefix('PIPELINE_').lower()} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def cmd_settings(args: argparse.Namespace, ask: Ask) -> int:
    """Print pipeline.toml for the deployed stack (only the TOML goes to stdout)."""
    stack = describe_stack(client("cloudformation", args.region), args.stack_name)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in (stack or {}).get("Outputs") or []}
    if "PipelineEnvironment" not in outputs:
        raise UserError(f"stack {args.stack_name} in {args.region} has no outputs: deploy it first")
    sys.stdout.write(settings_toml(outputs["PipelineEnvironment"], args.stack_name, args.region))
    return 0


def client(service: str, region: str) -> Any:
    config = Config(retries={"max_attempts": 5, "mode": "standard"})
    return boto3.Session(region_name=region).client(service, config=config)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infra/deploy.py", description="The project's AWS stack: check, deploy, destroy."
    )
    parser.add_argument("--stack-name", default=DEFAULT_STACK_NAME)
    parser.add_argument("--region", help="default: the pipeline settings' region")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("validate", help="cfn-lint the templates").set_defaults(handler=cmd_validate)
    deploy = sub.add_parser("deploy", help="create or update the stack through a change set")
    deploy.set_defaults(handler=cmd_deploy)
    deploy.add_argument("--parameter", action="append", metavar="KEY=VALUE")
    deploy.add_argument("--yes", action="store_true", help="execute without asking")
    destroy = sub.add_parser("destroy", help="delete the endpoint, the bucket's contents, the stack")
    destroy.set_defaults(handler=cmd_destroy)
    destroy.add_argument("--yes", action="store_true", help="delete without asking")
    sub.add_parser("settings", help="print pipeline.toml for the stack").set_defaults(
        handler=cmd_settings
    )
    return parser


def explain(error: Exception) -> str:
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials: configure them (aws configure, AWS_PROFILE or SSO) and retry"
    if isinstance(error, NoRegionError):
        return "no AWS region: pass --region or set PIPELINE_REGION"
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        return f"{info.get('Code', 'Error')}: {info.get('Message', error)}"
    return " ".join(str(error).split())


def main(argv: Sequence[str] | None = None, ask: Ask = input) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.settings = load_settings()
        args.region = args.region or args.settings.region
        return int(args.handler(args, ask))
    except (UserError, SettingsError, BotoCoreError, ClientError) as error:
        print(f"error: {explain(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

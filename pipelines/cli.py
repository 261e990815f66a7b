"""The command line: a thin layer over SageMaker API calls, the same for both targets.

Errors a user can fix (no credentials, no bucket, an unknown execution) end in one line that says
what to do, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
)

from pipelines import REPO_ROOT, executions, step_table
from pipelines.aws import Clients
from pipelines.local.daemon import ServerNotStarted
from pipelines.local.layout import StateLayout
from pipelines.publish import FunctionChangeFailed
from pipelines.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from pipelines.code_bundle import CodeBundle

DEFAULT_DATA_DIR = REPO_ROOT / "data"


class UserError(Exception):
    """Something the user can fix; printed as one line."""


JSON = "application/json"  # what `invoke` sends a review given as TEXT as, and a body by default
# botocore's PipelineExecutionArn pattern, checked here to say what an execution ARN looks like
# instead of echoing the server's regular expression.
EXECUTION_ARN = re.compile(r"arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:pipeline/.*/execution/.*")


def _iso_time(text: str) -> str:
    """An argument the monitoring job reads with this very parser, refused here rather than by a
    run that fails at CheckDrift."""
    from steps.monitoring.capture import parse_time

    try:
        parse_time(text)
    except ValueError:
        example = "2026-12-01T09:00:00Z"
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time, e.g. {example}") from None
    return text


def _above_zero(text: str) -> float | None:
    """The finite number above 0 `text` spells, if it does (not "nan", not "inf")."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def _hours(text: str) -> str:
    if _above_zero(text) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours above 0")
    return text


def _seconds(text: str) -> float:
    """A wait's bound: a negative one would give up before the first look, "nan" never."""
    value = _above_zero(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def _checked_execution_arn(given: str) -> str:
    if not EXECUTION_ARN.fullmatch(given):
        raise UserError(
            f"{given!r} is not a pipeline execution ARN (arn:aws:sagemaker:<region>:<account>:"
            "pipeline/<name>/execution/<id>): `python -m pipelines executions` lists them"
        )
    return given


def say(text: str) -> None:
    print(text, flush=True)


def _definition(settings: Settings, monitoring: bool = False) -> str:
    """The training pipeline's definition as this checkout builds it, or the monitoring one's."""
    from pipelines.code_bundle import CodeBundle
    from pipelines.definition_cache import definitions

    built = definitions(settings, CodeBundle())
    return built.monitoring if monitoring else built.training


def cmd_definition(settings: Settings, args: argparse.Namespace) -> int:
    sys.stdout.write(_definition(settings))
    return 0


def cmd_graph(settings: Settings, args: argparse.Namespace) -> int:
    from pipelines.graph import render_definition

    statuses: dict[str, str] = {}
    notes: dict[str, str] = {}
    definition = None
    pipeline = _pipeline(settings, args)
    if args.execution:
        sm = Clients(settings).sagemaker
        latest = args.execution == "latest"
        arn = _latest_if_any(pipeline, sm) if latest else _checked_execution_arn(args.execution)
        if arn:
            # The definition the execution ran, which an upsert since may have changed.
            definition = sm.describe_pipeline_definition_for_execution(
                PipelineExecutionArn=arn)["PipelineDefinition"]
            for row in step_table.rows(executions.list_steps(sm, arn), datetime.now(UTC)):
                statuses[row.name] = row.status
                attempts = f"{row.attempts} attempts" if row.attempts not in ("", "1") else ""
                notes[row.name] = " · ".join(note for note in (row.cache, attempts) if note)
        else:
            say(f"pipeline {pipeline} has not run yet: its steps are drawn without a status")
    picture = "monitoring-pipeline.svg" if args.monitoring else "pipeline.svg"
    out = Path(args.out or REPO_ROOT / "out" / picture)
    out.parent.mkdir(parents=True, exist_ok=True)
    drawn = definition or _definition(settings, args.monitoring)
    out.write_text(render_definition(drawn, statuses, notes), encoding="utf-8")
    say(f"wrote {out}")
    return 0


def _latest_if_any(pipeline: str, sm: Any) -> str | None:
    """The latest execution, or None before the first run (or the first upsert) of the pipeline."""
    try:
        return executions.latest_execution_arn(sm, pipeline)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceNotFound":
            return None
        raise


def cmd_upsert(settings: Settings, args: argparse.Namespace) -> int:
    from pipelines.code_bundle import CodeBundle

    return _upsert(Clients(settings), CodeBundle(), publish_handler=not args.skip_deploy_handler)


def _upsert(clients: Clients, bundle: CodeBundle, publish_handler: bool) -> int:
    from pipelines.definition_cache import definitions
    from pipelines.publish import PipelineSpec, upsert

    settings = clients.settings
    settings.require_aws()

    def specs() -> list[PipelineSpec]:
        built = definitions(settings, bundle, say=say)
        return [
            PipelineSpec(settings.pipeline_name, built.training,
                         "Sentiment classifier: preprocess, train, evaluate, register, deploy"),
            PipelineSpec(settings.monitoring_pipeline_name, built.monitoring,
                         "Drift check of the endpoint's captured traffic against its baseline"),
        ]

    result = upsert(clients, bundle, specs, publish_handler=publish_handler)
    say(f"code {bundle.digest}: {len(result.uploaded)} artifact(s) uploaded")
    if not publish_handler:
        say(f"deploy handler {settings.deploy_function_name} left as it is")
    for arn, created in result.pipelines.values():
        say(f"{'created' if created else 'updated'} pipeline {arn}")
    return 0


def cmd_publish_handler(settings: Settings, args: argparse.Namespace) -> int:
    from pipelines.code_bundle import CodeBundle
    from pipelines.publish import publish_deploy_function

    settings.require_aws()
    bundle = CodeBundle()
    publish_deploy_function(Clients(settings), bundle)
    say(f"published steps/deploy.py (code {bundle.digest}) to {settings.deploy_function_name}")
    return 0


def cmd_start(settings: Settings, args: argparse.Namespace) -> int:
    return _start(Clients(settings), args)


def _start(clients: Clients, args: argparse.Namespace) -> int:
    settings = clients.settings
    settings.require_aws()
    sm = clients.sagemaker
    request: dict[str, Any] = {}
    if args.max_parallel is not None:
        request["ParallelismConfiguration"] = {"MaxParallelExecutionSteps": args.max_parallel}
    if args.steps:
        if args.input_data:
            raise UserError("a selective run reads the source execution's data: drop --input-data")
        request["SelectiveExecutionConfig"] = _selection(args.from_execution, args.steps)
        parameters = _parameters_of(sm, args.from_execution)
    else:
        if args.from_execution:
            raise UserError("--from-execution needs --steps: the steps to run again")
        parameters = _data_parameters(settings, clients, args.input_data)
    overrides = {**parameters, **executions.parse_overrides(args.param or [])}
    if "InputDataUri" not in overrides:
        raise UserError(f"no dataset uploaded to {settings.data_uri} yet: `python -m pipelines data upload` "
                        "stores data/ there (`make run-pipeline` does), or pass --input-data URI")
    arn = executions.start_execution(sm, settings.pipeline_name, overrides, **request)
    say(f"started {arn}")
    return _follow(clients, arn, args.timeout) if args.wait else 0


def cmd_retry(settings: Settings, args: argparse.Namespace) -> int:
    """RetryPipelineExecution: a Failed or Stopped execution runs again from the steps that did not
    succeed, with the same parameters, as the console's Retry does (a crash of the local server
    leaves what it was running Failed, for this to resume)."""
    settings.require_aws()
    clients = Clients(settings)
    sm = clients.sagemaker
    arn = _execution_arn(settings, sm, args)
    sm.retry_pipeline_execution(PipelineExecutionArn=arn)  # botocore makes the ClientRequestToken
    say(f"retrying {arn}")
    return _follow(clients, arn, args.timeout) if args.wait else 0


def cmd_stop(settings: Settings, args: argparse.Namespace) -> int:
    """StopPipelineExecution: the execution is Stopping, its running steps' jobs are stopped, then
    it is Stopped; `retry` runs it again from the steps that did not succeed."""
    settings.require_aws()
    sm = Clients(settings).sagemaker
    arn = _execution_arn(settings, sm, args)
    sm.stop_pipeline_execution(PipelineExecutionArn=arn)  # botocore makes the ClientRequestToken
    say(f"stopping {arn}")
    if not args.wait:
        return 0
    with step_table.execution_view(say) as view:
        status, _ = executions.wait_for(sm, arn, say, timeout=args.timeout, view=view)
    return 0 if status == "Stopped" else 1


def _follow(clients: Clients, arn: str, timeout: float) -> int:
    """Show the execution until it ends, then wait for the endpoint it deployed; a failed one, with
    the end of each failed job's log that its reason does not hold."""
    sm = clients.sagemaker
    try:
        with step_table.execution_view(say) as view:
            status, steps = executions.wait_for(sm, arn, say, timeout=timeout, view=view)
        if status not in ("Succeeded", "Failed"):
            return 1
        if status == "Failed":
            _show_failed_job_tails(clients, steps)
            return 1
        endpoint = executions.deployed_endpoint(steps)
        if endpoint and executions.wait_for_endpoint(sm, endpoint, say) != "InService":
            return 1
        return 0
    except KeyboardInterrupt:
        # As on SageMaker, the execution is the service's, not this process's: it goes on.
        print(f"interrupted: stopped following, but the execution goes on running; "
              f"`python -m pipelines status {arn}` shows it, `python -m pipelines stop {arn}` "
              "stops it", file=sys.stderr)
        return 130


def _show_failed_job_tails(clients: Clients, steps: list[dict[str, Any]]) -> None:
    """Under a failed execution's table, the end of each failed job's log that its reason does not
    hold (a training script's traceback)."""
    from pipelines.step_logs import failed_job_tails

    for step_name, tail in failed_job_tails(clients.logs, steps):
        say(f"the end of {step_name}'s log:")
        for line in step_table.text_lines("\n".join(tail)):
            say(f"  {line}")


def _data_parameters(settings: Settings, clients: Clients, given: str | None) -> dict[str, str]:
    """Run on the dataset last uploaded to the data prefix (or to `given`): its content address,
    digest and versions. A URI that is not an upload destination is used as it is."""
    from pipelines.datasets import latest_dataset

    dataset = latest_dataset(clients.storage, given or settings.data_uri)
    if dataset is None:
        return {"InputDataUri": given} if given else {}
    say(f"data: {dataset.uri} (sha256 {dataset.sha256[:16]})")
    return dataset.parameters()


def _selection(source: str | None, steps: list[str]) -> dict[str, Any]:
    selection: dict[str, Any] = {"SelectedSteps": [{"StepName": name} for name in steps]}
    if source:
        selection["SourcePipelineExecutionArn"] = source
    return selection


def _parameters_of(sm: Any, execution_arn: str | None) -> dict[str, str]:
    """A selective run keeps the source execution's parameters (the data its reused steps read)."""
    return executions.execution_parameters(sm, execution_arn) if execution_arn else {}


def _pipeline(settings: Settings, args: argparse.Namespace) -> str:
    """The pipeline a command acts on: the training one, or with --monitoring the monitoring one."""
    return settings.monitoring_pipeline_name if args.monitoring else settings.pipeline_name


def _execution_arn(settings: Settings, sm: Any, args: argparse.Namespace) -> str:
    """The execution named by args.execution, else the latest of the pipeline args point at."""
    if args.execution:
        return _checked_execution_arn(args.execution)
    pipeline = _pipeline(settings, args)
    arn = executions.latest_execution_arn(sm, pipeline)
    if not arn:
        how = "`make monitor` (or `make monitor-setup`)" if args.monitoring else "`make run-pipeline`"
        raise UserError(f"pipeline {pipeline} has no executions yet: run {how}")
    return arn


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    clients = Clients(settings)
    sm = clients.sagemaker
    execution, steps = executions.describe(sm, _execution_arn(settings, sm, args))
    step_table.show_summary(execution, steps, say)
    if execution["PipelineExecutionStatus"] != "Failed":
        return 0
    _show_failed_job_tails(clients, steps)
    return 1


def cmd_executions(settings: Settings, args: argparse.Namespace) -> int:
    sm = Clients(settings).sagemaker
    pipeline = _pipeline(settings, args)
    summaries = sm.list_pipeline_executions(
        PipelineName=pipeline, SortOrder="Descending", MaxResults=args.limit
    )["PipelineExecutionSummaries"]
    if not summaries:
        say(f"no executions of {pipeline}")
    for summary in summaries:
        say(
            f"{summary['StartTime']:%Y-%m-%d %H:%M:%S}  "
            f"{summary['PipelineExecutionStatus']:<10}  {summary['PipelineExecutionArn']}"
        )
    return 0


def cmd_logs(settings: Settings, args: argparse.Namespace) -> int:
    from pipelines.step_logs import NoSuchStep, step_log

    clients = Clients(settings)
    arn = _execution_arn(settings, clients.sagemaker, args)
    lines = step_log(clients.sagemaker, clients.logs, lambda: clients.lambda_, arn, args.step)
    try:
        sys.stdout.writelines(lines)
    except NoSuchStep as error:
        try:
            reason = _missing_step(settings, clients.sagemaker, args, arn, error.ran)
        except ClientError:  # the pointer is extra: without the reads it needs, the plain reason
            reason = str(error)
        raise UserError(reason) from None
    return 0


def _missing_step(settings: Settings, sm: Any, args: argparse.Namespace, arn: str, ran: list[str]) -> str:
    """Why the execution has no such step, and where its log is: a step of its pipeline that did not
    run in it (a run stopped before it) is in the latest run that ran it; one of the other
    pipeline is read with the other flag; any other name is no step at all."""
    from pipelines.step_logs import defined_steps, latest_run_of, pipeline_steps

    step, which = args.step, "this execution" if args.execution else "the latest execution"
    pipeline, _ = step_table.execution_parts(arn)
    defined = defined_steps(sm, arn)
    if step in defined:
        status = sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]
        steps_run = ", ".join(ran) or "none"
        did_not_run = f"step {step!r} has not run in {which} ({status}; steps run: {steps_run})"
        if args.execution:
            return did_not_run
        earlier = latest_run_of(sm, pipeline, step)
        if earlier is None:
            return f"{did_not_run}, nor in any of {pipeline}'s recent runs"
        return f"{did_not_run}; `logs {step} --execution {earlier}` reads the latest run that has it"
    missing = f"no step {step!r} in pipeline {pipeline} (its steps: {', '.join(defined)})"
    flag, other = ("", "training") if args.monitoring else (" --monitoring", "monitoring")
    other_name = settings.pipeline_name if args.monitoring else settings.monitoring_pipeline_name
    if not args.execution and step in pipeline_steps(sm, other_name):
        return f"{missing}; `logs {step}{flag}` reads the {other} pipeline's latest run"
    return missing


def _upload_data(clients: Clients, folder: Path, destination: str) -> None:
    from pipelines.datasets import upload_data
    from pipelines.publish import provision_local_bucket

    clients.settings.require_aws()
    if clients.settings.is_local:  # data may come before the first upsert
        provision_local_bucket(clients)
    dataset = upload_data(clients.storage, folder, destination)
    for name, stored in sorted(dataset.files.items()):
        say(f"{dataset.uri}/{name}  version {stored['version_id']}")
    state = "uploaded" if dataset.uploaded else "identical data already stored, nothing uploaded"
    say(f"dataset sha256 {dataset.sha256}: {state}")


def cmd_data_upload(settings: Settings, args: argparse.Namespace) -> int:
    destination = args.to or settings.data_uri
    _upload_data(Clients(settings), Path(args.folder), destination)
    where = "" if args.to is None else f" --input-data {destination}"
    say(f"run it: python -m pipelines start{where} --wait")
    return 0


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    """`make run-pipeline` in one process: upload the data, upsert, then start and follow a run
    on that data, as `data upload`, `upsert` and `start --wait` would one after another, with
    one set of clients (each client made once, not once per phase)."""
    from pipelines.code_bundle import CodeBundle
    from pipelines.definition_cache import build_in_background

    bundle = CodeBundle()
    build_in_background(settings, bundle)
    clients = Clients(settings)
    _upload_data(clients, Path(args.folder), settings.data_uri)
    _upsert(clients, bundle, publish_handler=True)
    start = argparse.Namespace(input_data=None, param=args.param, wait=True, timeout=args.timeout,
                               from_execution=None, steps=None, max_parallel=None)
    return _start(clients, start)


def cmd_models(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list_models(Clients(settings))
    return _change_approval(Clients(settings), args)


def _list_models(clients: Clients) -> int:
    group = clients.settings.model_package_group
    pages = clients.sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending"
    )
    try:
        packages = [package for page in pages for package in page["ModelPackageSummaryList"]]
    except ClientError as error:
        if not _group_missing(error):
            raise
        packages = []  # the first RegisterModel makes the group
    if not packages:
        say(f"no model versions in {group} yet: a run that passes the accuracy check registers one "
            "(`make run-pipeline`)")
        return 0
    marks = _endpoint_marks(clients, packages[0]["ModelPackageArn"])
    for package in packages:
        say(
            f"v{package.get('ModelPackageVersion', '?'):<4} "
            f"{package['ModelApprovalStatus']:<22} {package['CreationTime']:%Y-%m-%d %H:%M:%S}  "
            f"accuracy {_accuracy(clients, package['ModelPackageArn'])}  "
            f"{package['ModelPackageArn']}{marks.get(package['ModelPackageArn'], '')}"
        )
    return 0


def _group_missing(error: ClientError) -> bool:
    info = error.response.get("Error", {})
    return info.get("Code") == "ValidationException" and "does not exist" in info.get("Message", "")


def _endpoint_marks(clients: Clients, group_package_arn: str) -> dict[str, str]:
    """What the endpoint does with the group's versions, read from its config names: the version
    it serves, and during an update the one it moves to. Approvals and rollbacks make the latest
    version and the served one differ, and a rerun's copy leaves an earlier version serving."""
    from steps.deploy import describe_endpoint, package_of_config, pending_config

    endpoint = clients.settings.endpoint_name
    current = describe_endpoint(clients.sagemaker, endpoint) or {}
    status = current.get("EndpointStatus", "")
    marks: dict[str, str] = {}
    served = package_of_config(current.get("EndpointConfigName", ""), group_package_arn)
    if served:
        serving = status in ("InService", "Updating", "SystemUpdating", "RollingBack")
        marks[served] = f"  <- {endpoint} serves it" if serving else f"  <- {endpoint} ({status})"
    heading = package_of_config(pending_config(current) or "", group_package_arn)
    if heading:
        marks[heading] = f"  <- {endpoint} moving to it"
    return marks


def _change_approval(clients: Clients, args: argparse.Namespace) -> int:
    """approve, reject or rollback: only a change *to* Approved deploys (the approval rule)."""
    settings, sm = clients.settings, clients.sagemaker
    arn = _package_arn(settings, sm, args.package)
    if args.action == "reject":
        sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected")
        say(f"{arn}: Rejected (what the endpoint serves is unchanged: `models rollback N` changes it)")
        return 0
    package = sm.describe_model_package(ModelPackageName=arn)
    approved = package["ModelApprovalStatus"] == "Approved"
    if approved and args.action == "approve":
        say(f"{arn}: already Approved; nothing changed, so nothing is deployed "
            f"(`models rollback {args.package}` puts it back on the endpoint)")
        return _serving(clients, package, timeout=0, since=None) if args.wait else 0
    since = datetime.now(UTC) - timedelta(seconds=5)  # the log's clock may be a little behind ours
    if approved:
        # Through PendingManualApproval, which the rule ignores, as the model-approval workflow
        # rolls back.
        sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="PendingManualApproval")
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    say(f"{arn}: Approved; the deploy function puts it on endpoint {settings.endpoint_name}")
    return _serving(clients, package, timeout=args.timeout, since=since) if args.wait else 0


def _serving(clients: Clients, package: dict[str, Any], timeout: float, since: datetime | None) -> int:
    """0 once the endpoint serves the version; 1 as soon as it cannot come to it by this approval
    (see _check_still_coming), or once `timeout` seconds pass, then with what the deploy function
    logged since the approval (`since`)."""
    from pipelines.step_logs import function_log_group, lambda_log
    from steps.deploy import package_tag

    settings, sm = clients.settings, clients.sagemaker
    endpoint, version = settings.endpoint_name, package["ModelPackageVersion"]
    tag = package_tag(package["ModelPackageArn"], version)
    try:
        if executions.wait_until_serving(sm, endpoint, f"-{tag}-", say, timeout,
                                         check=lambda current: _check_still_coming(sm, package, current)):
            return 0
    except executions.WillNotServe as reason:
        print(f"error: endpoint {endpoint} will not serve v{version}: {reason}", file=sys.stderr)
        return 1
    group = function_log_group(clients.lambda_, settings.deploy_function_arn)
    print(f"error: endpoint {endpoint} does not serve v{version} after {timeout:g} s; "
          f"the deploy function logs to {group}", file=sys.stderr)
    if since is not None:
        logged = list(lambda_log(clients.logs, group, {"StartTime": since}, about=tag))
        print(f"its invocations for v{version} since the approval:" if logged
              else f"it has not run for v{version} since the approval", file=sys.stderr)
        sys.stderr.writelines(logged)
    return 1


def _check_still_coming(sm: Any, package: dict[str, Any], current: dict[str, Any]) -> None:
    """WillNotServe once the endpoint (described as `current`) cannot come to `package` by its
    approval: the version is no longer Approved (its deploy skips it), or the endpoint is on, or
    heading to, another version of the group decided after this one was approved (this one's
    deploy gives way to it, or that one's replaces this one: steps/deploy.py, later_approval)."""
    from steps.deploy import decided_after, heading_to, last_change, package_of_config, pending_config

    ours = sm.describe_model_package(ModelPackageName=package["ModelPackageArn"])
    if ours["ModelApprovalStatus"] != "Approved":
        raise executions.WillNotServe(f"it is {ours['ModelApprovalStatus']} now")
    other_arn = package_of_config(heading_to(current) or "", ours["ModelPackageArn"])
    if other_arn is None or other_arn == ours["ModelPackageArn"]:
        return
    other = sm.describe_model_package(ModelPackageName=other_arn)
    if decided_after(other, last_change(ours)):
        where = "is on its way to" if pending_config(current) else "serves"
        raise executions.WillNotServe(
            f"it {where} v{other['ModelPackageVersion']}, {other['ModelApprovalStatus']} at "
            f"{last_change(other):%Y-%m-%d %H:%M:%S}, after this version was approved "
            f"({last_change(ours):%Y-%m-%d %H:%M:%S}): the later decision stands")


def shown_accuracy(value: float) -> str:
    """Three decimals, cut rather than rounded: as steps/evaluate.py writes it for the Fail message."""
    return str(Decimal(repr(value)).quantize(Decimal("0.001"), rounding=ROUND_DOWN))


def _accuracy(clients: Clients, package_arn: str) -> str:
    """The test accuracy recorded with a version, read from its ModelMetrics evaluation.json."""
    package = clients.sagemaker.describe_model_package(ModelPackageName=package_arn)
    uri = package.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
    try:
        report = json.loads(clients.storage.get_bytes(uri)) if uri else {}
        return shown_accuracy(float(report["binary_classification_metrics"]["accuracy"]["value"]))
    except (KeyError, ValueError, ClientError):
        return "  n/a"


def _package_arn(settings: Settings, sm: Any, given: str) -> str:
    if given.startswith("arn:"):
        return given
    version = given.lstrip("v")
    for page in sm.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=settings.model_package_group
    ):
        for package in page["ModelPackageSummaryList"]:
            if str(package.get("ModelPackageVersion")) == version:
                return str(package["ModelPackageArn"])
    raise UserError(f"no version {given} in model package group {settings.model_package_group}")


def cmd_endpoints(settings: Settings, args: argparse.Namespace) -> int:
    from steps.deploy import pending_config

    sm = Clients(settings).sagemaker
    pages = sm.get_paginator("list_endpoints").paginate(SortBy="CreationTime", SortOrder="Descending")
    endpoints = [endpoint for page in pages for endpoint in page["Endpoints"]]
    if not endpoints:
        say("no endpoints")
    for endpoint in endpoints:
        detail = sm.describe_endpoint(EndpointName=endpoint["EndpointName"])
        reason = detail.get("FailureReason", "")
        pending = pending_config(detail)  # during an update: where the endpoint goes next
        configs = detail.get("EndpointConfigName", "") + (f" -> {pending}" if pending else "")
        say(f"{endpoint['EndpointName']:<28} {endpoint['EndpointStatus']:<10} {configs}  {reason}".rstrip())
    return 0


def cmd_invoke(settings: Settings, args: argparse.Namespace) -> int:
    if args.text is None and sys.stdin.isatty():
        raise UserError('invoke needs a review: invoke "great value" (or a request body on stdin)')
    if args.text is not None and args.content_type not in (None, JSON):
        # the review would go as JSON labelled otherwise, and be read as something else
        raise UserError("--content-type is the type of a body on stdin; a review given as TEXT is sent "
                        f"as {JSON}")
    body = json.dumps({"review_text": args.text}) if args.text is not None else sys.stdin.read()
    name = args.endpoint or settings.endpoint_name
    try:
        response = Clients(settings).runtime.invoke_endpoint(
            EndpointName=name,
            ContentType=args.content_type or JSON,
            Accept="application/json",
            Body=body.encode("utf-8"),
        )
    except ClientError as error:
        if _endpoint_missing(error):
            raise UserError(f"no endpoint {name}: `make run-pipeline` deploys one, "
                            "`make endpoints` lists those there are") from None
        raise
    say(response["Body"].read().decode("utf-8").strip())
    return 0


def _endpoint_missing(error: ClientError) -> bool:
    """The runtime's answer for an endpoint that does not exist (a ValidationError, on AWS too)."""
    info = error.response.get("Error", {})
    return info.get("Code") == "ValidationError" and str(info.get("Message", "")).endswith("not found.")


def cmd_monitor(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "setup":
        return _monitor_setup(settings, args)
    if args.action == "history":
        return _monitor_history(settings, args)
    if args.action == "show":
        from pipelines.monitoring_run import show_monitor

        settings.require_aws()
        given = _checked_execution_arn(args.execution) if args.execution else None
        return show_monitor(Clients(settings), given, say).exit_code
    from pipelines.monitoring_run import run_monitor

    settings.require_aws()
    _check_window(args)
    overrides = executions.parse_overrides(args.param or [])
    for name, value in (("WindowStart", args.window_start), ("WindowEnd", args.window_end),
                        ("WindowHours", args.window_hours)):
        if value is not None:
            overrides[name] = value
    return run_monitor(Clients(settings), overrides, say, timeout=args.timeout).exit_code


def _monitor_history(settings: Settings, args: argparse.Namespace) -> int:
    """The latest monitoring runs' findings as a table, and their drift distances as a picture."""
    from pipelines.monitoring_history import checks, history_svg, table
    from pipelines.monitoring_run import REPORTS_DIR

    settings.require_aws()
    history = checks(Clients(settings), args.limit)
    say(table(history))
    out = Path(args.out) if args.out else REPORTS_DIR / "history.svg"  # beside the runs' reports
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(history_svg(history), encoding="utf-8")
    say(f"wrote {out}")
    return 0


def _check_window(args: argparse.Namespace) -> None:
    """What the check refuses in a window (steps/monitoring/check.py's window_from), refused here
    rather than by a run that fails at CheckDrift. That module is not imported: it needs the
    job's library folder."""
    if args.window_start is not None and args.window_hours is not None:
        raise UserError("give --window-start or --window-hours, not both (the check refuses both)")
    if args.window_start is not None and args.window_end is not None:
        from steps.monitoring.capture import iso, parse_time

        start, end = parse_time(args.window_start), parse_time(args.window_end)
        if start >= end:
            raise UserError(
                f"the window start {iso(start)} is not before its end {iso(end)} (the check refuses it)"
            )


def _monitor_setup(settings: Settings, args: argparse.Namespace) -> int:
    """The schedule that runs the monitoring pipeline; on AWS also the alarms and their topic."""
    from pipelines.monitoring_schedule import schedule_monitoring, setup_monitoring

    settings.require_aws()
    if not settings.schedule_role_arn:
        raise UserError("monitor setup needs the scheduler's role: set PIPELINE_SCHEDULE_ROLE_ARN "
                        "(the infra stack outputs it)")
    arguments = {
        "pipeline_name": settings.monitoring_pipeline_name,
        "endpoint_name": settings.endpoint_name,
        "schedule_role_arn": settings.schedule_role_arn,
        "schedule_expression": args.schedule,
        "window_hours": None if args.window_hours is None else float(args.window_hours),  # checked > 0
        "enabled": not args.disable,
    }
    clients = Clients(settings)
    try:
        if settings.is_local:
            created = schedule_monitoring(clients.scheduler, **arguments)
        else:
            import boto3

            created = setup_monitoring(boto3.Session(region_name=settings.region), **arguments)
    except ValueError as error:  # a cron() or at() schedule without --window-hours
        raise UserError(f"{error} (--window-hours)") from None
    say(json.dumps(created, indent=2, default=str))
    if args.disable:
        say("the schedule is paused: `monitor setup` without --disable resumes it")
    elif settings.is_local:
        pipeline = settings.monitoring_pipeline_name
        say(f"the local server starts {pipeline} on this schedule while it runs (`make local-up`); "
            "`monitor show` gives the latest run's findings, and the server's log says what each start "
            "answered. CloudWatch alarms and their SNS topic are AWS's only.")
        capture = settings.s3_uri("data-capture", settings.endpoint_name) + "/"
        if not clients.storage.has_objects(capture):
            say(f"note: endpoint {settings.endpoint_name} has captured no traffic yet (nothing under "
                f"{capture}): its runs fail at CheckDrift until it has (make invoke TEXT=...)")
    return 0


def cmd_local(settings: Settings, args: argparse.Namespace) -> int:
    from pipelines.local import daemon

    if args.action == "up":
        say(f"local SageMaker at {daemon.ensure_running(settings.state_path, settings.local_port)}")
    elif args.action == "env":
        environment = daemon.sdk_environment(settings.state_path, settings.local_port)
        say("unset AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        for key, value in environment.items():
            say(f"export {key}={shlex.quote(value)}")
    elif args.action == "down":
        return _local_down(settings)
    else:
        info = daemon.running_server(settings.state_path)
        pid = daemon.server_pid(settings.state_path)
        if info:
            stale = daemon.stale(info)
            note = " from other code than this checkout's (`local down` restarts it)" if stale else ""
            say(f"running at {info['url']} (pid {info['pid']}){note}")
            if not stale:  # an older server may have no scheduler to ask
                for line in _schedule_lines(Clients(settings).scheduler):
                    say(line)
        else:
            say(f"running (pid {pid}) but not answering HTTP" if pid else "not running")
        say(f"state: {settings.state_path}")
        say(f"jobs, model servers and Lambda environments: {_confinement()}")
    return 0


def _schedule_lines(scheduler: Any) -> list[str]:
    """What the server's scheduler will start while it runs, one line per schedule."""
    pages = scheduler.get_paginator("list_schedules").paginate()
    names = [summary["Name"] for page in pages for summary in page["Schedules"]]
    lines = []
    for name in names:
        schedule = scheduler.get_schedule(Name=name)
        zone = schedule.get("ScheduleExpressionTimezone")
        lines.append(f"schedule {name}: {schedule['ScheduleExpression']}" + (f" ({zone})" if zone else "")
                     + f", {schedule['State']}")
    return lines


def _confinement() -> str:
    """Whether this machine lets the local server confine what it runs (system/isolation.py)."""
    from pipelines.local.system.isolation import isolation_unavailable

    unavailable = isolation_unavailable()
    return f"unconfined: {unavailable}" if unavailable else "confined (user, mount and network namespaces)"


def _local_down(settings: Settings) -> int:
    """Exit 0 only if no server runs on the state directory afterwards."""
    from pipelines.local import daemon

    outcome, pid = daemon.stop(settings.state_path)
    if outcome is daemon.Stopped.NOT_RUNNING:
        say(f"not running (state: {settings.state_path})")
    elif outcome is daemon.Stopped.STOPPED:
        say(f"stopped (pid {pid})")
    elif outcome is daemon.Stopped.KILLED:
        print(f"error: the server (pid {pid}) did not stop on SIGTERM in time; killed it", file=sys.stderr)
        return 1
    else:
        print(f"error: the server (pid {pid}) is still running, even after SIGKILL", file=sys.stderr)
        return 1
    return 0


def _bounded(low: int, high: int) -> Callable[[str], int]:
    """An integer option checked by argparse, so a value the API would refuse is a usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sentiment-pipeline",
        description="Run the sentiment classifier's SageMaker pipeline, on AWS or locally.",
    )
    parser.add_argument("--target", choices=["local", "sagemaker"], help="default: local")
    parser.add_argument("--region", help="default: PIPELINE_REGION, pipeline.toml, or us-east-1")
    parser.add_argument("--bucket", help="S3 bucket for code, data and model artifacts")
    parser.add_argument("--role-arn", dest="role_arn", help="the execution role the pipeline runs as")
    parser.add_argument("--pipeline-name", dest="pipeline_name", help="default: sentiment-classifier")
    parser.add_argument("--state-dir", dest="state_dir", help="local target: where state lives")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Callable[[Settings, argparse.Namespace], int], help_: str) -> Any:
        command = sub.add_parser(name, help=help_)
        command.set_defaults(handler=handler)
        return command

    def on_either_pipeline(command: Any) -> Any:
        command.add_argument("--monitoring", action="store_true", help="the monitoring pipeline's "
                             "executions (default: the training pipeline's)")
        return command

    add("definition", cmd_definition, "print the pipeline definition JSON")
    graph = add("graph", cmd_graph, "draw the pipeline as SVG, coloured by an execution")
    graph.add_argument("--execution", help="an execution ARN, or 'latest'")
    on_either_pipeline(graph)
    graph.add_argument("--out", help="where to write the SVG (default: out/pipeline.svg, "
                       "out/monitoring-pipeline.svg with --monitoring)")
    upsert = add("upsert", cmd_upsert, "upload the code and create or update the pipeline")
    upsert.add_argument(
        "--skip-deploy-handler", action="store_true",
        help="leave the deploy Lambda's code as it is (publish-handler publishes it)",
    )
    add("publish-handler", cmd_publish_handler, "publish steps/deploy.py to the deploy Lambda")
    start = add("start", cmd_start, "start an execution")
    start.add_argument(
        "--input-data",
        help="where data was uploaded (default: the data prefix; its latest upload runs), "
        "or any S3 URI of a folder with train.csv and test.csv",
    )
    start.add_argument("--param", action="append", metavar="NAME=VALUE", help="parameter override")
    start.add_argument(
        "--wait", action="store_true", help="follow the run; exit 1 unless it succeeds"
    )
    start.add_argument("--timeout", type=_seconds, default=3600.0, help="seconds to wait at most")
    start.add_argument("--from-execution", metavar="ARN",
                       help="selective run: reuse this execution's results for the steps not given")
    start.add_argument("--steps", nargs="+", metavar="STEP", help="selective run: the steps to run")
    start.add_argument("--max-parallel", type=int, metavar="N",
                       help="run at most N steps at a time (ParallelismConfiguration)")
    run = add("run", cmd_run, "upload a data folder, upsert and start a run, following it "
              "(what make run-pipeline runs)")
    run.add_argument("folder", nargs="?", default=str(DEFAULT_DATA_DIR),
                     help="a folder with train.csv and test.csv (default: data/)")
    run.add_argument("--param", action="append", metavar="NAME=VALUE", help="parameter override")
    run.add_argument("--timeout", type=_seconds, default=3600.0, help="seconds to wait at most")
    retry = on_either_pipeline(add("retry", cmd_retry, "run a Failed or Stopped execution again from "
                                   "the steps that did not succeed (default: the latest)"))
    retry.add_argument("execution", nargs="?", help="an execution ARN (default: the latest)")
    retry.add_argument("--wait", action="store_true", help="follow the run; exit 1 unless it succeeds")
    retry.add_argument("--timeout", type=_seconds, default=3600.0, help="seconds to wait at most")
    stop = on_either_pipeline(add("stop", cmd_stop, "stop an Executing execution (default: the latest)"))
    stop.add_argument("execution", nargs="?", help="an execution ARN (default: the latest)")
    stop.add_argument("--wait", action="store_true", help="wait until it has stopped; exit 1 unless "
                      "it ends Stopped")
    stop.add_argument("--timeout", type=_seconds, default=3600.0, help="seconds to wait at most")
    status = on_either_pipeline(add("status", cmd_status, "an execution's steps (default: the latest)"))
    status.add_argument("execution", nargs="?", help="an execution ARN (default: the latest)")
    listing = on_either_pipeline(add("executions", cmd_executions, "list executions"))
    listing.add_argument("--limit", type=_bounded(1, 100), default=20, help="1 to 100 (default 20)")
    logs = on_either_pipeline(
        add("logs", cmd_logs, "a step's job or Lambda log (CloudWatch Logs), and what the step did")
    )
    logs.add_argument("step", help="a step's name, as the step table shows it (Train, DeployEndpoint...)")
    logs.add_argument("--execution", help="an execution ARN (default: the latest)")
    data = add("data", cmd_data_upload, "upload a folder with train.csv and test.csv")
    data.add_argument("action", choices=["upload"])
    data.add_argument("folder", nargs="?", default=str(DEFAULT_DATA_DIR),
                      help="a folder with train.csv and test.csv (default: data/)")
    data.add_argument("--to", help="destination S3 URI (default: the project's data prefix); "
                      "the data lands under <URI>/<sha256[:16]>/")
    models = add("models", cmd_models, "list, approve, reject or roll back to model versions")
    model_actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    model_actions.add_parser("list", help="the versions, newest first, and what the endpoint serves")
    for action, help_ in (("approve", "approve a version: the deploy function rolls it out"),
                          ("reject", "reject a version"),
                          ("rollback", "deploy an earlier Approved version again")):
        changed = model_actions.add_parser(action, help=help_)
        changed.add_argument("package", help="model package ARN or version number")
        if action != "reject":
            changed.add_argument("--wait", action="store_true", help="wait until the endpoint serves "
                                 "the version; exit 1 unless it does")
            changed.add_argument("--timeout", type=_seconds, default=1800.0, help="seconds to wait at most")
    add("endpoints", cmd_endpoints, "list endpoints")
    invoke = add("invoke", cmd_invoke, "send a review to the endpoint (or a body on stdin)")
    invoke.add_argument("text", nargs="?", help="the review to classify (none: the request body on stdin)")
    invoke.add_argument("--endpoint", help="default: the project's endpoint")
    invoke.add_argument("--content-type",
                        help="of a body on stdin: application/json (default), application/jsonlines, "
                        "text/csv")
    monitor = add("monitor", cmd_monitor, "check captured traffic for drift, now or on a schedule")
    monitor_actions = monitor.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = monitor_actions.add_parser("run", help="run the monitoring pipeline once on a window of "
                                       "captured traffic and show its findings")
    check.add_argument("--window-start", type=_iso_time, help="ISO 8601 (default: all captured data)")
    check.add_argument("--window-end", type=_iso_time, help="ISO 8601, exclusive")
    check.add_argument("--window-hours", type=_hours, help="window length back from --window-end")
    check.add_argument("--param", action="append", metavar="NAME=VALUE", help="parameter override")
    check.add_argument("--timeout", type=_seconds, default=1800.0, help="seconds to wait at most")
    setup = monitor_actions.add_parser("setup", help="run the monitoring pipeline on a schedule "
                                       "(on AWS also the drift alarms and their topic)")
    setup.add_argument("--schedule", default="rate(1 hour)",
                       help="schedule expression: rate(), cron() or at() (default: rate(1 hour))")
    setup.add_argument("--window-hours", type=_hours,
                       help="hours each run checks (needed for cron() and at(); default: a rate's interval)")
    setup.add_argument("--disable", action="store_true",
                       help="keep the schedule but pause it (setup without it resumes)")
    show = monitor_actions.add_parser("show", help="a monitoring run's findings and report")
    show.add_argument("--execution", metavar="ARN", help="the monitoring run to show (default: the latest)")
    history = monitor_actions.add_parser("history", help="the latest monitoring runs' drift, as a "
                                         "table and an SVG picture")
    history.add_argument("--limit", type=_bounded(1, 100), default=20,
                         help="how many of the latest runs (default 20)")
    history.add_argument("--out", help="the picture's path (default out/monitoring/history.svg)")
    local = add("local", cmd_local, "start, stop or inspect the local SageMaker server")
    local.add_argument(
        "action", choices=["up", "down", "status", "env"],
        help="env: print shell exports with which AWS SDKs and the AWS CLI reach the local server",
    )
    return parser


def _explain(error: Exception, settings: Settings | None = None) -> str:
    if isinstance(error, NoCredentialsError):
        return (
            "no AWS credentials: configure them (aws configure, AWS_PROFILE or SSO), "
            "or use the local target (--target local)"
        )
    if isinstance(error, NoRegionError):
        return "no AWS region: set PIPELINE_REGION or AWS_REGION"
    if isinstance(error, EndpointConnectionError):
        return _unreachable(str(error.kwargs.get("endpoint_url", "the endpoint")), settings)
    if isinstance(error, ClientError) and "OriginalStatusCode" in error.response:
        return _model_error(error.response)
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        message = f"{info.get('Code', 'Error')}: {info.get('Message', error)}"
        if not _MISSING_PIPELINE.search(message):
            return message
        target = "" if settings is None or settings.is_local else " TARGET=sagemaker"
        return (f"{message} (`make upsert-pipeline{target}` creates the project's pipelines, the "
                f"monitoring one with them; `make run-pipeline{target}` also runs the training one)")
    return str(error)


# How SageMaker says a pipeline is not there: before the first upsert, every command that reads
# one (status, executions, logs, monitor show and history) met it with nothing more to go on.
_MISSING_PIPELINE = re.compile(r"^ResourceNotFound: Pipeline .* does not exist")


def _file_problem(error: OSError) -> str:
    """`path: reason`, as other command line tools say it, for an error about one path."""
    if error.filename is None or error.strerror is None:
        return str(error)
    return f"{error.filename}: {error.strerror}"


def _unreachable(url: str, settings: Settings | None) -> str:
    """On the local target the one thing at that URL is the server this command found or started:
    it went away (killed, or the machine ran short of memory), which no network check explains."""
    if settings is None or not settings.is_local:
        return f"cannot reach {url}: check the network"
    return (
        f"the local SageMaker server stopped answering at {url} (its log: "
        f"{StateLayout(settings.state_path).server_log}); run the command again to start a new "
        "one on the same state (an execution the old one was running ended Stopped or Failed: "
        "`python -m pipelines retry --wait` resumes it)"
    )


def _model_error(response: dict[str, Any]) -> str:
    """InvokeEndpoint's ModelError: what the model itself answered (its `error` when that is JSON)."""
    message = str(response.get("OriginalMessage", ""))
    try:
        answer = json.loads(message)
    except ValueError:
        answer = None
    detail = answer["error"] if isinstance(answer, dict) and "error" in answer else message
    return f"the model refused the request ({response['OriginalStatusCode']}): {detail}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    flags = {
        k: getattr(args, k)
        for k in ("target", "region", "bucket", "role_arn", "pipeline_name", "state_dir")
    }
    settings = None
    try:
        settings = load_settings(flags)
        status = int(args.handler(settings, args))
        sys.stdout.flush()  # here, so that a reader gone away is met below, not at exit
        return status
    except (
        UserError,
        SettingsError,
        ClientError,
        NoCredentialsError,
        NoRegionError,
        EndpointConnectionError,
        ParamValidationError,
        ValueError,
        ServerNotStarted,
        FunctionChangeFailed,
    ) as error:
        print(f"error: {_explain(error, settings)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`models list | head`): stop quietly, as other shell tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as error:  # a local file or folder the command reads or writes
        print(f"error: {_file_problem(error)}", file=sys.stderr)
        return 2

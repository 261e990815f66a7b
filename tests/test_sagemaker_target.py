"""The CLI against the SageMaker target, with AWS played by moto: upsert, data upload, start."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from pipelines import REPO_ROOT, cli
from pipelines.code_bundle import CodeBundle

BUCKET = "sentiment-test-bucket"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"
REGION = "us-east-1"


def run(*args: str) -> int:
    return cli.main(["--target", "sagemaker", *args])


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION, "PIPELINE_BUCKET": BUCKET, "PIPELINE_ROLE_ARN": ROLE,
        "PIPELINE_CONFIG": "",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        iam = boto3.client("iam", region_name=REGION)
        role = iam.create_role(RoleName="deploy", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        placeholder = io.BytesIO()
        with zipfile.ZipFile(placeholder, "w") as archive:
            archive.writestr("deploy.py", "def handler(event, context):\n    raise RuntimeError\n")
        boto3.client("lambda", region_name=REGION).create_function(
            FunctionName="sentiment-classifier-deploy", Runtime="python3.12", Role=role,
            Handler="deploy.handler", Code={"ZipFile": placeholder.getvalue()},
        )
        yield


def test_upsert_uploads_code_publishes_handler_and_creates_then_updates(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("upsert") == 0
    assert "created pipeline" in capsys.readouterr().out
    sm = boto3.client("sagemaker", region_name=REGION)
    stored = json.loads(sm.describe_pipeline(PipelineName="sentiment-classifier")
                        ["PipelineDefinition"])
    assert stored["Parameters"][0] == {"Name": "InputDataUri", "Type": "String"}  # a run names its data
    bundle = CodeBundle()
    s3 = boto3.client("s3", region_name=REGION)
    for name, data in bundle.artifacts.items():
        body = s3.get_object(Bucket=BUCKET, Key=bundle.key("sentiment-classifier", name))["Body"]
        assert body.read() == data
    published = boto3.client("lambda", region_name=REGION).get_function(
        FunctionName="sentiment-classifier-deploy")["Configuration"]["CodeSha256"]
    expected = base64.b64encode(hashlib.sha256(bundle.artifacts["deploy.zip"]).digest()).decode()
    assert published == expected
    assert run("upsert") == 0
    second = capsys.readouterr().out
    assert "0 artifact(s) uploaded" in second and "updated pipeline" in second


def test_upsert_builds_the_definitions_once_code_and_handler_are_published(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handler's environment initialises while the SDK builds the definitions, not beside
    the run's first steps: so the build comes after the publishing."""
    import pipelines.definition_cache as definition_cache

    bundle = CodeBundle()
    expected = base64.b64encode(hashlib.sha256(bundle.artifacts["deploy.zip"]).digest()).decode()
    seen: dict[str, object] = {}
    build = definition_cache.definitions

    def observing(*args: object, **kwargs: object) -> definition_cache.Definitions:
        seen["handler"] = published_code_sha()
        s3 = boto3.client("s3", region_name=REGION)
        seen["code"] = s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0)
        return build(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(definition_cache, "definitions", observing)
    assert run("upsert") == 0
    assert seen == {"handler": expected, "code": len(bundle.artifacts)}


def published_code_sha() -> str:
    return str(boto3.client("lambda", region_name=REGION).get_function(
        FunctionName="sentiment-classifier-deploy")["Configuration"]["CodeSha256"])


def test_upsert_can_leave_the_handler_for_publish_handler(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The pipeline workflow's role may not change the Lambda's code; the approval one publishes it."""
    placeholder = published_code_sha()
    assert run("upsert", "--skip-deploy-handler") == 0
    out = capsys.readouterr().out
    assert "created pipeline" in out and "left as it is" in out
    assert published_code_sha() == placeholder
    assert run("publish-handler") == 0
    code = CodeBundle().artifacts["deploy.zip"]
    assert published_code_sha() == base64.b64encode(hashlib.sha256(code).digest()).decode()
    assert "published steps/deploy.py" in capsys.readouterr().out


def test_on_aws_the_stack_owns_the_bucket_and_the_cli_creates_none(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.delete_bucket(Bucket=BUCKET)
    assert run("data", "upload", str(REPO_ROOT / "data")) != 0
    assert run("upsert") != 0
    assert capsys.readouterr().err.count("NoSuchBucket") == 2
    assert s3.list_buckets()["Buckets"] == []


def test_data_lands_under_its_content_address_and_start_runs_on_it(
    aws: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run("upsert") == 0
    assert run("data", "upload", str(REPO_ROOT / "data")) == 0
    assert run("data", "upload", str(REPO_ROOT / "data")) == 0  # identical: nothing new stored
    s3 = boto3.client("s3", region_name=REGION)
    data = "sentiment-classifier/data"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{data}/")["Contents"]]
    (address,) = {key.split("/")[2] for key in keys if key.endswith("/train.csv")}
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix=f"{data}/{address}/train.csv")
    assert len(versions["Versions"]) == 1
    printed = capsys.readouterr().out
    assert versions["Versions"][0]["VersionId"] in printed and "nothing uploaded" in printed

    (tmp_path / "train.csv").write_bytes((REPO_ROOT / "data" / "train.csv").read_bytes() + b"fine,1\n")
    (tmp_path / "test.csv").write_bytes((REPO_ROOT / "data" / "test.csv").read_bytes())
    assert run("data", "upload", str(tmp_path)) == 0
    assert run("start") == 0
    arn = capsys.readouterr().out.split("started ", 1)[1].split()[0]
    sm = boto3.client("sagemaker", region_name=REGION)
    parameters = {p["Name"]: p["Value"] for p in
                  sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]}
    uri = parameters["InputDataUri"]
    assert uri.startswith(f"s3://{BUCKET}/sentiment-classifier/data/") and address not in uri
    assert uri.endswith(parameters["InputDataSha256"][:16])
    stored = s3.get_object(Bucket=BUCKET, Key=uri.split("/", 3)[3] + "/train.csv")["Body"].read()
    assert stored.endswith(b"fine,1\n")


def test_start_with_overrides_and_status(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("upsert") == 0
    assert run("start", "--input-data", f"s3://{BUCKET}/other", "--param",
               "AccuracyThreshold=0.9") == 0
    arn = capsys.readouterr().out.split("started ", 1)[1].split()[0]
    sm = boto3.client("sagemaker", region_name=REGION)
    execution = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
    assert execution["PipelineExecutionStatus"] in ("Executing", "Succeeded")
    listed = sm.list_pipeline_executions(PipelineName="sentiment-classifier")
    assert [e["PipelineExecutionArn"] for e in listed["PipelineExecutionSummaries"]] == [arn]


def test_bad_param_syntax_is_one_line(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("start", "--param", "NoEqualsSign") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --param takes Name=Value") and "Traceback" not in err


def test_missing_credentials_and_settings_are_explained(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PIPELINE_CONFIG", "")
    monkeypatch.delenv("PIPELINE_BUCKET", raising=False)
    monkeypatch.delenv("PIPELINE_ROLE_ARN", raising=False)
    assert run("upsert") == 2
    assert "PIPELINE_BUCKET" in capsys.readouterr().err
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert cli.main(["--target", "sagemaker", "--bucket", "b", "--role-arn", ROLE,
                     "executions"]) == 2
    err = capsys.readouterr().err
    assert "no AWS credentials" in err and "Traceback" not in err

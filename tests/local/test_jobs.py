"""Processing and Training jobs run as real local processes against the container contract."""

from __future__ import annotations

import inspect
import io
import itertools
import json
import os
import re
import socket
import tarfile
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from buckets import with_buckets
from processes import pid_alive, processes_with
from tarballs import tar_gz
from waiting import wait_until

from pipelines import REPO_ROOT
from pipelines.local.jobs import folder_sync, processing
from pipelines.local.jobs.image_python import ENVIRONMENTS, image_python
from pipelines.local.jobs.images import local_sklearn_release
from pipelines.local.jobs.instances import RUNS_ON
from pipelines.local.jobs.outcome import JobResult, training_failure
from pipelines.local.jobs.processing import run_processing_job
from pipelines.local.jobs.stopping import JobStop
from pipelines.local.jobs.toolkit import to_cmd_args
from pipelines.local.jobs.training import (
    DESCRIBED_CHANNEL,
    DESCRIBED_FLAGS,
    described_request,
    run_training_job,
)
from pipelines.local.layout import StateLayout
from pipelines.local.storage.objects import ObjectStore
from pipelines.local.system import cpus
from pipelines.local.system.instance_types import INSTANCES, Instance
from pipelines.local.system.isolation import Confinement, isolation_unavailable, shows_opt_ml
from pipelines.local.system.supervision import ProcessExit

BUCKET = "s3://my-bucket/p"
CODE_DIR = "/opt/ml/processing/input/code"
LOCAL_IMAGE = (  # the scikit-learn image whose release is installed here
    f"683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:{local_sklearn_release()}-1-cpu-py3"
)


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return with_buckets(ObjectStore(tmp_path / "store"), "my-bucket")


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    return tmp_path / "jobs"


def _script(source: str) -> bytes:
    return textwrap.dedent(source).encode()


# ----------------------------------------------------------------------------- processing


def _processing_request(
    store: ObjectStore, script: bytes, *, arguments: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    """A request shaped like tests/local/data/sdk-definition.json's Preprocess step, resolved."""
    store.put_bytes(f"{BUCKET}/code/abc/step.py", script)
    request: dict[str, Any] = {
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceType": "ml.m5.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 30,
            }
        },
        "AppSpecification": {
            "ImageUri": LOCAL_IMAGE,
            "ContainerEntrypoint": ["python3", f"{CODE_DIR}/step.py"],
        },
        "RoleArn": "arn:aws:iam::123456789012:role/sm",
        "ProcessingInputs": [
            {
                "InputName": "raw",
                "S3Input": {
                    "S3Uri": f"{BUCKET}/data",
                    "LocalPath": "/opt/ml/processing/input/data",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            },
            {
                "InputName": "code",
                "S3Input": {
                    "S3Uri": f"{BUCKET}/code/abc/step.py",
                    "LocalPath": CODE_DIR,
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            },
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "train",
                    "S3Output": {
                        "S3Uri": f"{BUCKET}/runs/x/train",
                        "LocalPath": "/opt/ml/processing/train",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        **extra,
    }
    if arguments:
        request["AppSpecification"]["ContainerArguments"] = arguments
    return request


CLEAN_SCRIPT = _script(
    """
    import os, sys, tempfile
    from pathlib import Path

    base = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
    job_dir = base.parent.parent
    assert base.parts[-2:] == ("opt", "ml"), base
    assert sys.argv[1:] == ["--base", str(base)], sys.argv
    assert os.environ["WHERE"] == f"{base}/processing/train", os.environ["WHERE"]
    assert not [k for k in os.environ if k.startswith("SM_")], "processing gets no SM_* variables"
    for value in [*sys.argv, *os.environ.values()]:
        assert "/opt/ml" not in value.replace(str(base), ""), value
    assert Path.cwd().is_relative_to(job_dir), Path.cwd()
    assert Path(tempfile.gettempdir()).is_relative_to(job_dir), tempfile.gettempdir()
    assert not Path(__file__).is_symlink()
    rows = (base / "processing/input/data/train.csv").read_text().splitlines()
    out = base / "processing/train"
    (out / "nested").mkdir()
    (out / "train.csv").write_text("\\n".join(r.upper() for r in rows) + "\\n")
    (out / "nested/count.txt").write_text(str(len(rows)))
    print(f"processed {len(rows)} rows")
    """
)


REACH_SCRIPT = _script(
    """
    import os, socket, sys
    from pathlib import Path

    out = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")) / "processing/train"
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5).close()
        (out / "reach.txt").write_text("connected")
    except OSError as error:
        (out / "reach.txt").write_text(f"no network: {error}")
    """
)


PEEK_SCRIPT = _script(
    """
    import json, os, sys
    from pathlib import Path

    secret, code = Path(sys.argv[1]), Path(sys.argv[2])
    seen = {}
    try:
        seen["secret"] = secret.read_text()
    except OSError as error:
        seen["secret"] = type(error).__name__
    try:
        (code / "rewritten.py").write_text("x")
        seen["code"] = "written"
    except OSError as error:
        seen["code"] = type(error).__name__
    out = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")) / "processing/train"
    (out / "seen.json").write_text(json.dumps(seen))
    """
)


def test_a_confined_job_cannot_read_the_state_or_change_the_code(
    store: ObjectStore, tmp_path: Path
) -> None:
    state, code = tmp_path / "state", tmp_path / "code"
    code.mkdir()
    state.mkdir()
    (state / "credentials.json").write_text("the server's keys")
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    request = _processing_request(
        store, PEEK_SCRIPT, arguments=[str(state / "credentials.json"), str(code)]
    )
    confinement = Confinement(read_only=(code, REPO_ROOT), hidden=(state,))  # REPO_ROOT: the interpreter
    outcome = run_processing_job(
        "peek-1", request, store, state / "jobs", io.StringIO(), confinement=confinement
    )
    assert outcome.status == "Succeeded", outcome.failure_reason
    seen = json.loads(store.get_bytes(f"{BUCKET}/runs/x/train/seen.json"))
    if isolation_unavailable():  # no namespaces on this kernel: the job runs as before, unconfined
        assert seen == {"secret": "the server's keys", "code": "written"}
        return
    assert seen == {"secret": "FileNotFoundError", "code": "OSError"}  # hidden; a read-only file system
    assert not (code / "rewritten.py").exists()
    assert (state / "credentials.json").read_text() == "the server's keys"


TMP_SCRIPT = _script(
    """
    import os, sys
    from pathlib import Path

    mark = Path(sys.argv[1]) / sys.argv[2]
    found = mark.read_text() if mark.exists() else "nothing"
    mark.write_text(sys.argv[3])
    out = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")) / "processing/train"
    (out / "found.txt").write_text(found)
    """
)


@pytest.mark.parametrize(("folder", "own"), [("/tmp", "tmp"), ("/var/tmp", "var-tmp")])
def test_a_jobs_tmp_is_its_own_not_the_machines_nor_another_jobs(
    store: ObjectStore, tmp_path: Path, folder: str, own: str
) -> None:
    """/tmp is shared by every process of the machine, /var/tmp outlives it; a container has both
    of its own."""
    if isolation_unavailable():
        pytest.skip(f"this kernel does not let users create namespaces: a job writes the machine's {folder}")
    name = f"mark-{uuid.uuid4().hex}"
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    layout = StateLayout(tmp_path / "state")
    found = []
    try:
        for job in ("first-1", "second-1"):
            request = _processing_request(store, TMP_SCRIPT, arguments=[folder, name, job])
            outcome = run_processing_job(
                job, request, store, layout.jobs, io.StringIO(), confinement=layout.confinement()
            )
            assert outcome.status == "Succeeded", outcome.failure_reason
            found.append(store.get_bytes(f"{BUCKET}/runs/x/train/found.txt").decode())
            assert (layout.jobs / job / own / name).read_text() == job  # its own folder, on disk
    finally:
        leaked = (Path(folder) / name).exists()
        (Path(folder) / name).unlink(missing_ok=True)
    assert not leaked
    assert found == ["nothing", "nothing"]


def test_a_jobs_shared_memory_is_its_own_not_the_machines_nor_another_jobs(
    store: ObjectStore, tmp_path: Path
) -> None:
    """/dev/shm holds every process's shared memory; a container has one of its own (a tmpfs, gone
    with the job)."""
    if isolation_unavailable():
        pytest.skip("this kernel does not let users create namespaces: a job shares the machine's /dev/shm")
    mark = Path("/dev/shm") / f"mark-{uuid.uuid4().hex}"
    mark.write_text("the machine's")
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    layout = StateLayout(tmp_path / "state")
    found = []
    try:
        for job in ("first-1", "second-1"):
            request = _processing_request(store, TMP_SCRIPT, arguments=["/dev/shm", mark.name, job])
            outcome = run_processing_job(
                job, request, store, layout.jobs, io.StringIO(), confinement=layout.confinement()
            )
            assert outcome.status == "Succeeded", outcome.failure_reason
            found.append(store.get_bytes(f"{BUCKET}/runs/x/train/found.txt").decode())
        machines = mark.read_text()
    finally:
        mark.unlink()
    assert found == ["nothing", "nothing"]  # neither the machine's mark nor the first job's
    assert machines == "the machine's"


def _imports_script(names: tuple[str, ...], out: str) -> bytes:
    """A script that tries to import each of `names` and writes what happened to imports.json in
    `out`, under the job's base dir."""
    return _script(
        f"""
        import importlib, json, os
        from pathlib import Path

        found = {{}}
        for name in {names!r}:
            try:
                importlib.import_module(name)
                found[name] = "imported"
            except ImportError as error:
                found[name] = type(error).__name__
        base = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
        (base / {out!r} / "imports.json").write_text(json.dumps(found))
        """
    )


# In the scikit-learn image: its frameworks, boto3, paramiko (the training toolkit's), and protobuf
# inside the google/ namespace folder. Not in it: the project, what runs the local target, and
# google-auth, which shares that namespace folder.
IN_THE_IMAGE = ("sklearn", "pandas", "scipy", "boto3", "paramiko", "google.protobuf")
NOT_IN_THE_IMAGE = (
    "pipelines", "steps", "sagemaker", "moto", "pytest", "rich", "google.auth", "vaderSentiment", "requests",
    "pytz",
)


def test_a_processing_job_imports_the_images_packages_and_nothing_else(
    store: ObjectStore, tmp_path: Path
) -> None:
    """A step that imports the SageMaker SDK, moto or `steps.scorer` fails in the SageMaker image:
    here too, confined or not (the job's own environment, image_python.py)."""
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    layout = StateLayout(tmp_path / "state")
    request = _processing_request(store, _imports_script(IN_THE_IMAGE + NOT_IN_THE_IMAGE, "processing/train"))
    for number, confinement in enumerate((layout.confinement(), None), start=1):
        outcome = run_processing_job(
            f"imports-{number}", request, store, layout.jobs, io.StringIO(), confinement=confinement
        )
        assert outcome.status == "Succeeded", outcome.failure_reason
        found = json.loads(store.get_bytes(f"{BUCKET}/runs/x/train/imports.json"))
        store.delete(f"{BUCKET}/runs/x/train/imports.json")
        assert found == {
            **dict.fromkeys(IN_THE_IMAGE, "imported"),
            **dict.fromkeys(NOT_IN_THE_IMAGE, "ModuleNotFoundError"),
        }


def test_a_training_job_imports_what_its_requirements_file_names_with_what_that_requires(
    store: ObjectStore, work_dir: Path
) -> None:
    """The training toolkit pip-installs requirements.txt: vaderSentiment, and requests, which it
    requires; pandas with its `timezone` extra, which brings pytz; nothing more."""
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"x\n")
    script = _imports_script(("vaderSentiment", "requests", "pytz", "moto"), "model")
    request = _training_request(store, script, requirements="vaderSentiment\npandas[timezone]\n")

    outcome = run_training_job("imports-3", request, store, work_dir, io.StringIO())

    assert outcome.status == "Succeeded", outcome.failure_reason
    found = json.loads((work_dir / "imports-3" / "opt" / "ml" / "model" / "imports.json").read_text())
    assert found == {
        "vaderSentiment": "imported", "requests": "imported", "pytz": "imported",
        "moto": "ModuleNotFoundError",
    }


@pytest.mark.parametrize("isolated", [False, True])
def test_a_network_isolated_job_reaches_nothing(store: ObjectStore, work_dir: Path, isolated: bool) -> None:
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    with socket.socket() as listener:  # a server on this machine, as S3 or a package index would be
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        request = _processing_request(store, REACH_SCRIPT, arguments=[str(port)],
                                      NetworkConfig={"EnableNetworkIsolation": isolated})
        outcome = run_processing_job("reach-1", request, store, work_dir, io.StringIO())
    reason = isolation_unavailable()
    if isolated and reason:  # a kernel without user namespaces: refused, never run with the network
        assert outcome.status == "Failed" and reason in outcome.failure_reason
        return
    assert outcome.status == "Succeeded", outcome.failure_reason
    reached = store.get_bytes(f"{BUCKET}/runs/x/train/reach.txt").decode()
    assert reached.startswith("no network") if isolated else reached == "connected", reached


def test_processing_job_stages_runs_and_uploads(
    store: ObjectStore, work_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("SM_LEAKED", "from the server")
    store.put_bytes(f"{BUCKET}/data/train.csv", b"review_text,sentiment\ngood,1\n")
    request = _processing_request(
        store,
        CLEAN_SCRIPT,
        arguments=["--base", "/opt/ml"],
        Environment={"WHERE": "/opt/ml/processing/train"},
    )
    before = {p for p in tmp_path.rglob("*") if not p.is_relative_to(work_dir)}
    log = io.StringIO()

    running: list[dict[str, Any]] = []
    outcome = run_processing_job("pre-1", request, store, work_dir, log, progress=running.append)

    assert outcome.failure_reason == ""
    assert outcome.status == "Succeeded"
    assert store.get_bytes(f"{BUCKET}/runs/x/train/train.csv") == b"REVIEW_TEXT,SENTIMENT\nGOOD,1\n"
    assert store.get_bytes(f"{BUCKET}/runs/x/train/nested/count.txt") == b"2"
    arn = "arn:aws:sagemaker:eu-west-1:000000000000:processing-job/pre-1"
    assert outcome.metadata == {"ProcessingJob": {"Arn": arn}}
    props = outcome.properties
    assert props["ProcessingJobName"] == "pre-1"
    assert props["ProcessingJobArn"] == arn
    assert props["ProcessingJobStatus"] == "Completed"
    # Each input and output as live descriptions show them: AppManaged False where the request left
    # it out (it did), the rest as given.
    assert "AppManaged" not in str(request)
    assert props["ProcessingOutputConfig"] == {
        "Outputs": [{**item, "AppManaged": False} for item in request["ProcessingOutputConfig"]["Outputs"]]}
    inputs = request["ProcessingInputs"]
    assert props["ProcessingInputs"] == [{**item, "AppManaged": False} for item in inputs]
    assert props["AppSpecification"] == request["AppSpecification"]
    assert props["Environment"] == {"WHERE": "/opt/ml/processing/train"}
    assert "StoppingCondition" not in request  # held to SageMaker's one day, and described so
    assert props["StoppingCondition"] == {"MaxRuntimeInSeconds": 86_400}
    assert props["ProcessingStartTime"] <= props["ProcessingEndTime"]
    (started,) = running  # as the job started: InProgress, no end yet
    assert {k: v for k, v in props.items() if k not in started} == {
        "ProcessingEndTime": props["ProcessingEndTime"], "ExitMessage": "", "FailureReason": ""
    }
    assert started["ProcessingJobStatus"] == "InProgress" and started["ProcessingJobArn"] == arn
    assert "processed 2 rows" in (work_dir / "pre-1" / "logs.txt").read_text()
    base = work_dir / "pre-1" / "opt" / "ml"
    job_config = json.loads((base / "config" / "processingjobconfig.json").read_text())
    assert (job_config.pop("ProcessingJobArn"), job_config.pop("ProcessingJobName")) == (arn, "pre-1")
    rebased = json.loads(json.dumps(request).replace('"/opt/ml', f'"{base}'))  # as every other path
    assert job_config == {**rebased, "StoppingCondition": props["StoppingCondition"]}
    assert job_config["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["LocalPath"] == str(
        base / "processing" / "train"
    )
    assert json.loads((base / "config" / "resourceconfig.json").read_text()) == {
        "current_host": "algo-1",
        "hosts": ["algo-1"],
    }
    assert "processed 2 rows" in log.getvalue()
    created = {p for p in tmp_path.rglob("*") if not p.is_relative_to(work_dir)} - before
    assert all(p.is_relative_to(store.root) for p in created)
    assert {p.name for p in created if p.is_file() and ".versions" not in p.parts} == {
        "train.csv",
        "count.txt",
    }


# Writes what the job's process sees of its environment to its output.
ENVIRONMENT_SCRIPT = _script(
    """
    import json, os, shutil, sys, time
    from pathlib import Path

    out = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")) / "processing/train"
    out.mkdir(parents=True, exist_ok=True)
    seen = {
        "environment": dict(os.environ),
        "python on PATH": shutil.which("python"),
        "optimized": not __debug__,
        "home entries": os.listdir(os.environ["HOME"]),
        "utc offset": time.localtime().tm_gmtoff,
    }
    (out / "seen.json").write_text(json.dumps(seen))
    """
)


def test_a_job_starts_with_the_image_environment_not_the_servers(
    store: ObjectStore, work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "PYTHONOPTIMIZE": "1",
        "PYTHONPATH": "/somewhere/else",
        "GITHUB_TOKEN": "not for steps",
        "AWS_SECRET_ACCESS_KEY": "not for steps",
        "TZ": "Asia/Tokyo",
        "LC_ALL": "de_DE.ISO-8859-1",
    }.items():
        monkeypatch.setenv(name, value)
    store.put_bytes(f"{BUCKET}/data/train.csv", b"review_text,sentiment\ngood,1\n")
    request = _processing_request(store, ENVIRONMENT_SCRIPT, Environment={"WHERE": "/opt/ml/x"})

    outcome = run_processing_job("env-1", request, store, work_dir, io.StringIO())

    assert outcome.failure_reason == ""
    seen = json.loads(store.get_bytes(f"{BUCKET}/runs/x/train/seen.json"))
    environment = seen["environment"]
    job_root = work_dir / "env-1"
    assert set(environment) - {"PATH", "LD_LIBRARY_PATH"} == {
        "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONIOENCODING", "LANG", "LC_ALL", "TZ",
        "HOME", "TMPDIR", "SAGEMAKER_BASE_DIR", "WHERE",
    }
    assert environment["PYTHONDONTWRITEBYTECODE"] == environment["PYTHONUNBUFFERED"] == "1"
    assert (environment["LANG"], environment["LC_ALL"]) == ("C.UTF-8", "C.UTF-8")
    assert (environment["PYTHONIOENCODING"], environment["TZ"]) == ("UTF-8", "UTC")
    assert (environment["HOME"], environment["TMPDIR"]) == (str(job_root / "home"), str(job_root / "tmp"))
    assert environment["SAGEMAKER_BASE_DIR"] == str(job_root / "opt" / "ml")
    assert environment["WHERE"] == str(job_root / "opt" / "ml" / "x")
    assert Path(seen["python on PATH"]).parent == image_python(work_dir / ENVIRONMENTS).bin  # the image's
    assert seen["optimized"] is False
    assert seen["home entries"] == []
    assert seen["utc offset"] == 0


def test_a_failed_processing_jobs_message_is_its_exit_message_and_its_reason_sagemakers(
    store: ObjectStore, work_dir: Path
) -> None:
    """SageMaker's reason for a failed processing job is one sentence; what the container wrote to
    /opt/ml/output/message is the ExitMessage (aws/sagemaker-spark-container's integration test)."""
    message = "train.csv, row 3: sentiment must be 0 or 1. " + "x" * 2000
    script = _script(
        f"""
        import os, sys
        base = os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")
        with open(f"{{base}}/processing/train/partial.csv", "w") as f:
            f.write("half")
        with open(f"{{base}}/output/message", "w", encoding="utf-8") as f:
            f.write({message!r})
        sys.exit(1)
        """
    )
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")

    outcome = run_processing_job(
        "pre-2", _processing_request(store, script), store, work_dir, io.StringIO()
    )

    assert outcome.status == "Failed"
    assert outcome.failure_reason == "AlgorithmError: See job logs for more information"
    assert outcome.properties["ExitMessage"] == message[:1024]
    assert outcome.properties["FailureReason"] == outcome.failure_reason
    assert outcome.properties["ProcessingJobStatus"] == "Failed"
    assert store.list(f"{BUCKET}/runs/") == [], "a failed job uploads no outputs"


WRITE_THEN_END = _script(
    """
    import os, sys, time
    base = os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")
    with open(f"{base}/processing/train/part-1.csv", "w") as f:
        f.write("written before the end")
    time.sleep(float(sys.argv[1]))
    sys.exit(int(sys.argv[2]))
    """
)


@pytest.mark.parametrize(
    ("mode", "sleep", "exit_code", "status", "uploaded"),
    [
        ("EndOfJob", 0, 0, "Completed", True),
        ("EndOfJob", 0, 1, "Failed", False),
        ("Continuous", 0, 0, "Completed", True),
        ("Continuous", 0, 1, "Failed", True),
        ("Continuous", 60, 0, "Stopped", True),  # runs past MaxRuntimeInSeconds
    ],
)
def test_a_continuous_output_is_uploaded_whatever_the_ending_and_an_end_of_job_one_on_completion(
    store: ObjectStore, work_dir: Path, mode: str, sleep: int, exit_code: int, status: str, uploaded: bool
) -> None:
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    request = _processing_request(store, WRITE_THEN_END, arguments=[str(sleep), str(exit_code)],
                                  StoppingCondition={"MaxRuntimeInSeconds": 2})
    request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3UploadMode"] = mode

    outcome = run_processing_job("upload-1", request, store, work_dir, io.StringIO())

    assert outcome.properties["ProcessingJobStatus"] == status, outcome.failure_reason
    expected = [f"{BUCKET}/runs/x/train/part-1.csv"] if uploaded else []
    assert store.list(f"{BUCKET}/runs/") == expected


def test_a_failed_job_keeps_its_reason_when_its_continuous_output_cannot_be_uploaded(
    store: ObjectStore, work_dir: Path
) -> None:
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    request = _processing_request(store, WRITE_THEN_END, arguments=["0", "3"])
    outputs = request["ProcessingOutputConfig"]["Outputs"]
    outputs[0]["S3Output"]["S3UploadMode"] = "Continuous"
    outputs.insert(0, {
        "OutputName": "refused",
        "S3Output": {"S3Uri": "s3://no-such-bucket/other", "LocalPath": "/opt/ml/processing/other",
                     "S3UploadMode": "Continuous"},
    })

    outcome = run_processing_job("upload-2", request, store, work_dir, io.StringIO())

    assert outcome.status == "Failed"  # its own reason, not the upload's
    assert outcome.failure_reason == "AlgorithmError: See job logs for more information"
    assert store.list(f"{BUCKET}/runs/") == [f"{BUCKET}/runs/x/train/part-1.csv"]  # the next one still went


LEAVE_RUNNING = _script(
    """
    import subprocess, sys
    subprocess.Popen(["sleep", sys.argv[1]], start_new_session=True)  # out of the job's group
    """
)


def test_a_process_the_job_leaves_running_ends_with_the_job_as_with_its_container(
    store: ObjectStore, work_dir: Path, tmp_path: Path
) -> None:
    if isolation_unavailable():
        pytest.skip("this kernel does not let users create namespaces")
    marker = f"300.{os.getpid()}{uuid.uuid4().int % 10**6}"  # sleep's argument, found by it
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    request = _processing_request(store, LEAVE_RUNNING, arguments=[marker])

    outcome = run_processing_job("leave-1", request, store, work_dir, io.StringIO(),
                                 confinement=StateLayout(tmp_path / "state").confinement())

    assert outcome.status == "Succeeded", outcome.failure_reason
    assert processes_with(marker) == []


MESSAGE_THEN_EXIT = _script(
    """
    import os, sys, time
    with open(os.path.join(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"), "output", "message"), "wb") as f:
        f.write(bytes.fromhex(sys.argv[2]))
    time.sleep(float(sys.argv[1]))
    """
)


@pytest.mark.parametrize(
    ("sleep", "status"),
    [(0, "Completed"), (60, "Stopped")],  # the second runs past MaxRuntimeInSeconds
)
def test_the_message_file_is_the_exit_message_whatever_the_ending(
    store: ObjectStore, work_dir: Path, sleep: int, status: str
) -> None:
    message = "rows kept: 41; dropped: 2" + "\u00e9" * 600  # two bytes each: the limit cuts one in two
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    request = _processing_request(store, MESSAGE_THEN_EXIT, arguments=[str(sleep), message.encode().hex()],
                                  StoppingCondition={"MaxRuntimeInSeconds": 2})

    outcome = run_processing_job("msg-1", request, store, work_dir, io.StringIO())

    assert outcome.properties["ProcessingJobStatus"] == status, outcome.failure_reason
    kept = message.encode()[:1024].decode("utf-8", errors="ignore")
    assert outcome.properties["ExitMessage"] == kept and len(kept.encode()) == 1023
    assert bool(outcome.properties["FailureReason"]) == (status == "Stopped")  # the message is no failure


def test_a_job_that_sets_no_stopping_condition_is_held_to_sagemakers_default(
    store: ObjectStore, work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(processing, "DEFAULT_MAX_RUNTIME", 2)  # a day, shortened for the test
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    request = _processing_request(store, MESSAGE_THEN_EXIT, arguments=["60", b"sleeping".hex()])

    outcome = run_processing_job("default-limit", request, store, work_dir, io.StringIO())

    assert outcome.properties["ProcessingJobStatus"] == "Stopped", outcome.failure_reason
    assert outcome.properties["StoppingCondition"] == {"MaxRuntimeInSeconds": 2}
    assert "MaxRuntimeInSeconds (2)" in outcome.properties["FailureReason"]


def test_a_message_file_that_is_not_utf8_fails_the_job(store: ObjectStore, work_dir: Path) -> None:
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    request = _processing_request(store, MESSAGE_THEN_EXIT, arguments=["0", b"caf\xe9".hex()])  # Latin-1

    outcome = run_processing_job("msg-2", request, store, work_dir, io.StringIO())

    assert outcome.status == "Failed"
    assert outcome.properties["ProcessingJobStatus"] == "Failed"
    assert outcome.failure_reason == "ClientError: /opt/ml/output/message is not UTF-8 text"
    assert store.list(f"{BUCKET}/runs/") == [], "a failed job uploads no outputs"


def test_a_processing_crash_is_sagemakers_reason_and_its_stderr_is_in_the_log(
    store: ObjectStore, work_dir: Path
) -> None:
    script = _script(
        """
        import sys
        for i in range(200):
            print(f"noise line {i} " + "y" * 40, file=sys.stderr)
        print("fatal: the last words", file=sys.stderr)
        sys.exit(3)
        """
    )
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")

    outcome = run_processing_job(
        "pre-3", _processing_request(store, script), store, work_dir, io.StringIO()
    )

    assert outcome.status == "Failed"
    assert outcome.failure_reason == "AlgorithmError: See job logs for more information"
    assert outcome.properties["ExitMessage"] == ""  # it wrote no message
    log = (work_dir / "pre-3" / "logs.txt").read_text()
    assert "noise line 0 " in log and "fatal: the last words" in log


def test_missing_input_fails_naming_the_uri_without_running(
    store: ObjectStore, work_dir: Path
) -> None:
    request = _processing_request(store, CLEAN_SCRIPT)

    outcome = run_processing_job("pre-4", request, store, work_dir, io.StringIO())

    assert outcome.status == "Failed"
    assert outcome.failure_reason.startswith("ClientError: ")
    assert f'"{BUCKET}/data"' in outcome.failure_reason
    assert outcome.properties["ProcessingJobStatus"] == "Failed"
    assert not (work_dir / "pre-4" / "logs.txt").exists()


def test_an_input_in_a_bucket_that_does_not_exist_fails_naming_the_bucket_without_running(
    store: ObjectStore, work_dir: Path
) -> None:
    request = _processing_request(store, CLEAN_SCRIPT)
    request["ProcessingInputs"][0]["S3Input"]["S3Uri"] = "s3://no-such-bucket/data"

    outcome = run_processing_job("pre-nb", request, store, work_dir, io.StringIO())

    assert outcome.status == "Failed"
    assert outcome.failure_reason.startswith('ClientError: No S3 objects found under S3 URL "s3://no-such-bucket/data"')
    assert 'the bucket "no-such-bucket" does not exist' in outcome.failure_reason
    assert not (work_dir / "pre-nb" / "logs.txt").exists()


def test_an_output_to_a_bucket_that_does_not_exist_fails_the_job_once_it_ran(
    store: ObjectStore, work_dir: Path
) -> None:
    writes = _script(
        """
        import os
        from pathlib import Path
        (Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")) / "processing/train/out.csv").write_text("ran")
        """
    )
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    request = _processing_request(store, writes)
    request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] = "s3://no-such-bucket/out"

    outcome = run_processing_job("pre-nb-out", request, store, work_dir, io.StringIO())

    assert (outcome.status, outcome.properties["ProcessingJobStatus"]) == ("Failed", "Failed")
    assert outcome.failure_reason == (
        "ClientError: Artifact upload failed:Unable to upload file to s3://no-such-bucket/out "
        '(NoSuchBucket: The specified bucket does not exist: "no-such-bucket")'
    )
    assert (work_dir / "pre-nb-out" / "opt/ml/processing/train/out.csv").read_text() == "ran"
    assert not store.bucket_exists("no-such-bucket")


def test_an_empty_output_to_a_bucket_that_does_not_exist_fails_the_job_too(
    store: ObjectStore, work_dir: Path
) -> None:
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    request = _processing_request(store, _script("print('wrote nothing')"))
    request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] = "s3://no-such-bucket/out"

    outcome = run_processing_job("pre-nb-empty", request, store, work_dir, io.StringIO())

    assert outcome.status == "Failed"
    assert "Unable to upload file to s3://no-such-bucket/out (NoSuchBucket" in outcome.failure_reason


@pytest.mark.parametrize(
    ("where", "path"),
    [
        ("output 'train'", "/tmp/escape"),
        ("output 'train'", "/opt/ml/model"),
        ("output 'train'", "/opt/ml/processing/../model"),
        ("input 'raw'", "/opt/ml/input/data"),
        ("input 'raw'", "/opt/ml/processing"),
    ],
)
def test_a_local_path_outside_opt_ml_processing_fails_the_job_before_it_runs(
    store: ObjectStore, work_dir: Path, where: str, path: str
) -> None:
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    request = _processing_request(store, CLEAN_SCRIPT)
    if where.startswith("output"):
        request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["LocalPath"] = path
    else:
        request["ProcessingInputs"][0]["S3Input"]["LocalPath"] = path

    outcome = run_processing_job("pre-5", request, store, work_dir, io.StringIO())

    assert outcome.status == "Failed"
    assert outcome.failure_reason == (
        f"ValidationException: {where} LocalPath {path!r}: for both ProcessingInput and ProcessingOutput, "
        "the path in the processing container must begin with /opt/ml/processing/"
    )
    assert not (work_dir / "pre-5").exists()


def test_invalid_job_name_fails_without_touching_disk(store: ObjectStore, work_dir: Path) -> None:
    request = _processing_request(store, CLEAN_SCRIPT)

    outcome = run_processing_job("../escape", request, store, work_dir, io.StringIO())

    assert outcome.status == "Failed"
    assert "invalid job name" in outcome.failure_reason
    assert not work_dir.exists()


def test_output_lines_reach_the_log_while_the_job_runs(store: ObjectStore, work_dir: Path) -> None:
    """The script only finishes after the test has seen its first line: no end-of-job buffering."""
    script = _script(
        """
        import os, sys, time
        from pathlib import Path
        go = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")) / "go"
        print("first line")
        deadline = time.monotonic() + 20
        while not go.exists():
            if time.monotonic() > deadline:
                sys.exit("never saw the go file: output was not streamed")
            time.sleep(0.05)
        print("second line")
        """
    )
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    go = work_dir / "pre-6" / "opt" / "ml" / "go"

    class Watcher(io.StringIO):
        def write(self, text: str) -> int:
            if "first line" in text:
                go.write_text("")
            return super().write(text)

    log = Watcher()
    outcome = run_processing_job(
        "pre-6", _processing_request(store, script), store, work_dir, log
    )

    assert outcome.status == "Succeeded", outcome.failure_reason
    assert log.getvalue().index("first line") < log.getvalue().index("second line")


SLEEPER = _script(
    """
    import os, signal, subprocess, sys, time
    if os.environ.get("IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(os.path.join(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"), "child.pid"), "w") as f:
        f.write(str(child.pid))
    print("ready", flush=True)
    time.sleep(120)
    """
)


def test_cancel_event_kills_the_process_group(store: ObjectStore, work_dir: Path) -> None:
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    cancel = JobStop()
    pid_file = work_dir / "pre-7" / "opt" / "ml" / "child.pid"
    stopping: list[dict[str, Any] | None] = []

    def cancel_when_ready() -> None:
        wait_until(lambda: pid_file.is_file() and pid_file.read_text(), 30.0)
        stopping.append(cancel.request())

    threading.Thread(target=cancel_when_ready, daemon=True).start()
    started = time.monotonic()
    outcome = run_processing_job(
        "pre-7", _processing_request(store, SLEEPER), store, work_dir, io.StringIO(), cancel=cancel
    )

    assert time.monotonic() - started < 30
    assert outcome.status == "Failed"
    assert outcome.properties["ProcessingJobStatus"] == "Stopped"
    assert "stopped" in outcome.failure_reason.lower()
    (described,) = stopping  # the job's own words as its stop was asked
    assert described is not None and described["ProcessingJobStatus"] == "Stopping"
    wait_until(lambda: not pid_alive(int(pid_file.read_text())), 10)
    assert store.list(f"{BUCKET}/runs/") == []


# ----------------------------------------------------------------------------- training

TRAIN_SCRIPT = _script(
    """
    import json, os, sys
    from pathlib import Path

    model_dir = Path(os.environ["SM_MODEL_DIR"])
    env = {k: v for k, v in os.environ.items() if k.startswith(("SM_", "SAGEMAKER_", "TRAINING_"))}
    seen = {"argv": sys.argv[1:], "env": env, "cwd": os.getcwd()}
    (model_dir / "seen.json").write_text(json.dumps(seen))
    data = Path(os.environ["SM_CHANNEL_TRAIN"]) / "train.csv"
    (model_dir / "code").mkdir()
    (model_dir / "code" / "inference.py").write_text(data.read_text())
    (Path(os.environ["SM_OUTPUT_DATA_DIR"]) / "metrics.json").write_text('{"loss": 0.1}')
    print("training done")
    """
)


def _training_request(
    store: ObjectStore,
    script: bytes,
    *,
    max_runtime: int = 3600,
    requirements: str | bytes | None = None,
    extra: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """A request shaped like tests/local/data/sdk-definition.json's Train step, resolved."""
    sources = {"train.py": script, **(extra or {})}
    if requirements is not None:
        sources["requirements.txt"] = requirements.encode() if isinstance(requirements, str) else requirements
    store.put_bytes(f"{BUCKET}/code/abc/sourcedir.tar.gz", tar_gz(sources))
    return {
        "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": LOCAL_IMAGE},
        "HyperParameters": {
            "ngram-max": 2,
            "max-features": "100",
            "c": "0.5",
            "label": "positive",
            "sagemaker_program": "train.py",
            "sagemaker_submit_directory": f"{BUCKET}/code/abc/sourcedir.tar.gz",
        },
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"{BUCKET}/runs/x/train",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "InputMode": "File",
            }
        ],
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "RoleArn": "arn:aws:iam::123456789012:role/sm",
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
        "OutputDataConfig": {"S3OutputPath": f"{BUCKET}/models"},
    }


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def test_training_job_follows_the_toolkit_contract(
    store: ObjectStore, work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"review_text,sentiment\n")
    request = _training_request(store, TRAIN_SCRIPT)
    log = io.StringIO()

    running: list[dict[str, Any]] = []
    outcome = run_training_job("train-1", request, store, work_dir, log, progress=running.append)

    assert outcome.failure_reason == ""
    assert outcome.status == "Succeeded"
    model_uri = f"{BUCKET}/models/train-1/output/model.tar.gz"
    props = outcome.properties
    assert props["ModelArtifacts"] == {"S3ModelArtifacts": model_uri}
    assert props["TrainingJobStatus"] == props["SecondaryStatus"] == "Completed"
    arn = "arn:aws:sagemaker:us-east-1:000000000000:training-job/train-1"
    assert props["TrainingJobArn"] == arn
    assert outcome.metadata == {"TrainingJob": {"Arn": arn}}
    channels = request["InputDataConfig"]
    assert props["InputDataConfig"] == [{**channel, **DESCRIBED_CHANNEL} for channel in channels]
    assert props["HyperParameters"]["ngram-max"] == "2"
    members = _members(store.get_bytes(model_uri))
    assert set(members) == {"seen.json", "code/inference.py"}
    assert members["code/inference.py"] == b"review_text,sentiment\n"
    outputs = _members(store.get_bytes(f"{BUCKET}/models/train-1/output/output.tar.gz"))
    assert outputs == {"metrics.json": b'{"loss": 0.1}'}

    base = work_dir / "train-1" / "opt" / "ml"
    seen = json.loads(members["seen.json"])
    assert seen["argv"] == ["-c", "0.5", "--label", "positive", "--max-features", "100",
                            "--ngram-max", "2"]  # fmt: skip
    assert seen["cwd"] == str(base / "code")
    env = seen["env"]
    assert env["SAGEMAKER_BASE_DIR"] == str(base)
    assert env["SM_MODEL_DIR"] == str(base / "model")
    assert env["SM_CHANNEL_TRAIN"] == str(base / "input" / "data" / "train")
    assert env["SM_OUTPUT_DATA_DIR"] == str(base / "output" / "data")
    assert env["SM_INPUT_CONFIG_DIR"] == str(base / "input" / "config")
    assert json.loads(env["SM_CHANNELS"]) == ["train"]
    hps = {"c": 0.5, "label": "positive", "max-features": 100, "ngram-max": 2}
    assert json.loads(env["SM_HPS"]) == hps
    assert env["SM_HP_NGRAM-MAX"] == "2"
    assert env["SM_HP_LABEL"] == "positive"
    assert env["SM_CURRENT_HOST"] == "algo-1"
    assert json.loads(env["SM_HOSTS"]) == ["algo-1"]
    assert env["SM_NUM_GPUS"] == "0"
    assert int(env["SM_NUM_CPUS"]) >= 1
    assert env["SM_USER_ENTRY_POINT"] == "train.py"
    assert env["SM_MODULE_DIR"] == f"{BUCKET}/code/abc/sourcedir.tar.gz"
    assert env["TRAINING_JOB_NAME"] == "train-1"
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["hyperparameters"] == hps
    assert training_env["channel_input_dirs"] == {"train": env["SM_CHANNEL_TRAIN"]}
    assert training_env["job_name"] == "train-1"

    config = base / "input" / "config"
    assert json.loads((config / "hyperparameters.json").read_text()) == {
        "ngram-max": "2",
        "max-features": "100",
        "c": "0.5",
        "label": "positive",
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": f"{BUCKET}/code/abc/sourcedir.tar.gz",
    }
    group = {"instance_group_name": "homogeneousCluster", "instance_type": "ml.m5.large", "hosts": ["algo-1"]}
    resources = {
        "current_host": "algo-1",
        "current_instance_type": "ml.m5.large",
        "current_group_name": "homogeneousCluster",
        "hosts": ["algo-1"],
        "instance_groups": [group],
        "network_interface_name": "eth0",
    }
    assert json.loads((config / "resourceconfig.json").read_text()) == resources
    assert json.loads(env["SM_RESOURCE_CONFIG"]) == resources
    assert env["SM_CURRENT_INSTANCE_TYPE"] == "ml.m5.large"
    assert env["SM_CURRENT_INSTANCE_GROUP"] == "homogeneousCluster"
    assert json.loads(env["SM_CURRENT_INSTANCE_GROUP_HOSTS"]) == ["algo-1"]
    assert json.loads(env["SM_INSTANCE_GROUPS"]) == ["homogeneousCluster"]
    assert json.loads(env["SM_INSTANCE_GROUPS_DICT"]) == {"homogeneousCluster": group}
    assert (env["SM_IS_HETERO"], env["SM_DISTRIBUTION_INSTANCE_GROUPS"]) == ("false", "[]")
    assert training_env["current_instance_type"] == "ml.m5.large"
    assert training_env["resource_config"] == resources

    transitions = props["SecondaryStatusTransitions"]
    phases = ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert [t["Status"] for t in transitions] == phases
    assert all(t["StatusMessage"] and t["StartTime"] <= t["EndTime"] for t in transitions)
    assert [t["EndTime"] for t in transitions[:-1]] == [t["StartTime"] for t in transitions[1:]]
    assert transitions[0]["StartTime"] == props["TrainingStartTime"]
    assert transitions[-1]["EndTime"] == props["TrainingEndTime"]
    assert transitions[-1]["StatusMessage"] == "Training job completed"
    assert isinstance(props["TrainingTimeInSeconds"], int) and props["TrainingTimeInSeconds"] >= 1
    assert props["BillableTimeInSeconds"] == props["TrainingTimeInSeconds"]
    # What SageMaker's description fills in for members the request left out
    assert [props[flag] for flag in DESCRIBED_FLAGS] == [False, False, False]
    assert {name: props["InputDataConfig"][0][name] for name in DESCRIBED_CHANNEL} == DESCRIBED_CHANNEL
    assert props["OutputDataConfig"]["KmsKeyId"] == ""
    assert props["OutputDataConfig"]["CompressionType"] == "GZIP"
    assert props["AlgorithmSpecification"]["EnableSageMakerMetricsTimeSeries"] is False
    assert props["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 0
    assert props["ProfilingStatus"] == "Disabled"
    # While it ran, its description said so, phase by phase, each with the phases before it.
    assert [(d["TrainingJobStatus"], d["SecondaryStatus"]) for d in running] == [
        ("InProgress", phase) for phase in phases[:-1]
    ]
    assert all(d["TrainingJobArn"] == arn and "TrainingEndTime" not in d for d in running)
    assert [t["Status"] for t in running[-1]["SecondaryStatusTransitions"]] == phases[:-1]
    assert json.loads((config / "inputdataconfig.json").read_text()) == {
        "train": {
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        }
    }
    assert "training done" in (work_dir / "train-1" / "logs.txt").read_text()
    assert "training done" in log.getvalue()


RAN_SCRIPT = _script(
    """
    import os
    open(os.path.join(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"), "model", "ran"), "w").close()
    """
)


def test_a_requirements_file_the_environment_satisfies_is_reported_and_the_job_runs(
    store: ObjectStore, work_dir: Path
) -> None:
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"x\n")
    numpy = version("numpy")
    requirements = f"# as the image would install them\nnumpy=={numpy}  # pinned\n\nvadersentiment>=3\n"
    log = io.StringIO()

    outcome = run_training_job(
        "req-1", _training_request(store, RAN_SCRIPT, requirements=requirements), store, work_dir, log
    )

    assert outcome.failure_reason == ""
    assert outcome.status == "Succeeded"
    assert f"requirements.txt: satisfied by the local environment: numpy {numpy}, vadersentiment" in (
        log.getvalue()
    )


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("numpy==0.0.1", "requirements.txt line 2 ('numpy==0.0.1'): the local environment has numpy "),
        ("no-such-distribution-anywhere==1.0",
         "requirements.txt line 2 ('no-such-distribution-anywhere==1.0'): no-such-distribution-anywhere "
         "is not installed in the local environment"),
        ("-r more.txt", "requirements.txt line 2 ('-r more.txt'): pip options cannot be checked locally"),
        ("numpy @ https://example.com/numpy.whl",
         "requirements.txt line 2 ('numpy @ https://example.com/numpy.whl'): a direct URL cannot be"),
        ("numpy===", "requirements.txt line 2 ('numpy===') is not a valid requirement"),
    ],
)
def test_a_requirement_the_environment_does_not_satisfy_fails_the_job_before_it_runs(
    store: ObjectStore, work_dir: Path, line: str, reason: str
) -> None:
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"x\n")
    request = _training_request(store, RAN_SCRIPT, requirements=f"scikit-learn\n{line}\n")

    outcome = run_training_job("req-2", request, store, work_dir, io.StringIO())

    assert outcome.status == "Failed"
    assert outcome.failure_reason.startswith(f"ClientError: {reason}"), outcome.failure_reason
    assert not (work_dir / "req-2" / "opt" / "ml" / "model" / "ran").exists()
    assert not store.exists(f"{BUCKET}/models/req-2/output/model.tar.gz")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"extra": {"setup.py": b"from setuptools import setup\nsetup(name='fit')\n"}},
         "ClientError: the code directory holds setup.py, which the training toolkit would pip-install "
         "as a package (pip install .)"),
        ({"program": "train.sh", "extra": {"train.sh": b"#!/bin/sh\necho fit\n"}},
         "ClientError: sagemaker_program 'train.sh' is not a .py file, so the training toolkit would run "
         "it as a shell command"),
        ({"requirements": "numpy\u00e9\n".encode("latin-1")},
         "ClientError: requirements.txt is not UTF-8 text"),
    ],
)
def test_an_entry_point_the_toolkit_would_not_run_as_a_script_fails_the_job_before_it_runs(
    store: ObjectStore, work_dir: Path, change: dict[str, Any], reason: str
) -> None:
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"x\n")
    request = _training_request(
        store, RAN_SCRIPT, extra=change.get("extra"), requirements=change.get("requirements")
    )
    request["HyperParameters"]["sagemaker_program"] = change.get("program", "train.py")

    outcome = run_training_job("kind-1", request, store, work_dir, io.StringIO())

    assert outcome.status == "Failed"
    assert outcome.failure_reason.startswith(reason), outcome.failure_reason
    assert not (work_dir / "kind-1" / "opt" / "ml" / "model" / "ran").exists()
    assert not store.exists(f"{BUCKET}/models/kind-1/output/model.tar.gz")


CHECKPOINTING = _script(
    """
    import json, os, sys
    base = os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")
    with open(os.path.join(base, "input", "config", "checkpointconfig.json")) as f:
        checkpoints = json.load(f)["LocalPath"]  # as smdebug's state store finds them
    found = sorted(os.listdir(checkpoints))
    with open(os.path.join(checkpoints, f"epoch-{len(found) + 1}"), "w") as f:
        f.write(os.environ["TRAINING_JOB_NAME"])
    with open(os.path.join(base, "model", "resumed-from"), "w") as f:
        f.write(",".join(found))
    sys.exit(1 if not found else 0)  # the first attempt dies after its first checkpoint
    """
)


def test_checkpoints_are_restored_before_a_job_and_saved_after_it_even_when_it_fails(
    store: ObjectStore, work_dir: Path
) -> None:
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"x\n")
    request = _training_request(store, CHECKPOINTING)
    request["CheckpointConfig"] = {"S3Uri": f"{BUCKET}/checkpoints/run-1"}

    first = run_training_job("ckpt-1", request, store, work_dir, io.StringIO())
    second = run_training_job("ckpt-2", request, store, work_dir, io.StringIO())

    assert (first.status, second.status) == ("Failed", "Succeeded")
    assert store.get_bytes(f"{BUCKET}/checkpoints/run-1/epoch-1") == b"ckpt-1"
    assert store.get_bytes(f"{BUCKET}/checkpoints/run-1/epoch-2") == b"ckpt-2"
    model = _members(store.get_bytes(f"{BUCKET}/models/ckpt-2/output/model.tar.gz"))
    assert model["resumed-from"] == b"epoch-1"
    restored = store.versions(f"{BUCKET}/checkpoints/run-1/epoch-1")
    assert len(restored) == 1, "a restored checkpoint is not saved again"


def _listed_while_running(store: ObjectStore, run: Callable[[], JobResult], key: str) -> JobResult:
    """Run a job on a thread of its own; once `key` is in S3 (and nothing else beside it), check
    that the job is still running; return how it ended."""
    outcomes: list[JobResult] = []
    job = threading.Thread(target=lambda: outcomes.append(run()))
    job.start()
    folder = key.rsplit("/", 1)[0] + "/"
    wait_until(lambda: store.list(folder) == [key], timeout=30, what=f"{key} in S3")
    running = job.is_alive()
    job.join()
    assert running, f"{key} reached S3 only once the job had ended"
    return outcomes[0]


CHECKPOINT_THEN_DELETE = _script(
    """
    import json, os, time
    base = os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")
    with open(os.path.join(base, "input", "config", "checkpointconfig.json")) as f:
        checkpoint = os.path.join(json.load(f)["LocalPath"], "epoch-1")
    with open(checkpoint, "w") as f:
        f.write("saved while running")
    time.sleep(3)
    os.remove(checkpoint)
    """
)


def test_a_checkpoint_is_in_s3_while_the_job_runs_and_stays_there_once_deleted(
    store: ObjectStore, work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(folder_sync, "SYNC_SECONDS", 0.05)
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"x\n")
    request = _training_request(store, CHECKPOINT_THEN_DELETE)
    request["CheckpointConfig"] = {"S3Uri": f"{BUCKET}/checkpoints/run-2"}
    key = f"{BUCKET}/checkpoints/run-2/epoch-1"

    outcome = _listed_while_running(
        store, lambda: run_training_job("ckpt-live", request, store, work_dir, io.StringIO()), key
    )

    assert outcome.status == "Succeeded", outcome.failure_reason
    assert store.get_bytes(key) == b"saved while running"  # deleted by the job, kept in S3


def test_a_continuous_output_is_in_s3_while_the_job_runs(
    store: ObjectStore, work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(folder_sync, "SYNC_SECONDS", 0.05)
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    request = _processing_request(store, WRITE_THEN_END, arguments=["3", "0"])
    request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3UploadMode"] = "Continuous"
    key = f"{BUCKET}/runs/x/train/part-1.csv"

    outcome = _listed_while_running(
        store, lambda: run_processing_job("live-1", request, store, work_dir, io.StringIO()), key
    )

    assert outcome.status == "Succeeded", outcome.failure_reason
    assert len(store.versions(key)) == 1, "a file uploaded as it runs is not uploaded again at the end"


TENSORBOARD_SCRIPT = _script(
    """
    import json, os, sys
    from pathlib import Path
    base = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
    config = json.loads((base / "input" / "config" / "tensorboardoutputconfig.json").read_text())
    events = Path(config["LocalPath"]) / "train"  # its parent exists only if the job created it
    events.mkdir()
    (events / "events.out.tfevents").write_text(config["S3OutputPath"])
    sys.exit(int(os.environ["EXIT_CODE"]))
    """
)


@pytest.mark.parametrize(
    ("local_path", "exit_code"),
    [(None, 0), ("/opt/ml/custom/tb", 0), (None, 1)],
    ids=["default-local-path", "custom-local-path", "failed-job"],
)
def test_tensorboard_files_are_uploaded_under_the_job_name_whatever_the_ending(
    store: ObjectStore, work_dir: Path, local_path: str | None, exit_code: int
) -> None:
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"x\n")
    request = _training_request(store, TENSORBOARD_SCRIPT)
    request["TensorBoardOutputConfig"] = {"S3OutputPath": f"{BUCKET}/tensorboard/"}
    if local_path is not None:
        request["TensorBoardOutputConfig"]["LocalPath"] = local_path
    request["Environment"] = {"EXIT_CODE": str(exit_code)}

    outcome = run_training_job("tb-1", request, store, work_dir, io.StringIO())

    assert outcome.status == ("Succeeded" if exit_code == 0 else "Failed"), outcome.failure_reason
    key = f"{BUCKET}/tensorboard/tb-1/tensorboard-output/train/events.out.tfevents"
    assert store.list(f"{BUCKET}/tensorboard/") == [key]
    # The job read where to write its files (the folder uploaded) and where they go from
    # tensorboardoutputconfig.json.
    assert store.get_bytes(key) == f"{BUCKET}/tensorboard/tb-1/tensorboard-output".encode()


RUNS_MARKER = _script(
    """
    import os
    open(os.path.join(os.environ["SM_MODEL_DIR"], "ran"), "w").close()
    """
)


@pytest.mark.parametrize(
    ("member", "value", "refusal"),
    [
        ("DebugHookConfig", {"S3OutputPath": f"{BUCKET}/debug"},
         "DebugHookConfig asks SageMaker Debugger's hook to save the job's tensors to S3: a local job "
         "runs no Debugger hook and saves no tensors"),
        ("DebugRuleConfigurations", [{"RuleConfigurationName": "Loss", "RuleEvaluatorImage": LOCAL_IMAGE}],
         "DebugRuleConfigurations asks for rule evaluation jobs beside the training job: a local job "
         "runs no rule evaluation and reports no DebugRuleEvaluationStatuses"),
        ("ProfilerRuleConfigurations", [{"RuleConfigurationName": "Rep", "RuleEvaluatorImage": LOCAL_IMAGE}],
         "ProfilerRuleConfigurations asks for rule evaluation jobs beside the training job: a local job "
         "runs no rule evaluation and reports no ProfilerRuleEvaluationStatuses"),
        ("ProfilerConfig", {"S3OutputPath": f"{BUCKET}/profile", "DisableProfiler": False},
         "ProfilerConfig without DisableProfiler true asks SageMaker Debugger to profile the job's "
         "system and framework metrics: a local job is not profiled (its ProfilingStatus is Disabled)"),
        ("ProfilerConfig", {"DisableProfiler": True}, None),
        ("ResourceConfig", {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1,
                            "KeepAlivePeriodInSeconds": 1800},
         "ResourceConfig.KeepAlivePeriodInSeconds asks SageMaker to keep the job's instance in a warm pool "
         "for the next job: a local job's process ends with the job, and it reports no WarmPoolStatus"),
        ("VpcConfig", {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1"]},
         "VpcConfig connects the job's containers to a VPC's subnets (they reach what the VPC's routes and "
         "security groups allow): a local job uses this machine's network"),
    ],
)
def test_debugger_profiler_and_vpc_values_resolved_at_run_time_fail_the_job_before_it_runs(
    store: ObjectStore, work_dir: Path, member: str, value: Any, refusal: str | None
) -> None:
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"x\n")
    request = {**_training_request(store, RUNS_MARKER), member: value}

    outcome = run_training_job("debug-1", request, store, work_dir, io.StringIO())

    model_uri = f"{BUCKET}/models/debug-1/output/model.tar.gz"
    if refusal is None:
        assert outcome.status == "Succeeded", outcome.failure_reason
        assert "ran" in _members(store.get_bytes(model_uri))
        return
    assert (outcome.status, outcome.failure_reason) == ("Failed", f"ValidationException: {refusal}")
    assert not (work_dir / "debug-1").exists()
    assert not store.exists(model_uri)


METRICS_SCRIPT = _script(
    """
    import sys
    print("epoch 1 accuracy=0.5", flush=True)
    print("epoch 2 accuracy=0.75", flush=True)
    print("summary: accuracy=high", flush=True)  # not a number: SageMaker reads nothing from it
    print("final loss=0.4", file=sys.stderr)  # stderr is read too (its order beside stdout is not kept)
    """
)


def test_metric_definitions_read_the_last_value_each_matched_in_the_log(
    store: ObjectStore, work_dir: Path
) -> None:
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"x\n")
    request = _training_request(store, METRICS_SCRIPT)
    request["AlgorithmSpecification"]["MetricDefinitions"] = [
        {"Name": "train:accuracy", "Regex": r"accuracy=(\S+)"},
        {"Name": "train:loss", "Regex": r"loss=([0-9.]+)"},
        {"Name": "validation:auc", "Regex": r"auc=([0-9.]+)"},  # never printed
    ]

    outcome = run_training_job("metrics-1", request, store, work_dir, io.StringIO())

    assert outcome.status == "Succeeded", outcome.failure_reason
    final = outcome.properties["FinalMetricDataList"]
    assert [(m["MetricName"], m["Value"]) for m in final] == [("train:accuracy", 0.75), ("train:loss", 0.4)]
    assert all(m["Timestamp"] for m in final)


def test_training_failure_file_becomes_the_reason(store: ObjectStore, work_dir: Path) -> None:
    script = _script(
        """
        import os, sys
        base = os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")
        with open(os.path.join(base, "output", "failure"), "w") as f:
            f.write("train.csv has only class 1; training needs both classes 0 and 1")
        sys.exit(1)
        """
    )
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"x\n")

    outcome = run_training_job(
        "train-2", _training_request(store, script), store, work_dir, io.StringIO()
    )

    reason = "AlgorithmError: train.csv has only class 1; training needs both classes 0 and 1"
    assert outcome.status == "Failed"
    assert outcome.failure_reason == reason
    assert outcome.properties["FailureReason"] == reason
    assert outcome.properties["TrainingJobStatus"] == "Failed"
    assert not store.exists(f"{BUCKET}/models/train-2/output/model.tar.gz")


def test_a_long_failure_file_is_cut_to_1_kb_with_its_prefix(store: ObjectStore, work_dir: Path) -> None:
    script = _script(
        """
        import os, sys
        base = os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")
        with open(os.path.join(base, "output", "failure"), "w") as f:
            f.write("x" * 5000)
        sys.exit(1)
        """
    )
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"x\n")

    outcome = run_training_job("train-7", _training_request(store, script), store, work_dir, io.StringIO())

    assert outcome.failure_reason == ("AlgorithmError: " + "x" * 1024)[:1024]


def test_a_training_script_that_crashes_fails_as_the_scikit_learn_images_toolkit_reports_it(
    store: ObjectStore, work_dir: Path
) -> None:
    script = _script(
        """
        raise ValueError("C must be positive")
        """
    )
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"x\n")

    outcome = run_training_job("crash-1", _training_request(store, script), store, work_dir, io.StringIO())

    python = image_python(work_dir / ENVIRONMENTS).python  # the image's (image_python.py)
    command = f"{python} train.py -c 0.5 --label positive --max-features 100 --ngram-max 2"
    # The image's toolkit does not capture stderr: the traceback is in the log, not the reason.
    assert outcome.failure_reason == (
        'AlgorithmError: ExecuteUserScriptError:\nExitCode 1\nErrorMessage ""\n'
        f'Command "{command}", exit code: 1'
    )
    assert outcome.properties["FailureReason"] == outcome.failure_reason
    assert "ValueError: C must be positive" in (work_dir / "crash-1" / "logs.txt").read_text()


@pytest.mark.parametrize("confined", [False, True])
def test_a_training_script_killed_by_a_signal_exits_with_minus_its_number_as_the_toolkit_reports_it(
    store: ObjectStore, tmp_path: Path, confined: bool
) -> None:
    """The toolkit starts the script itself (Popen), so a script a signal ended exited with minus the
    signal's number, confined or not (confined, the status comes from the shell that waits for the
    script, which reports it as 128 + N)."""
    layout = StateLayout(tmp_path / "state")
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"x\n")
    script = _script(
        """
        import os
        import signal

        os.kill(os.getpid(), signal.SIGSEGV)
        """
    )

    outcome = run_training_job("segv-1", _training_request(store, script), store, layout.jobs, io.StringIO(),
                               confinement=layout.confinement() if confined else None)

    assert outcome.failure_reason.startswith(
        'AlgorithmError: ExecuteUserScriptError:\nExitCode -11\nErrorMessage ""\nCommand "'
    )


def test_a_long_command_is_cut_before_the_exit_code_the_reason_ends_with() -> None:
    finish = ProcessExit(2, "", ["z" * 500])
    argv = ["python", "train.py", "--notes", "n" * 1100]

    reason = training_failure(finish, Path("/nonexistent/failure"), argv)

    assert reason.startswith('AlgorithmError: ExecuteUserScriptError:\nExitCode 2\nErrorMessage ""\n'
                             'Command "python train.py --notes n')
    assert reason.endswith("nnn, exit code: 1") and len(reason) == 1024
    assert "z" not in reason


def test_a_script_that_exits_137_gets_the_toolkits_out_of_memory_extra_info() -> None:
    reason = training_failure(ProcessExit(137, "", []), Path("/nonexistent/failure"), ["python", "train.py"])

    assert reason == (
        'AlgorithmError: ExecuteUserScriptError:\nExitCode 137\nErrorMessage ""\n'
        'ExtraInfo "OutOfMemory: Process killed by SIGKILL (signal 9)"\n'
        'Command "python train.py", exit code: 1'
    )


def test_training_timeout_kills_the_group_even_if_sigterm_is_ignored(
    store: ObjectStore, work_dir: Path
) -> None:
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"x\n")
    request = _training_request(store, SLEEPER, max_runtime=2)
    request["Environment"] = {"IGNORE_TERM": "1"}

    started = time.monotonic()
    outcome = run_training_job("train-3", request, store, work_dir, io.StringIO(), stop_grace=0.5)

    assert time.monotonic() - started < 30
    assert outcome.status == "Failed"
    assert outcome.properties["TrainingJobStatus"] == "Stopped"
    assert outcome.properties["SecondaryStatus"] == "MaxRuntimeExceeded"
    assert "MaxRuntimeInSeconds" in outcome.failure_reason
    child = int((work_dir / "train-3" / "opt" / "ml" / "child.pid").read_text())
    wait_until(lambda: not pid_alive(child), 10)
    assert "ready" in (work_dir / "train-3" / "logs.txt").read_text()


SAVES_ON_SIGTERM = _script(
    """
    import os, signal, sys, time

    def save(signum, frame):
        time.sleep(float(os.environ["SAVING_SECONDS"]))
        with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as f:
            f.write("saved on SIGTERM")
        sys.exit(0)

    signal.signal(signal.SIGTERM, save)
    print("ready", flush=True)
    time.sleep(120)
    """
)


@pytest.mark.parametrize(
    ("stop", "phases", "grace", "saved"),
    [
        ("request", ["Stopping", "Stopped"], 10.0, True),
        ("timeout", ["Uploading", "MaxRuntimeExceeded"], 10.0, True),
        ("timeout", ["Uploading", "MaxRuntimeExceeded"], 0.2, False),  # killed before it could save
    ],
)
def test_a_stopped_training_job_uploads_what_its_model_dir_holds(
    store: ObjectStore, work_dir: Path, stop: str, phases: list[str], grace: float, saved: bool
) -> None:
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"x\n")
    request = _training_request(store, SAVES_ON_SIGTERM, max_runtime=2 if stop == "timeout" else 3600)
    request["Environment"] = {"SAVING_SECONDS": "1"}
    cancel = JobStop()
    logs = work_dir / "stop-1" / "logs.txt"
    heard: list[dict[str, Any]] = []

    def cancel_when_ready() -> None:
        wait_until(lambda: logs.is_file() and "ready" in logs.read_text(), 30)
        described = cancel.request()
        assert described is not None
        heard.append(described)

    if stop == "request":
        threading.Thread(target=cancel_when_ready, daemon=True).start()

    outcome = run_training_job("stop-1", request, store, work_dir, io.StringIO(), cancel=cancel,
                               stop_grace=grace, progress=heard.append)

    props = outcome.properties
    assert (props["TrainingJobStatus"], props["SecondaryStatus"]) == ("Stopped", phases[-1])
    transitions = props["SecondaryStatusTransitions"]
    assert [t["Status"] for t in transitions] == ["Starting", "Downloading", "Training", *phases]
    assert all(t["EndTime"] == later["StartTime"] for t, later in itertools.pairwise(transitions))
    assert props["TrainingTimeInSeconds"] >= (2 if stop == "timeout" else 1)  # until it was stopped
    model = _members(store.get_bytes(props["ModelArtifacts"]["S3ModelArtifacts"]))
    assert model == ({"model.json": b"saved on SIGTERM"} if saved else {})
    if stop == "request":  # Stopping from the request on, in the documented words, until the end
        first = next(i for i, d in enumerate(heard) if d["TrainingJobStatus"] == "Stopping")
        since = heard[first:]
        assert {(d["TrainingJobStatus"], d["SecondaryStatus"]) for d in since} == {("Stopping", "Stopping")}
        messages = {d["SecondaryStatusTransitions"][-1]["StatusMessage"] for d in since}
        assert messages == {"Stopping the training job"}
        assert since[0]["SecondaryStatusTransitions"][-1]["StartTime"] == transitions[-2]["StartTime"]
        assert transitions[-1]["StatusMessage"] == "Training job stopped"


def test_a_training_job_gets_sagemakers_120_seconds_to_save_its_model() -> None:
    grace = inspect.signature(run_training_job).parameters["stop_grace"].default
    assert grace == 120


@pytest.mark.parametrize(
    "member",
    [
        tarfile.TarInfo("../evil.py"),
        tarfile.TarInfo("/abs/evil.py"),
    ],
    ids=["dot-dot", "absolute"],
)
def test_unsafe_source_archive_is_refused(
    store: ObjectStore, work_dir: Path, tmp_path: Path, member: tarfile.TarInfo
) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        tar.addfile(_info("train.py", b"print('x')"), io.BytesIO(b"print('x')"))
        member.size = 4
        tar.addfile(member, io.BytesIO(b"evil"))
    request = _training_request(store, b"")
    store.put_bytes(f"{BUCKET}/code/abc/sourcedir.tar.gz", raw.getvalue())
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"x\n")

    outcome = run_training_job("train-4", request, store, work_dir, io.StringIO())

    assert outcome.status == "Failed"
    assert "unsafe path" in outcome.failure_reason
    assert not list(tmp_path.rglob("evil.py"))


def test_source_archive_with_a_link_is_refused(store: ObjectStore, work_dir: Path) -> None:
    link = tarfile.TarInfo("train.py")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        tar.addfile(link)
    request = _training_request(store, b"")
    store.put_bytes(f"{BUCKET}/code/abc/sourcedir.tar.gz", raw.getvalue())
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"x\n")

    outcome = run_training_job("train-5", request, store, work_dir, io.StringIO())

    assert outcome.status == "Failed"
    assert "is not a regular file" in outcome.failure_reason
    assert not (work_dir / "train-5" / "opt" / "ml" / "code" / "train.py").exists()


def test_training_with_a_missing_channel_fails_naming_the_uri(
    store: ObjectStore, work_dir: Path
) -> None:
    request = _training_request(store, TRAIN_SCRIPT)

    outcome = run_training_job("train-6", request, store, work_dir, io.StringIO())

    assert outcome.status == "Failed"
    assert f'"{BUCKET}/runs/x/train"' in outcome.failure_reason
    assert outcome.properties["TrainingJobStatus"] == "Failed"
    assert [t["Status"] for t in outcome.properties["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Failed"
    ]


def test_training_whose_output_path_names_a_bucket_that_does_not_exist_fails_naming_it(
    store: ObjectStore, work_dir: Path
) -> None:
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"review_text,sentiment\n")
    request = _training_request(store, TRAIN_SCRIPT)
    request["OutputDataConfig"]["S3OutputPath"] = "s3://no-such-bucket/models"

    outcome = run_training_job("train-nb", request, store, work_dir, io.StringIO())

    assert (outcome.status, outcome.properties["TrainingJobStatus"]) == ("Failed", "Failed")
    assert outcome.failure_reason == (
        "ClientError: Artifact upload failed:Unable to upload file to "
        "s3://no-such-bucket/models/train-nb/output/model.tar.gz "
        '(NoSuchBucket: The specified bucket does not exist: "no-such-bucket")'
    )
    phases = [t["Status"] for t in outcome.properties["SecondaryStatusTransitions"]]
    assert phases[-2:] == ["Uploading", "Failed"]


def test_cmd_args_follow_the_toolkit() -> None:
    args = to_cmd_args({"b": True, "alpha": {"y": 2, "x": 1}, "none": None, "lr": 0.1})

    assert args == ["--alpha", "x=1,y=2", "-b", "True", "--lr", "0.1", "--none", ""]


def _info(name: str, data: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info


# ----------------------------------------------------------------------------- instances

# Takes `mb` MiB and makes every page of it resident, then holds it for a few seconds.
HOG_SCRIPT = _script(
    """
    import sys, time
    held = bytearray(int(sys.argv[1]) << 20)
    held[::4096] = b"x" * len(range(0, len(held), 4096))
    print(f"holding {len(held) >> 20} MiB", flush=True)
    time.sleep(3)
    """
)


def _instance(request: dict[str, Any], instance_type: str) -> dict[str, Any]:
    resources = request.get("ResourceConfig") or request["ProcessingResources"]["ClusterConfig"]
    resources["InstanceType"] = instance_type
    return request


def test_a_processing_job_over_its_instances_memory_is_killed_as_sagemakers_oom_killer_kills_it(
    store: ObjectStore, work_dir: Path
) -> None:
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    # 8 GiB asked for, so that the sampler has seconds, not a few of its intervals, to catch the
    # script between the 4 GiB of ml.t3.medium and its print
    request = _instance(_processing_request(store, HOG_SCRIPT, arguments=["8192"]), "ml.t3.medium")

    outcome = run_processing_job("hog-1", request, store, work_dir, io.StringIO())

    assert outcome.status == "Failed"
    assert outcome.failure_reason == "AlgorithmError: See job logs for more information"
    log = (work_dir / "hog-1" / "logs.txt").read_text()
    assert "holding" not in log  # killed on the way to 8 GiB, past the 4 GiB of ml.t3.medium
    (line,) = [line for line in log.splitlines() if "resident memory" in line]
    assert re.fullmatch(
        r"\[local-sagemaker\] the job's processes reached [4-7]\.\d\d GiB of resident memory, over the 4 GiB "
        r"of ml\.t3\.medium: killed with SIGKILL, as the kernel's OOM killer kills a container that "
        r"outgrows its memory",
        line,
    )


def test_a_training_job_over_its_instances_memory_fails_as_the_toolkit_reports_a_killed_script(
    store: ObjectStore, work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(INSTANCES, "ml.t3.medium", Instance("ml.t3.medium", 2, 0.25))
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"x\n")
    request = _instance(_training_request(store, HOG_SCRIPT.replace(b"sys.argv[1]", b"400")), "ml.t3.medium")

    outcome = run_training_job("hog-2", request, store, work_dir, io.StringIO())

    # The image's toolkit starts the script itself: one killed with SIGKILL exited with -9.
    assert outcome.failure_reason.startswith(
        'AlgorithmError: ExecuteUserScriptError:\nExitCode -9\nErrorMessage ""\nCommand "'
    )
    assert outcome.failure_reason.endswith('", exit code: 1')
    assert outcome.properties["TrainingJobStatus"] == "Failed"
    assert "over the 0.25 GiB of ml.t3.medium" in (work_dir / "hog-2" / "logs.txt").read_text()


HOG_OUT_OF_THE_GROUP = _script(
    """
    import subprocess, sys
    hog = (f"held = bytearray(4096 << 20); held[::4096] = b'x' * len(range(0, len(held), 4096)); "
           "print('holding', flush=True); import time; time.sleep(3)")
    subprocess.run([sys.executable, "-c", hog], start_new_session=True, check=True)  # out of the job's group
    """
)


def test_a_process_that_leaves_the_jobs_group_is_still_held_to_its_instances_memory(
    store: ObjectStore, work_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if isolation_unavailable():
        pytest.skip("this kernel does not let users create namespaces")
    monkeypatch.setitem(INSTANCES, "ml.t3.medium", Instance("ml.t3.medium", 2, 0.25))
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    request = _instance(_processing_request(store, HOG_OUT_OF_THE_GROUP), "ml.t3.medium")

    outcome = run_processing_job("hog-3", request, store, work_dir, io.StringIO(),
                                 confinement=StateLayout(tmp_path / "state").confinement())

    assert outcome.status == "Failed"
    assert outcome.failure_reason == "AlgorithmError: See job logs for more information"
    log = (work_dir / "hog-3" / "logs.txt").read_text()
    assert "holding" not in log
    assert "over the 0.25 GiB of ml.t3.medium" in log


def test_a_job_within_its_instances_memory_runs_as_before(store: ObjectStore, work_dir: Path) -> None:
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    request = _instance(_processing_request(store, HOG_SCRIPT, arguments=["256"]), "ml.t3.medium")

    outcome = run_processing_job("fits-1", request, store, work_dir, io.StringIO())

    assert (outcome.status, outcome.failure_reason) == ("Succeeded", "")
    assert "holding 256 MiB" in (work_dir / "fits-1" / "logs.txt").read_text()


def test_a_training_script_is_told_its_instances_vcpus(store: ObjectStore, work_dir: Path) -> None:
    script = _script(
        """
        import json, os
        resources = json.loads(os.environ["SM_RESOURCE_CONFIG"])
        told = (os.environ["SM_NUM_CPUS"], json.loads(os.environ["SM_TRAINING_ENV"])["num_cpus"],
                resources["current_instance_type"], os.environ["SM_CURRENT_INSTANCE_TYPE"])
        assert told == ("36", 36, "ml.c5.9xlarge", "ml.c5.9xlarge"), told
        """
    )
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"x\n")
    request = _instance(_training_request(store, script), "ml.c5.9xlarge")

    outcome = run_training_job("cpus-1", request, store, work_dir, io.StringIO())

    assert (outcome.status, outcome.failure_reason) == ("Succeeded", "")


@pytest.mark.parametrize(
    ("source", "hinted"),
    [
        ("open('/opt/ml/processing/input/data/train.csv')", True),  # as AWS's examples write it
        ("import os\nopen(os.path.join(os.environ['SAGEMAKER_BASE_DIR'], 'missing.csv'))", False),
        ("raise SystemExit('/opt/ml/processing/input is where the data is')", False),
    ],
)
@pytest.mark.parametrize("isolated", [False, True])  # unconfined, with the network or without
def test_a_job_failing_on_a_hard_coded_opt_ml_path_is_told_where_opt_ml_is_here(
    store: ObjectStore, work_dir: Path, source: str, hinted: bool, isolated: bool
) -> None:
    """An unconfined job has no /opt/ml of its own, also when it is taken off the network (which
    puts it in namespaces, but shows it nothing): it is told where its /opt/ml is."""
    if isolated and isolation_unavailable():
        pytest.skip("this kernel does not let users create namespaces: no job can be network-isolated")
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    request = _processing_request(store, _script(source),
                                  NetworkConfig={"EnableNetworkIsolation": isolated})

    outcome = run_processing_job("literal-1", request, store, work_dir, io.StringIO())

    assert outcome.status == "Failed" and outcome.failure_reason.startswith("AlgorithmError: ")
    assert "local-sagemaker" not in outcome.failure_reason  # SageMaker's words, as before
    base = work_dir / "literal-1" / "opt" / "ml"
    hint = f"[local-sagemaker] a path under /opt/ml was not found: a local job's /opt/ml is {base}, "
    assert (hint in (work_dir / "literal-1" / "logs.txt").read_text()) is hinted


LITERAL_PATHS = _script(
    """
    from pathlib import Path

    rows = Path("/opt/ml/processing/input/data/train.csv").read_text()  # as AWS's examples write it
    Path("/opt/ml/processing/train/found.txt").write_text("read " + rows)
    """
)


@pytest.fixture
def opt_ml_shown(tmp_path: Path) -> StateLayout:
    """A state whose confined jobs find their base folder at /opt/ml (skipped where they cannot)."""
    layout = StateLayout(tmp_path / "state")
    if not shows_opt_ml(layout.confinement()):
        pytest.skip("this machine cannot show a job its folder at /opt/ml (no namespaces, or no /opt)")
    return layout


def test_a_confined_job_finds_its_paths_at_opt_ml_as_a_container_does(
    store: ObjectStore, opt_ml_shown: StateLayout
) -> None:
    """A script that reads and writes /opt/ml/... as written, as AWS's examples do, runs here as in
    a container; the machine's /opt is not the job's to see or change."""
    layout, machine_had_opt_ml = opt_ml_shown, Path("/opt/ml").exists()
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    outcome = run_processing_job("literal-1", _processing_request(store, LITERAL_PATHS), store, layout.jobs,
                                 io.StringIO(), confinement=layout.confinement())
    assert (outcome.status, outcome.failure_reason) == ("Succeeded", "")
    assert store.get_bytes(f"{BUCKET}/runs/x/train/found.txt") == b"read x\n"
    assert Path("/opt/ml").exists() is machine_had_opt_ml


def test_a_confined_training_job_saves_its_model_at_opt_ml_model_as_written(
    store: ObjectStore, opt_ml_shown: StateLayout
) -> None:
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"x\n")
    script = _script(
        """
        from pathlib import Path

        rows = Path("/opt/ml/input/data/train/train.csv").read_text()
        Path("/opt/ml/model/literal.txt").write_text("trained on " + rows)
        """
    )
    outcome = run_training_job("literal-1", _training_request(store, script), store, opt_ml_shown.jobs,
                               io.StringIO(), confinement=opt_ml_shown.confinement())
    assert (outcome.status, outcome.failure_reason) == ("Succeeded", "")
    model = _members(store.get_bytes(f"{BUCKET}/models/literal-1/output/model.tar.gz"))
    assert model["literal.txt"] == b"trained on x\n"


def test_a_confined_job_failing_on_a_missing_opt_ml_path_gets_no_hint_about_where_opt_ml_is(
    store: ObjectStore, opt_ml_shown: StateLayout
) -> None:
    """Its /opt/ml is where a container's is: the file is missing there as it would be on SageMaker."""
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    request = _processing_request(store, _script("open('/opt/ml/processing/input/data/missing.csv')"))
    outcome = run_processing_job("missing-1", request, store, opt_ml_shown.jobs, io.StringIO(),
                                 confinement=opt_ml_shown.confinement())
    logs = (opt_ml_shown.jobs / "missing-1" / "logs.txt").read_text()
    assert outcome.status == "Failed" and "missing.csv" in logs
    assert "a path under /opt/ml was not found" not in logs


CONTAINER_VIEW_SCRIPT = _script(
    """
    import json, os, sys, tempfile
    from pathlib import Path

    config = json.loads(Path("/opt/ml/config/processingjobconfig.json").read_text())
    seen = {
        "argv": sys.argv, "file": __file__, "cwd": os.getcwd(), "tmp": tempfile.gettempdir(),
        "environment": dict(os.environ),
        "output path": config["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["LocalPath"],
    }
    Path("/opt/ml/processing/train/seen.json").write_text(json.dumps(seen))
    open("/opt/ml/processing/input/data/missing.csv")
    """
)


def test_a_confined_job_is_told_the_paths_a_container_is_told(
    store: ObjectStore, opt_ml_shown: StateLayout
) -> None:
    """Its arguments, environment, config file, working directory and scratch name /opt/ml and /tmp
    as SageMaker's do, not the job's folder on this machine, so a reason or an artifact that names a
    path reads the same on both targets."""
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    request = _processing_request(
        store, CONTAINER_VIEW_SCRIPT, arguments=["--base", "/opt/ml"],
        Environment={"WHERE": "/opt/ml/processing/train"},
    )
    outcome = run_processing_job("view-1", request, store, opt_ml_shown.jobs, io.StringIO(),
                                 confinement=opt_ml_shown.confinement())

    logs = (opt_ml_shown.jobs / "view-1" / "logs.txt").read_text()
    assert outcome.status == "Failed"
    assert "No such file or directory: '/opt/ml/processing/input/data/missing.csv'" in logs
    seen = json.loads((opt_ml_shown.jobs / "view-1" / "opt/ml/processing/train/seen.json").read_text())
    assert seen["argv"] == [f"{CODE_DIR}/step.py", "--base", "/opt/ml"]
    assert (seen["file"], seen["cwd"], seen["tmp"]) == (f"{CODE_DIR}/step.py", "/opt/ml", "/tmp")
    assert seen["output path"] == "/opt/ml/processing/train"
    environment = seen["environment"]
    assert environment["WHERE"] == "/opt/ml/processing/train"
    assert "SAGEMAKER_BASE_DIR" not in environment and "TMPDIR" not in environment


def test_a_confined_training_job_is_told_the_paths_the_toolkit_gives(
    store: ObjectStore, opt_ml_shown: StateLayout
) -> None:
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"x\n")
    script = _script(
        """
        import json, os
        from pathlib import Path

        seen = {"cwd": os.getcwd(), "environment": dict(os.environ)}
        Path(os.environ["SM_MODEL_DIR"], "seen.json").write_text(json.dumps(seen))
        """
    )
    outcome = run_training_job("view-1", _training_request(store, script), store, opt_ml_shown.jobs,
                               io.StringIO(), confinement=opt_ml_shown.confinement())
    assert (outcome.status, outcome.failure_reason) == ("Succeeded", "")
    seen = json.loads(_members(store.get_bytes(f"{BUCKET}/models/view-1/output/model.tar.gz"))["seen.json"])
    environment = seen["environment"]
    assert seen["cwd"] == "/opt/ml/code"
    assert (environment["SM_MODEL_DIR"], environment["SM_CHANNEL_TRAIN"]) == (
        "/opt/ml/model", "/opt/ml/input/data/train"
    )
    channels = json.loads(environment["SM_TRAINING_ENV"])["channel_input_dirs"]
    assert channels == {"train": "/opt/ml/input/data/train"}
    assert "SAGEMAKER_BASE_DIR" not in environment and "TMPDIR" not in environment


@pytest.mark.parametrize(
    ("opened", "hinted"),
    [
        ("{home}/reviews.csv", True),  # the user's own file, which a container would not have
        ("{base}/processing/input/data/missing.csv", False),  # its own folder, inside the home
    ],
)
def test_a_job_does_not_see_the_users_home_folder_and_is_told_so(
    store: ObjectStore, checkout_in_home: StateLayout, opened: str, hinted: bool
) -> None:
    """A step that read `~/reviews.csv` ran green here and fails in a SageMaker container."""
    layout, home = checkout_in_home, Path.home()
    (home / "reviews.csv").write_text("great,1\n")
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    base = layout.jobs / "home-1" / "opt" / "ml"
    request = _processing_request(store, _script(f"open({opened.format(home=home, base=base)!r})"))

    outcome = run_processing_job(
        "home-1", request, store, layout.jobs, io.StringIO(), confinement=layout.confinement()
    )

    logs = (layout.jobs / "home-1" / "logs.txt").read_text()
    assert outcome.status == "Failed" and "FileNotFoundError" in logs
    hint = f"[local-sagemaker] a path under {home} was not found: a local job does not see it"
    assert (hint in logs) is hinted


CPU_COUNT_SCRIPT = _script(
    """
    import os, threading
    seen = [len(os.sched_getaffinity(0))]
    thread = threading.Thread(target=lambda: seen.append(len(os.sched_getaffinity(0))))
    thread.start()
    thread.join()
    print("cpus", *seen)
    """
)


@pytest.mark.skipif(len(cpus.MACHINE_CPUS) < 2, reason="holding a job to fewer CPUs needs two or more")
@pytest.mark.parametrize("kind", ["processing", "training"])
def test_a_job_runs_on_as_many_of_this_machines_cpus_as_its_instance_has_vcpus(
    store: ObjectStore, work_dir: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """An instance with fewer vCPUs than this machine has CPUs: the script and its threads see that
    many, as they would on the instance; the server's own threads keep every CPU."""
    monkeypatch.setitem(INSTANCES, "ml.t3.medium", Instance("ml.t3.medium", 1, 4))
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    store.put_bytes(f"{BUCKET}/runs/x/train/train.csv", b"x\n")
    if kind == "processing":
        request = _instance(_processing_request(store, CPU_COUNT_SCRIPT), "ml.t3.medium")
        outcome = run_processing_job("one-cpu", request, store, work_dir, io.StringIO())
    else:
        request = _instance(_training_request(store, CPU_COUNT_SCRIPT), "ml.t3.medium")
        outcome = run_training_job("one-cpu", request, store, work_dir, io.StringIO())

    assert (outcome.status, outcome.failure_reason) == ("Succeeded", "")
    assert "cpus 1 1\n" in (work_dir / "one-cpu" / "logs.txt").read_text()
    assert os.sched_getaffinity(0) == set(cpus.MACHINE_CPUS)


def test_a_job_on_an_instance_with_as_many_vcpus_as_this_machine_has_cpus_sees_them_all(
    store: ObjectStore, work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(INSTANCES, "ml.t3.medium", Instance("ml.t3.medium", len(cpus.MACHINE_CPUS), 4))
    store.put_bytes(f"{BUCKET}/data/train.csv", b"x\n")
    request = _instance(_processing_request(store, CPU_COUNT_SCRIPT), "ml.t3.medium")

    outcome = run_processing_job("all-cpus", request, store, work_dir, io.StringIO())

    assert outcome.status == "Succeeded"
    every = len(cpus.MACHINE_CPUS)
    assert f"cpus {every} {every}\n" in (work_dir / "all-cpus" / "logs.txt").read_text()


@pytest.mark.parametrize(
    ("kind", "instance_type", "where"),
    [
        ("processing", "ml.p3.2xlarge", "ProcessingResources.ClusterConfig.InstanceType"),
        ("training", "ml.g4dn.xlarge", "ResourceConfig.InstanceType"),
        ("training", "ml.inf1.xlarge", "ResourceConfig.InstanceType"),
    ],
)
def test_an_instance_type_the_local_target_does_not_reproduce_fails_the_job_before_it_runs(
    store: ObjectStore, work_dir: Path, kind: str, instance_type: str, where: str
) -> None:
    never = _script("raise SystemExit('this job should not have run')")
    if kind == "processing":
        request = _instance(_processing_request(store, never), instance_type)
        outcome = run_processing_job("gpu-1", request, store, work_dir, io.StringIO())
    else:
        request = _instance(_training_request(store, never), instance_type)
        outcome = run_training_job("gpu-1", request, store, work_dir, io.StringIO())

    assert outcome.status == "Failed"
    assert outcome.failure_reason == (
        f"ValidationException: {where} {instance_type} is not an instance type the local target reproduces: "
        f"{RUNS_ON}"
    )
    assert not (work_dir / "gpu-1").exists()


def test_the_instance_table_holds_sagemakers_cpu_types_with_their_memory_and_vcpus() -> None:
    model = botocore.session.get_session().get_service_model("sagemaker")
    offered = {
        *model.shape_for("ProcessingInstanceType").enum, *model.shape_for("TrainingInstanceType").enum,
        *model.shape_for("ProductionVariantInstanceType").enum,
    }
    assert set(INSTANCES) <= offered
    # Every type it lacks is a GPU, an accelerator or a Graviton (arm64: c6g, m7gd, r8g...).
    not_x86_cpu = re.compile(r"ml\.(g\d|p\d|inf\d|trn\d|dl\d|[cmr]\d+g)")
    assert {name for name in offered - set(INSTANCES) if not not_x86_cpu.match(name)} == set()
    assert {"ml.g5.xlarge", "ml.p4d.24xlarge", "ml.inf2.xlarge", "ml.c7g.xlarge", "ml.m6gd.large"} <= offered
    specifications = {  # AWS's instance specifications: vCPUs, GiB
        "ml.t3.medium": (2, 4), "ml.t3.2xlarge": (8, 32), "ml.m5.large": (2, 8), "ml.m5.24xlarge": (96, 384),
        "ml.m4.10xlarge": (40, 160), "ml.c5.xlarge": (4, 8), "ml.c5.9xlarge": (36, 72),
        "ml.r5.large": (2, 16), "ml.r6i.32xlarge": (128, 1024), "ml.c7i.large": (2, 4), "ml.c5.large": (2, 4),
        "ml.t2.large": (2, 8), "ml.c4.large": (2, 3.75), "ml.c4.8xlarge": (36, 60),
        "ml.c5n.xlarge": (4, 10.5), "ml.c5n.18xlarge": (72, 192), "ml.m5d.xlarge": (4, 16),
        "ml.c5d.9xlarge": (36, 72),
        "ml.c6in.32xlarge": (128, 256), "ml.m7i-flex.large": (2, 8), "ml.c8i.96xlarge": (384, 768),
        "ml.r8i-flex.16xlarge": (64, 512), "ml.m8i.96xlarge": (384, 1536),
    }
    for name, (vcpus, gib) in specifications.items():
        assert (INSTANCES[name].vcpus, INSTANCES[name].memory_gib) == (vcpus, gib), name


def test_a_training_description_keeps_what_the_request_set_and_fills_in_the_rest() -> None:
    request = {
        "EnableNetworkIsolation": True,
        "InputDataConfig": [{"ChannelName": "train", "CompressionType": "Gzip"}, {"ChannelName": "test"}],
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/out", "KmsKeyId": "alias/models"},
        "AlgorithmSpecification": {"TrainingInputMode": "File", "EnableSageMakerMetricsTimeSeries": True},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }

    described = described_request(request)

    assert [described[flag] for flag in DESCRIBED_FLAGS] == [True, False, False]
    assert [channel["CompressionType"] for channel in described["InputDataConfig"]] == ["Gzip", "None"]
    assert described["OutputDataConfig"]["KmsKeyId"] == "alias/models"
    assert described["AlgorithmSpecification"]["EnableSageMakerMetricsTimeSeries"] is True
    assert described["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 0
    assert described["ProfilingStatus"] == "Disabled"
    assert described["OutputDataConfig"]["CompressionType"] == "GZIP"
    assert "CompressionType" not in request["InputDataConfig"][1]  # the request itself is left as it was
    assert "KeepAlivePeriodInSeconds" not in request["ResourceConfig"]

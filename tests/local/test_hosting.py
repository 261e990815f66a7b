"""Endpoints with real model server processes: deploy, invoke, capture, blue/green, delete."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import pytest
from buckets import with_buckets
from processes import pid_alive, processes_with
from waiting import wait_until

from pipelines import REPO_ROOT
from pipelines.local.hosting import model_process
from pipelines.local.hosting.capture import CaptureWriter
from pipelines.local.hosting.endpoints import (
    CaptureSpec,
    EndpointBusy,
    EndpointNotReady,
    Endpoints,
    VariantNotFound,
)
from pipelines.local.hosting.instances import LEAST_OUTSTANDING_REQUESTS
from pipelines.local.hosting.model_process import INSTANCE_PROCESSES, RANDOM, InvokeResult, VariantSpec
from pipelines.local.hosting.prefork import WORKERS_VARIABLE
from pipelines.local.jobs.log_events import now_ms, read_events
from pipelines.local.jobs.log_groups import LogGroups
from pipelines.local.layout import StateLayout
from pipelines.local.storage.objects import ObjectStore
from pipelines.local.system import cpus
from pipelines.local.system.isolation import isolation_unavailable, shows_opt_ml
from pipelines.local.system.memory import MemoryLimit

T = TypeVar("T")
WAIT_SECONDS = 90.0  # above Endpoints' own 60 s health-check limit
JSON = "application/json"

INFERENCE = (Path(__file__).parent / "data" / "stub_inference.py").read_text()

# Starts an Endpoints registry with one endpoint, prints "<status> <model server pid>", then idles.
PARENT = """
import sys, threading, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from pipelines.local.hosting.endpoints import Endpoints
from pipelines.local.hosting.model_process import VariantSpec


class Store:
    def __init__(self, root):
        self.root = Path(root)

    def path_for(self, uri):
        bucket, _, key = uri[len("s3://"):].partition("/")
        return self.root / bucket / key


hosting = Endpoints(Path(sys.argv[3]), Store(sys.argv[2]))
done, calls = threading.Event(), []
hosting.deploy("ep", "d1", [VariantSpec("AllTraffic", sys.argv[4], {})], None,
               lambda *args: (calls.append(args), done.set()))
done.wait(90)
state = calls[0][1] if calls else "Timeout"
print(state, hosting.server_pids("ep").get("AllTraffic", 0), flush=True)
time.sleep(120)
"""


class DirStore:
    """The part of the object store that hosting and capture use: s3://b/k -> root/b/k, in a store
    where every bucket exists."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, uri: str) -> Path:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return self.root / bucket / key

    def bucket_exists(self, name: str) -> bool:
        return True


class StatusLog:
    """Collects on_status calls; tests wait (bounded) for a number of them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, str | None]] = []
        self._changed = threading.Condition()

    def __call__(self, name: str, status: str, reason: str, serving: str | None) -> None:
        with self._changed:
            self.calls.append((name, status, reason, serving))
            self._changed.notify_all()

    def wait(self, count: int) -> list[tuple[str, str, str, str | None]]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.calls) >= count, WAIT_SECONDS)
            assert len(self.calls) >= count, f"status calls so far: {self.calls}"
            return list(self.calls)


def model_archive(store: DirStore, uri: str, version: str, extra: dict[str, bytes] | None = None):
    """Write a model.tar.gz holding model.txt and code/inference.py; returns the URI."""
    path = store.path_for(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    files = {"model.txt": version.encode(), "code/inference.py": INFERENCE.encode()}
    files.update(extra or {})
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return uri


def deploy_alone(
    layout: StateLayout, store: DirStore, uri: str | None, environment: dict[str, str] | None = None,
    confined: bool = True,
) -> tuple[str, str, dict[str, Any]]:
    """Deploy `uri` (None: no model data) with the model's `environment` as endpoint `ep`, confined
    as the layout confines model servers (or not at all), then shut down: (state, reason, the
    answer to one invocation when it was InService)."""
    hosting = Endpoints(layout.endpoints, store, layout.confinement() if confined else None)
    status = StatusLog()
    try:
        hosting.deploy("ep", "d1", [VariantSpec("AllTraffic", uri, environment or {})], None, status)
        (_, state, reason, _), = status.wait(1)
        answered = answer(hosting.invoke("ep", b'"x"', JSON, JSON)) if state == "InService" else {}
    finally:
        hosting.shutdown()
    return state, reason, answered


def variant(uri: str, name: str = "AllTraffic") -> list[VariantSpec]:
    return [VariantSpec(name, uri, {})]


def instances(uri: str, count: int, routing: str = LEAST_OUTSTANDING_REQUESTS) -> list[VariantSpec]:
    """One variant of `count` instances, each a model server with one worker (two processes)."""
    return [VariantSpec("AllTraffic", uri, {WORKERS_VARIABLE: "1"}, instance_count=count, routing=routing)]


def answer(result: InvokeResult) -> dict:
    assert result.status == 200, result
    return json.loads(result.body)


@pytest.fixture
def store(tmp_path: Path) -> DirStore:
    return DirStore(tmp_path / "store")


@pytest.fixture
def hosting(tmp_path: Path, store: DirStore) -> Iterator[Endpoints]:
    running = Endpoints(tmp_path / "state" / "endpoints", store)
    yield running
    running.shutdown()


def deployed(hosting: Endpoints, store: DirStore, version: str = "v1", **kwargs) -> StatusLog:
    status = StatusLog()
    uri = model_archive(store, f"s3://models/{version}/model.tar.gz", version)
    hosting.deploy("ep", "d1", variant(uri), kwargs.get("capture"), status)
    assert status.wait(1) == [("ep", "InService", "", "d1")]
    return status


def deployed_holding_requests(hosting: Endpoints, store: DirStore, tmp_path: Path) -> Path:
    """Deploy v1 so that a "block" request waits for `<flags>/release`; returns the flags folder."""
    flags = tmp_path / "flags"
    flags.mkdir()
    status = StatusLog()
    uri = model_archive(store, "s3://models/v1/model.tar.gz", "v1")
    hosting.deploy("ep", "d1", [VariantSpec("AllTraffic", uri, {"TEST_FLAG_DIR": str(flags)})], None, status)
    assert status.wait(1) == [("ep", "InService", "", "d1")]
    return flags


def test_deploy_then_invoke_and_capture_successful_requests(
    hosting: Endpoints, store: DirStore, tmp_path: Path
) -> None:
    capture = CaptureSpec("s3://bucket/capture", 100.0, json_types=(JSON,))
    deployed(hosting, store, capture=capture)
    model_dir = tmp_path / "state" / "endpoints" / "ep" / "d1" / "opt" / "ml" / "model"
    assert (model_dir / "model.txt").read_text() == "v1"

    bodies = [json.dumps(f"review {i}").encode() for i in range(3)]
    for number, body in enumerate(bodies):
        result = hosting.invoke("ep", body, JSON, JSON, inference_id=f"order-{number}" if number else None)
        assert answer(result)["version"] == "v1" and result.variant_name == "AllTraffic"
    rejected = hosting.invoke("ep", b"a,b", "text/csv", JSON)
    assert rejected.status == 415 and json.loads(rejected.body)["error"] == "cannot read text/csv"

    root = store.root / "bucket" / "capture" / "ep" / "AllTraffic"
    files = sorted(root.rglob("*.jsonl"))
    assert len(files) == 1
    layout = r"\d{4}/\d{2}/\d{2}/\d{2}/\d{2}-\d{2}-\d{3}-[0-9a-f-]{36}\.jsonl"
    assert re.fullmatch(layout, files[0].relative_to(root).as_posix())
    records = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert len(records) == 3  # the 415 was not captured
    for body, record in zip(bodies, records, strict=True):
        assert record["eventVersion"] == "0"
        assert record["captureData"]["endpointInput"] == {
            "observedContentType": JSON,
            "mode": "INPUT",
            "data": body.decode(),
            "encoding": "JSON",
        }
        output = record["captureData"]["endpointOutput"]
        assert (output["mode"], output["encoding"]) == ("OUTPUT", "JSON")
        assert json.loads(output["data"]) == {"version": "v1", "echo": json.loads(body)}
        when = record["eventMetadata"]["inferenceTime"]
        # SageMaker's form, to the second (docs: model-monitor-data-capture-endpoint.md)
        hour = datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ").strftime("%Y/%m/%d/%H")
        assert files[0].relative_to(root).as_posix().startswith(hour)
    assert len({r["eventMetadata"]["eventId"] for r in records}) == 3
    assert [r["eventMetadata"].get("inferenceId") for r in records] == [None, "order-1", "order-2"]


def test_a_model_server_starts_with_the_image_environment_not_the_servers(
    hosting: Endpoints, store: DirStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"PYTHONPATH": "/somewhere/else", "GITHUB_TOKEN": "not for models",
                        "SAGEMAKER_PROGRAM": "server.py", "TZ": "Asia/Tokyo"}.items():
        monkeypatch.setenv(name, value)
    deployed(hosting, store)

    seen = answer(hosting.invoke("ep", json.dumps("environment").encode(), JSON, JSON))["environment"]

    variant_dir = tmp_path / "state" / "endpoints" / "ep" / "d1"
    assert "PYTHONPATH" not in seen  # the model server's own code: gone once it is loaded
    assert (seen["HOME"], seen["TMPDIR"]) == (str(variant_dir / "home"), str(variant_dir / "tmp"))
    assert (seen["LANG"], seen["LC_ALL"], seen["TZ"]) == ("C.UTF-8", "C.UTF-8", "UTC")
    assert seen["PYTHONDONTWRITEBYTECODE"] == seen["PYTHONUNBUFFERED"] == "1"
    assert "GITHUB_TOKEN" not in seen and "SAGEMAKER_PROGRAM" not in seen


def test_inference_code_imports_the_images_packages_and_what_its_requirements_file_names(
    hosting: Endpoints, store: DirStore
) -> None:
    """An inference.py that imports the SageMaker SDK or moto fails in the image's serving stack:
    here too (jobs/image_python.py); its requirements.txt, which the serving toolkit installs, adds."""
    status = StatusLog()
    requirements = {"code/requirements.txt": b"vaderSentiment\n"}
    uri = model_archive(store, "s3://models/v1/model.tar.gz", "v1", requirements)
    hosting.deploy("ep", "d1", variant(uri), None, status)
    assert status.wait(1)[0][1] == "InService"
    names = ["numpy", "sklearn", "boto3", "vaderSentiment", "sagemaker", "moto", "pytest", "rich",
             "steps", "pipelines"]

    found = answer(hosting.invoke("ep", json.dumps({"imports": names}).encode(), JSON, JSON))["echo"]

    assert found == {"numpy": True, "sklearn": True, "boto3": True, "vaderSentiment": True,
                     "sagemaker": False, "moto": False, "pytest": False, "rich": False,
                     "steps": False, "pipelines": False}


def test_inference_code_that_imports_the_projects_own_code_fails_to_deploy_and_says_why(
    hosting: Endpoints, store: DirStore
) -> None:
    """No serving toolkit module is named `steps`: a handler that reached into the project instead
    of shipping what it needs in code/ would be InService here and fail on SageMaker."""
    status = StatusLog()
    handler = b"from steps.scorer import Scorer\n\n\ndef model_fn(model_dir):\n    return None\n"
    reaching = {"code/inference.py": handler}
    uri = model_archive(store, "s3://models/v1/model.tar.gz", "v1", reaching)

    hosting.deploy("ep", "d1", variant(uri), None, status)

    (_, state, reason, _), = status.wait(1)
    assert state == "Failed" and "No module named 'steps'" in reason


def test_inference_code_that_reads_the_users_home_folder_fails_to_deploy_and_says_why(
    store: DirStore, checkout_in_home: StateLayout
) -> None:
    """A model_fn that opened `~/vocabulary.txt` instead of shipping it in model.tar.gz was InService
    here; in a SageMaker container the file is not there."""
    layout, home = checkout_in_home, Path.home()
    (home / "vocabulary.txt").write_text("great\n")
    handler = f"def model_fn(model_dir):\n    return open({str(home / 'vocabulary.txt')!r}).read()\n"
    uri = model_archive(store, "s3://models/v1/model.tar.gz", "v1", {"code/inference.py": handler.encode()})
    state, reason, _ = deploy_alone(layout, store, uri)

    assert state == "Failed" and "FileNotFoundError" in reason
    assert f"(a path under {home} was not found: a model server does not see it" in reason


def deployed_confined(
    store: DirStore, layout: StateLayout, inference: str, look: Callable[[], T]
) -> tuple[str, str, T]:
    """Deploy a model whose code is `inference`, confined as `layout` confines model servers:
    (its state, the reason, what `look` finds while it is up), then shut hosting down."""
    uri = model_archive(store, "s3://models/v1/model.tar.gz", "v1", {"code/inference.py": inference.encode()})
    hosting = Endpoints(layout.endpoints, store, layout.confinement())
    status = StatusLog()
    try:
        hosting.deploy("ep", "d1", variant(uri), None, status)
        (_, state, reason, _), = status.wait(1)
        return state, reason, look()
    finally:
        hosting.shutdown()


@pytest.mark.parametrize(("folder", "on_disk"), [("/tmp", True), ("/var/tmp", True), ("/dev/shm", False)])
def test_a_model_servers_tmp_is_its_own_not_the_machines(
    store: DirStore, tmp_path: Path, folder: str, on_disk: bool
) -> None:
    """Inference code that wrote /tmp (or /var/tmp, or /dev/shm) wrote the machine's, shared by
    every process (and read what others left there); a container has all three of its own: folders
    of its instance's directory, and a tmpfs for /dev/shm."""
    if isolation_unavailable():
        pytest.skip(f"this kernel lets no user create namespaces: a model server sees the machine's {folder}")
    name = f"mark-{uuid.uuid4().hex}"
    machines = Path(folder) / name
    machines.write_text("the machine's")
    peeking = INFERENCE + f"""
_stub_model_fn = model_fn


def model_fn(model_dir):
    mark = Path({folder!r}) / {name!r}
    if mark.exists():
        raise RuntimeError("saw " + mark.read_text() + " /tmp")
    mark.write_text("the model server's")
    return _stub_model_fn(model_dir)
"""
    layout = StateLayout(tmp_path / "state")
    try:
        state, reason, written = deployed_confined(
            store, layout, peeking, lambda: [path.read_text() for path in layout.endpoints.rglob(name)]
        )
    finally:
        on_the_machine = machines.read_text()
        machines.unlink()
    assert (state, reason) == ("InService", "")
    assert on_the_machine == "the machine's"
    assert written == (["the model server's"] if on_disk else [])  # in its instance's own folder


def test_a_process_inference_code_leaves_running_ends_with_its_model_server(
    store: DirStore, tmp_path: Path
) -> None:
    if isolation_unavailable():
        pytest.skip("this kernel lets no user create namespaces")
    marker = f"300.{os.getpid()}{uuid.uuid4().int % 10**6}"  # sleep's argument, found by it
    leaving = INFERENCE + f"""
_stub_model_fn = model_fn


def model_fn(model_dir):
    import subprocess
    subprocess.Popen(["sleep", {marker!r}], start_new_session=True)  # out of the server's group
    return _stub_model_fn(model_dir)
"""
    state, reason, left_while_serving = deployed_confined(
        store, StateLayout(tmp_path / "state"), leaving, lambda: processes_with(marker)
    )
    assert (state, reason) == ("InService", "")
    assert left_while_serving, "model_fn started the process"
    wait_until(lambda: processes_with(marker) == [], timeout=30, what="the process to end with its server")


@pytest.fixture
def opt_ml_shown(tmp_path: Path) -> StateLayout:
    """A state whose confined model servers find their folder at /opt/ml (skipped where they cannot)."""
    layout = StateLayout(tmp_path / "state")
    if not shows_opt_ml(layout.confinement()):
        pytest.skip("this machine cannot show a model server its folder at /opt/ml")
    return layout


def checked_inference(check: str) -> bytes:
    """The stub handler, its model_fn first running `check` (lines of a function body, which raise
    when the container's view is not what it should be)."""
    body = textwrap.indent(textwrap.dedent(check).strip(), "    ")
    return (INFERENCE + f"""
_stub_model_fn = model_fn


def model_fn(model_dir):
{body}
    return _stub_model_fn(model_dir)
""").encode()


def test_inference_code_is_given_opt_ml_model_and_finds_the_model_there(
    store: DirStore, opt_ml_shown: StateLayout
) -> None:
    """model_fn is called with /opt/ml/model, as in a container, not the instance's folder on this
    machine; one that opens /opt/ml/model/... as written, as some inference code does, finds the
    model there; the server's scratch is its own /tmp, with no TMPDIR, as in a container."""
    literal = checked_inference(
        """
        import os, tempfile
        if (model_dir, tempfile.gettempdir(), "TMPDIR" in os.environ) != ("/opt/ml/model", "/tmp", False):
            raise RuntimeError(f"model_dir {model_dir}, scratch {tempfile.gettempdir()}")
        if Path("/opt/ml/model/model.txt").read_text() != Path(model_dir, "model.txt").read_text():
            raise RuntimeError("/opt/ml/model is another model")
        """
    )
    uri = model_archive(store, "s3://models/v1/model.tar.gz", "v1", {"code/inference.py": literal})
    state, reason, answered = deploy_alone(opt_ml_shown, store, uri)
    assert (state, reason) == ("InService", "")
    assert answered["version"] == "v1"


@pytest.mark.parametrize("confined", [True, False], ids=["confined", "unconfined"])
def test_inference_code_from_s3_is_found_at_opt_ml_code_as_the_toolkit_puts_it(
    store: DirStore, tmp_path: Path, confined: bool
) -> None:
    """A SAGEMAKER_SUBMIT_DIRECTORY in S3 is downloaded to /opt/ml/code in a container, beside
    /opt/ml/model; a handler that reads a file beside itself, or logs where it is, sees that path,
    not a folder on this machine (unconfined, the folder beside the model's). The variable itself
    still names the S3 URI, as the toolkit leaves it."""
    layout = StateLayout(tmp_path / "state")
    if confined and not shows_opt_ml(layout.confinement()):
        pytest.skip("this machine cannot show a model server its folder at /opt/ml")
    code = "s3://models/code/sourcedir.tar.gz"
    where = '"/opt/ml/code"' if confined else 'Path(model_dir).parent / "code"'
    located = checked_inference(
        f"""
        import os
        if Path(__file__).parent != Path({where}):
            raise RuntimeError(f"the inference code is at {{__file__}}, the model at {{model_dir}}")
        if os.environ["SAGEMAKER_SUBMIT_DIRECTORY"] != "{code}":
            raise RuntimeError(f"SAGEMAKER_SUBMIT_DIRECTORY is {{os.environ['SAGEMAKER_SUBMIT_DIRECTORY']}}")
        """
    )
    uri = model_archive(store, "s3://models/v1/model.tar.gz", "v1")
    model_archive(store, code, "code", {"inference.py": located})
    environment = {"SAGEMAKER_SUBMIT_DIRECTORY": code}
    state, reason, answered = deploy_alone(layout, store, uri, environment, confined=confined)
    assert (state, reason) == ("InService", "")
    assert answered["version"] == "v1"


def test_a_model_without_model_data_serves_its_inference_code_from_s3_with_opt_ml_model_empty(
    store: DirStore, tmp_path: Path
) -> None:
    """A model with no ModelDataUrl: the container starts with an empty /opt/ml/model, and its
    handlers come from the SAGEMAKER_SUBMIT_DIRECTORY the toolkit downloads."""
    code = "s3://models/code/sourcedir.tar.gz"
    handler = INFERENCE + """

def model_fn(model_dir):
    found = sorted(os.listdir(model_dir))
    if found:
        raise RuntimeError(f"{model_dir} holds {found}")
    return {"version": "no model data"}
"""
    model_archive(store, code, "code", {"inference.py": handler.encode()})
    layout = StateLayout(tmp_path / "state")
    state, reason, answered = deploy_alone(layout, store, None, {"SAGEMAKER_SUBMIT_DIRECTORY": code})
    assert (state, reason) == ("InService", "")
    assert answered["version"] == "no model data"


def test_inference_code_that_ships_a_package_named_like_the_model_servers_own_gets_its_own(
    hosting: Endpoints, store: DirStore
) -> None:
    """The model server is this project's `pipelines` package; a handler's own `pipelines` package
    (a common name) must not resolve to it, as no serving toolkit module would shadow it on SageMaker."""
    status = StatusLog()
    own = {"code/pipelines/__init__.py": b"", "code/pipelines/features.py": b"ANSWER = 42\n"}
    uri = model_archive(store, "s3://models/v1/model.tar.gz", "v1", own)
    hosting.deploy("ep", "d1", variant(uri), None, status)
    assert status.wait(1)[0][1] == "InService"

    request = {"imports": ["pipelines.features", "pipelines.local"]}
    found = answer(hosting.invoke("ep", json.dumps(request).encode(), JSON, JSON))["echo"]

    assert found == {"pipelines.features": True, "pipelines.local": False}


def test_custom_attributes_reach_the_model_server_and_its_log_but_no_handler(
    hosting: Endpoints, store: DirStore, tmp_path: Path
) -> None:
    """The scikit-learn image's handlers take no request context, so none of them reads the header;
    the model server logs it with a failed request, and sets none in its answers."""
    deployed(hosting, store)
    served = hosting.invoke("ep", b'"x"', JSON, JSON, custom_attributes="trace=41")
    assert answer(served) == {"version": "v1", "echo": "x"} and served.custom_attributes == ""

    failed = hosting.invoke("ep", b'"crash"', JSON, JSON, custom_attributes="trace=42")
    assert failed.status == 500
    log = tmp_path / "state" / "endpoints" / "ep" / "d1" / "server.log"
    wanted = "model server: the failed request's CustomAttributes: trace=42\n"
    # the server's output reaches its log through a copying thread, moments after the answer
    wait_until(lambda: wanted in log.read_text(), 10, "the failed request in the server's log")
    assert "trace=41" not in log.read_text()  # had it been logged, it would be there before 42


def test_a_model_servers_output_is_its_instances_stream_in_the_endpoints_group(
    tmp_path: Path, store: DirStore
) -> None:
    """The stream SageMaker names `<variant>/<instance id>` in /aws/sagemaker/Endpoints/<endpoint>:
    the lines of server.log, each with the millisecond it was read."""
    groups = LogGroups(tmp_path / "state" / "log-groups")
    hosting = Endpoints(tmp_path / "state" / "endpoints", store, logs=groups)
    try:
        before = now_ms()
        deployed(hosting, store)
        assert hosting.invoke("ep", b'"crash"', JSON, JSON, custom_attributes="trace=7").status == 500
        log = tmp_path / "state" / "endpoints" / "ep" / "d1" / "server.log"
        wanted = "model server: the failed request's CustomAttributes: trace=7"
        wait_until(lambda: wanted in log.read_text(), 10, "the failure in the server's log")
    finally:
        hosting.shutdown()
    assert groups.groups() == ["/aws/sagemaker/Endpoints/ep"]
    (stream,) = groups.streams("/aws/sagemaker/Endpoints/ep")
    assert stream.name == "AllTraffic/d1" and before <= stream.created
    events = read_events(stream.path)
    assert [event.message for event in events] == log.read_text().splitlines()
    times = [event.timestamp for event in events]
    assert wanted in [event.message for event in events] and times == sorted(times) and before <= times[0]


def test_custom_attributes_are_captured_in_the_event_metadata_as_sagemaker_captures_them(
    hosting: Endpoints, store: DirStore
) -> None:
    """SageMaker keeps the request's CustomAttributes in eventMetadata.customAttributes, a list of
    the one header string, where Model Monitor's record preprocessors read them."""
    deployed(hosting, store, capture=CaptureSpec("s3://bucket/capture", 100.0, json_types=(JSON,)))
    answer(hosting.invoke("ep", b'"x"', JSON, JSON, custom_attributes='{"testIndicator": "true"}'))
    answer(hosting.invoke("ep", b'"y"', JSON, JSON, inference_id="order-7"))
    records = [
        json.loads(line)["eventMetadata"]
        for path in sorted((store.root / "bucket" / "capture").rglob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    assert [record.get("customAttributes") for record in records] == [['{"testIndicator": "true"}'], None]
    assert [record.get("inferenceId") for record in records] == [None, "order-7"]


def test_a_model_that_does_not_answer_in_time_is_reported_as_sagemaker_reports_it(
    hosting: Endpoints, store: DirStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Status 0 and SageMaker's words, not a 502 of the model's; the server serves on."""
    monkeypatch.setattr(model_process, "INVOKE_TIMEOUT_SECONDS", 1.0)
    flags = deployed_holding_requests(hosting, store, tmp_path)
    refused = hosting.invoke("ep", b"a,b", "text/csv", JSON)
    assert (refused.status, refused.log_stream) == (415, "AllTraffic/d1")

    started = time.monotonic()
    late = hosting.invoke("ep", b'"block"', JSON, JSON)
    assert 1.0 <= time.monotonic() - started < 10
    assert (late.status, late.log_stream) == (0, "AllTraffic/d1")
    assert late.body.decode() == (
        "Your invocation timed out while waiting for a response from container primary. Review the "
        "latency metrics for each container in Amazon CloudWatch, resolve the issue, and try again."
    )
    (flags / "release").touch()
    assert answer(hosting.invoke("ep", b'"x"', JSON, JSON))["echo"] == "x"


def test_records_after_their_capture_file_is_deleted_go_to_a_new_file(tmp_path: Path) -> None:
    """A capture file deleted while it is still being written to (a DeleteObject of it) is not
    written on unseen: the next record starts a new file, as SageMaker's next upload is a new object."""
    store = with_buckets(ObjectStore(tmp_path / "store"), "bucket")
    writer = CaptureWriter(store, "s3://bucket/cap", "ep", "v", 100, True, False, json_types=[JSON])
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    writer.record(b'"first"', JSON, b"", JSON, "e1", when)
    [first] = store.list("s3://bucket/cap/")
    store.delete(first)

    writer.record(b'"second"', JSON, b"", JSON, "e2", when)
    writer.close()

    [second] = store.list("s3://bucket/cap/")
    assert second != first
    events = [json.loads(line)["eventMetadata"]["eventId"] for line in store.get_bytes(second).splitlines()]
    assert events == ["e2"]
    assert b'"e1"' in store.get_bytes(first, version_id="null")  # the deleted file's records stay a version


def test_sampling_zero_captures_nothing(hosting: Endpoints, store: DirStore) -> None:
    deployed(hosting, store, capture=CaptureSpec("s3://bucket/capture", 0.0))
    for _ in range(5):
        answer(hosting.invoke("ep", b'"x"', JSON, JSON))
    assert not list((store.root / "bucket").rglob("*.jsonl"))


def test_capture_writer_encodings_and_rotation(store: DirStore) -> None:
    writer = CaptureWriter(
        store,
        "s3://bucket/cap/",
        "ep",
        "v",
        100,
        True,
        False,
        ["text/csv"],
        [JSON],
        max_records_per_file=2,
    )
    start = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    writer.record(b"1,2\n", "text/csv", b"", "text/csv", "e1", start)
    writer.record(b"\xff\x00", "application/x-npy", b"", JSON, "e2", start)
    writer.record(b"{}", "Application/JSON; charset=utf-8", b"", JSON, "e3", start)  # file full
    writer.record(b"{}", JSON, b"", JSON, "e4", start + timedelta(minutes=1))  # next minute
    writer.close()
    root = store.root / "bucket" / "cap" / "ep" / "v"
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jsonl"))
    assert [f[: len("2024/05/06/07/08-09-123")] for f in files] == [
        "2024/05/06/07/08-09-123",
        "2024/05/06/07/08-09-123",
        "2024/05/06/07/09-09-123",
    ]
    records = [json.loads(line) for f in files for line in (root / f).read_text().splitlines()]
    inputs = {r["eventMetadata"]["eventId"]: r["captureData"]["endpointInput"] for r in records}
    assert all("endpointOutput" not in r["captureData"] for r in records)  # output not captured
    assert (inputs["e1"]["encoding"], inputs["e1"]["data"]) == ("CSV", "1,2\n")
    assert (inputs["e2"]["encoding"], inputs["e2"]["data"]) == ("BASE64", "/wA=")
    assert inputs["e3"]["encoding"] == "JSON"
    assert records[0]["eventMetadata"]["inferenceTime"] == "2024-05-06T07:08:09Z"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"CaptureOptions": [{"CaptureMode": "InputAndOutput"}]}, (True, True, (), ())),
        ({"CaptureOptions": [{"CaptureMode": "Input"}]}, (True, False, (), ())),
        ({"CaptureOptions": [{"CaptureMode": "Output"}]}, (False, True, (), ())),
        ({"CaptureOptions": []}, (True, True, (), ())),
        ({"CaptureContentTypeHeader": {"JsonContentTypes": [JSON]}}, (True, True, (), (JSON,))),
        ({"CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"], "JsonContentTypes": [JSON]}},
         (True, True, ("text/csv",), (JSON,))),
    ],
)
def test_capture_modes_and_content_types_are_read_as_sagemaker_reads_them(
    config: dict[str, Any], expected: tuple[bool, bool, tuple[str, ...], tuple[str, ...]]
) -> None:
    """InputAndOutput captures both; a content type the header does not list is captured base64."""
    spec = CaptureSpec.from_config({"DestinationS3Uri": "s3://bucket/capture", **config})
    assert spec is not None
    assert (spec.capture_input, spec.capture_output, spec.csv_types, spec.json_types) == expected


def test_two_variants_each_get_a_server_and_target_variant_routes(
    hosting: Endpoints, store: DirStore, tmp_path: Path
) -> None:
    status = StatusLog()
    one = model_archive(store, "s3://models/v1/model.tar.gz", "v1")
    two = model_archive(store, "s3://models/v2/model.tar.gz", "v2")
    variants = [VariantSpec("A", one, {}, 1.0), VariantSpec("B", two, {}, 1.0)]
    hosting.deploy("ep", "d1", variants, None, status)
    assert status.wait(1) == [("ep", "InService", "", "d1")]
    assert set(hosting.server_pids("ep")) == {"A", "B"}
    deployment_dir = tmp_path / "state" / "endpoints" / "ep" / "d1"
    assert (deployment_dir / "B" / "opt" / "ml" / "model" / "model.txt").read_text() == "v2"
    for name, version in (("A", "v1"), ("B", "v2")):
        result = hosting.invoke("ep", b'"x"', JSON, JSON, target_variant=name)
        assert (answer(result)["version"], result.variant_name) == (version, name)
    with pytest.raises(VariantNotFound, match=r"variant C not found .*A, B"):
        hosting.invoke("ep", b'"x"', JSON, JSON, target_variant="C")
    too_big = hosting.invoke("ep", b"x" * (6 * 1024 * 1024 + 1), JSON, JSON)
    assert too_big.status == 413 and "exceeds" in json.loads(too_big.body)["error"]


def test_unknown_endpoint_and_model_that_fails_to_load(hosting: Endpoints, store: DirStore) -> None:
    with pytest.raises(EndpointNotReady, match=r"^Endpoint nope of account \d{12} not found\.$"):
        hosting.invoke("nope", b'"x"', JSON, JSON)
    status = StatusLog()
    uri = model_archive(store, "s3://models/bad/model.tar.gz", "fail")
    hosting.deploy("ep", "d1", variant(uri), None, status)
    [(name, state, reason, serving)] = status.wait(1)
    assert (name, state, serving) == ("ep", "Failed", None)
    assert "exited with code" in reason and "model.txt says fail" in reason
    assert len(reason) <= 1024
    with pytest.raises(EndpointNotReady, match="not in service"):
        hosting.invoke("ep", b'"x"', JSON, JSON)


def test_unsafe_archive_is_refused(hosting: Endpoints, store: DirStore, tmp_path: Path) -> None:
    status = StatusLog()
    extra = {"../escaped.txt": b"gotcha"}
    uri = model_archive(store, "s3://models/evil/model.tar.gz", "v1", extra)
    hosting.deploy("ep", "d1", variant(uri), None, status)
    [(_, state, reason, _)] = status.wait(1)
    assert state == "Failed" and "unsafe path" in reason
    assert not list(tmp_path.rglob("escaped.txt"))


def test_second_deploy_while_one_is_running_is_refused(hosting: Endpoints, store: DirStore) -> None:
    status = StatusLog()
    uri = model_archive(store, "s3://models/v1/model.tar.gz", "v1")
    hosting.deploy("ep", "d1", variant(uri), None, status)  # busy until its server is healthy
    with pytest.raises(EndpointBusy):
        hosting.deploy("ep", "d2", variant(uri), None, status)
    assert status.wait(1) == [("ep", "InService", "", "d1")]


def test_update_under_load_switches_models_without_a_failed_request(
    hosting: Endpoints, store: DirStore
) -> None:
    status = deployed(hosting, store, "v1")
    old_pid = hosting.server_pids("ep")["AllTraffic"]
    seen: list[list[str]] = [[] for _ in range(4)]
    failures: list[str] = []
    stop = threading.Event()

    def client(answers: list[str]) -> None:
        deadline = time.monotonic() + 2 * WAIT_SECONDS
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                result = hosting.invoke("ep", b'"x"', JSON, JSON)
            except Exception as exc:
                failures.append(repr(exc))
                continue
            if result.status != 200:
                failures.append(repr(result))
                continue
            answers.append(json.loads(result.body)["version"])

    threads = [threading.Thread(target=client, args=(answers,)) for answers in seen]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: all(len(answers) >= 5 for answers in seen), WAIT_SECONDS)
        uri = model_archive(store, "s3://models/v2/model.tar.gz", "v2")
        hosting.deploy("ep", "d2", variant(uri), None, status)
        assert status.wait(3)[1:] == [("ep", "Updating", "", "d1"), ("ep", "InService", "", "d2")]
        wait_until(lambda: all(answers.count("v2") >= 5 for answers in seen), WAIT_SECONDS)
    finally:
        stop.set()
        for thread in threads:
            thread.join(WAIT_SECONDS)
    assert failures == []
    for answers in seen:  # each client moved from v1 to v2 once and never back
        assert answers == sorted(answers) and answers[0] == "v1" and answers[-1] == "v2"
    assert not pid_alive(old_pid)
    assert hosting.server_pids("ep")["AllTraffic"] != old_pid


def test_failed_update_keeps_the_old_model_serving(hosting: Endpoints, store: DirStore) -> None:
    status = deployed(hosting, store, "v1")
    pids = hosting.server_pids("ep")
    uri = model_archive(store, "s3://models/bad/model.tar.gz", "fail")
    hosting.deploy("ep", "d2", variant(uri), None, status)
    calls = status.wait(3)
    assert calls[1] == ("ep", "Updating", "", "d1")
    name, state, reason, serving = calls[2]
    assert (name, state, serving) == ("ep", "InService", "d1")
    assert reason.startswith("Update failed: ") and reason.endswith("; still serving d1")
    assert "model.txt says fail" in reason
    assert answer(hosting.invoke("ep", b'"x"', JSON, JSON))["version"] == "v1"
    assert hosting.server_pids("ep") == pids


def test_delete_refuses_invocations_at_once_and_reports_once_the_drained_server_stopped(
    hosting: Endpoints, store: DirStore, tmp_path: Path
) -> None:
    flags = deployed_holding_requests(hosting, store, tmp_path)
    pid = hosting.server_pids("ep")["AllTraffic"]
    in_flight: list[InvokeResult] = []
    blocked = threading.Thread(target=lambda: in_flight.append(hosting.invoke("ep", b'"block"', JSON, JSON)))
    blocked.start()
    wait_until(lambda: (flags / "started").exists(), WAIT_SECONDS, "the request to reach the model")

    gone = threading.Event()
    seen: list[tuple[str, bool]] = []
    started = time.monotonic()
    hosting.delete("ep", lambda name: (seen.append((name, pid_alive(pid))), gone.set()))
    assert time.monotonic() - started < 1  # it does not wait for the drain
    with pytest.raises(EndpointNotReady, match="not found"):
        hosting.invoke("ep", b'"x"', JSON, JSON)
    assert not gone.wait(0.5) and pid_alive(pid)  # the request in flight is still being answered

    (flags / "release").touch()
    assert gone.wait(WAIT_SECONDS)
    blocked.join(WAIT_SECONDS)
    assert answer(in_flight[0])["echo"] == "block"
    assert seen == [("ep", False)]


def tcp_listeners(pid: int) -> list[str]:
    """The TCP sockets process `pid` listens on, as local addresses in /proc's hex form."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    listening = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                listening.append(fields[1])
    return listening


@pytest.mark.parametrize("isolated", [False, True])
def test_a_model_server_listens_on_its_own_socket_only_and_an_isolated_one_reaches_nothing(
    hosting: Endpoints, store: DirStore, isolated: bool
) -> None:
    uri = model_archive(store, "s3://models/v1/model.tar.gz", "v1")
    status = StatusLog()
    hosting.deploy("ep", "d1", [VariantSpec("AllTraffic", uri, {}, network_isolation=isolated)], None, status)
    reason = isolation_unavailable()
    if isolated and reason:  # a kernel without user namespaces: the server never runs with the network
        assert status.wait(1)[0][1] == "Failed"
        return
    assert status.wait(1) == [("ep", "InService", "", "d1")]
    pid = hosting.server_pids("ep")["AllTraffic"]
    assert tcp_listeners(pid) == []  # reachable only through hosting, over its Unix socket
    sockets = list((store.root.parent / "state" / "endpoints" / "ep" / "d1").glob("*.sock"))
    assert len(sockets) == 1 and sockets[0].stat().st_mode & 0o777 == 0o600
    with socket.socket() as listener:  # a server on this machine, as S3 or a package index would be
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        reached = answer(hosting.invoke("ep", json.dumps({"reach": listener.getsockname()[1]}).encode(),
                                        JSON, JSON))["echo"]
    assert reached.startswith("no network") if isolated else reached == "connected", reached
    gone = threading.Event()
    hosting.delete("ep", lambda name: gone.set())
    assert gone.wait(WAIT_SECONDS) and not sockets[0].exists()


def test_an_isolated_model_cannot_download_its_inference_code(hosting: Endpoints, store: DirStore) -> None:
    uri = model_archive(store, "s3://models/v1/model.tar.gz", "v1")
    code = model_archive(store, "s3://models/code/sourcedir.tar.gz", "code")
    environment = {"SAGEMAKER_SUBMIT_DIRECTORY": code}
    status = StatusLog()
    hosting.deploy("ep", "d1", [VariantSpec("AllTraffic", uri, environment, network_isolation=True)], None,
                   status)
    (_, state, reason, _), = status.wait(1)
    assert state == "Failed"
    assert reason.endswith(
        f"SAGEMAKER_SUBMIT_DIRECTORY is {code}, which the serving toolkit downloads inside the container, "
        "and a model with EnableNetworkIsolation has no network to download it with: ship the inference "
        "code inside model.tar.gz (code/) instead"
    ), reason


def test_restore_starts_the_last_deployment_again(tmp_path: Path, store: DirStore) -> None:
    first = Endpoints(tmp_path / "state" / "endpoints", store)
    try:
        deployed(first, store)
        old_pid = first.server_pids("ep")["AllTraffic"]
    finally:
        first.shutdown()
    assert not pid_alive(old_pid)
    second = Endpoints(tmp_path / "state" / "endpoints", store)  # as after a server restart
    try:
        uri = "s3://models/v1/model.tar.gz"
        assert second.restore("ep", "d1", variant(uri), None) == ("InService", "")
        assert answer(second.invoke("ep", b'"back"', JSON, JSON)) == {
            "version": "v1",
            "echo": "back",
        }
        bad = model_archive(store, "s3://models/bad/model.tar.gz", "fail")
        state, reason = second.restore("other", "d9", variant(bad), None)
        assert state == "Failed" and "model.txt says fail" in reason
    finally:
        second.shutdown()


def test_model_server_dies_when_its_parent_is_killed(tmp_path: Path, store: DirStore) -> None:
    uri = model_archive(store, "s3://models/v1/model.tar.gz", "v1")
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    argv = [sys.executable, str(script), str(REPO_ROOT), str(store.root), str(tmp_path / "s"), uri]
    parent = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    child = 0
    try:
        status, child = read_status_line(parent)
        assert status == "InService" and child > 0
        assert "pipelines.local.hosting.model_server" in Path(f"/proc/{child}/cmdline").read_text()
        parent.kill()  # SIGKILL: the parent gets no chance to clean up
        parent.wait(WAIT_SECONDS)
        wait_until(lambda: not pid_alive(child), 30.0)
    finally:
        parent.kill()
        parent.wait(WAIT_SECONDS)
        if child and pid_alive(child):
            os.kill(child, 9)


def read_status_line(process: subprocess.Popen[bytes]) -> tuple[str, int]:
    """The parent script's one line, read with a bound so a hung parent fails the test."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        assert selector.select(timeout=WAIT_SECONDS + 30), "parent printed nothing"
    words = process.stdout.readline().decode().split()
    return (words[0], int(words[1])) if len(words) == 2 else ("", 0)


@contextmanager
def serving_from_store(tmp_path: Path, object_store: ObjectStore, capture: str) -> Iterator[Endpoints]:
    """Endpoint `ep` serving a model put into the store's `models` bucket, capturing to `capture`."""
    staging = DirStore(tmp_path / "staging")
    archive = staging.path_for(model_archive(staging, "s3://staging/model.tar.gz", "v1"))
    object_store.put_file("s3://models/v1/model.tar.gz", archive)
    hosting = Endpoints(tmp_path / "state" / "endpoints", object_store)
    try:
        status = StatusLog()
        model = variant("s3://models/v1/model.tar.gz")
        hosting.deploy("ep", "d1", model, CaptureSpec(capture, 100.0), status)
        assert status.wait(1) == [("ep", "InService", "", "d1")]
        yield hosting
    finally:
        hosting.shutdown()


def test_works_with_the_project_object_store(tmp_path: Path) -> None:
    object_store = with_buckets(ObjectStore(tmp_path / "store"), "models", "bucket")
    with serving_from_store(tmp_path, object_store, "s3://bucket/capture") as hosting:
        answer(hosting.invoke("ep", b'"stored"', JSON, JSON))
    [uri] = object_store.list("s3://bucket/capture/ep/AllTraffic/")
    [line] = object_store.get_bytes(uri).decode().splitlines()
    captured = json.loads(line)["captureData"]["endpointInput"]  # no content types listed: base64
    assert (captured["encoding"], captured["data"]) == ("BASE64", base64.b64encode(b'"stored"').decode())


def test_capture_into_a_bucket_that_does_not_exist_drops_records_not_invocations(tmp_path: Path) -> None:
    object_store = with_buckets(ObjectStore(tmp_path / "store"), "models")
    with serving_from_store(tmp_path, object_store, "s3://later/c") as hosting:
        answer(hosting.invoke("ep", b'"dropped"', JSON, JSON))
        assert not (tmp_path / "store" / "later").exists()
        with_buckets(object_store, "later")
        answer(hosting.invoke("ep", b'"kept"', JSON, JSON))
    [uri] = object_store.list("s3://later/c/ep/AllTraffic/")
    [line] = object_store.get_bytes(uri).decode().splitlines()
    assert json.loads(line)["captureData"]["endpointInput"]["data"] == base64.b64encode(b'"kept"').decode()


def registered(store: DirStore, uri: str) -> str:
    """The SHA-256 a model package would have recorded for the object at `uri`."""
    return hashlib.sha256(store.path_for(uri).read_bytes()).hexdigest()


def test_a_replaced_artifact_fails_its_update_and_the_old_version_keeps_serving(
    hosting: Endpoints, store: DirStore
) -> None:
    deployed(hosting, store, "v1")
    status = StatusLog()
    uri = model_archive(store, "s3://models/v2/model.tar.gz", "v2")
    digest = registered(store, uri)
    model_archive(store, uri, "swapped")  # replaced after registration
    hosting.deploy("ep", "d2", [VariantSpec("AllTraffic", uri, {}, 1.0, digest)], None, status)
    _, state, reason, serving = status.wait(2)[1]
    assert (state, serving) == ("InService", "d1")
    assert f"its model package records ModelDataSha256={digest}" in reason
    assert "refusing to serve it" in reason
    assert answer(hosting.invoke("ep", b'"x"', JSON, JSON))["version"] == "v1"


def test_the_digest_is_checked_again_at_every_restart(tmp_path: Path, store: DirStore) -> None:
    uri = model_archive(store, "s3://models/v1/model.tar.gz", "v1")
    spec = [VariantSpec("AllTraffic", uri, {}, 1.0, registered(store, uri))]
    first = Endpoints(tmp_path / "state" / "endpoints", store)
    try:
        assert first.restore("ep", "d1", spec, None) == ("InService", "")
    finally:
        first.shutdown()
    model_archive(store, uri, "swapped")
    second = Endpoints(tmp_path / "state" / "endpoints", store)  # as after a server restart
    try:
        state, reason = second.restore("ep", "d1", spec, None)
        assert state == "Failed" and "changed after the model was evaluated and registered" in reason
        with pytest.raises(EndpointNotReady):
            second.invoke("ep", b'"x"', JSON, JSON)
    finally:
        second.shutdown()


def test_a_package_without_a_digest_is_refused(hosting: Endpoints, store: DirStore) -> None:
    status = StatusLog()
    uri = model_archive(store, "s3://models/v1/model.tar.gz", "v1")
    hosting.deploy("ep", "d1", [VariantSpec("AllTraffic", uri, {}, 1.0, "")], None, status)
    (call,) = status.wait(1)
    assert call[1] == "Failed" and "records no ModelDataSha256" in call[2]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ({"code/requirements.txt": b"numpy==0.0.1\n"},
         "requirements.txt line 1 ('numpy==0.0.1'): the local environment has numpy "),
        ({"code/setup.py": b"from setuptools import setup\nsetup()\n"},
         "the code directory holds setup.py, which the serving toolkit would pip-install as a package"),
    ],
)
def test_inference_code_the_serving_toolkit_would_install_from_fails_the_update_and_the_old_version_serves(
    hosting: Endpoints, store: DirStore, code: dict[str, bytes], reason: str
) -> None:
    deployed(hosting, store, "v1")
    status = StatusLog()
    uri = model_archive(store, "s3://models/v2/model.tar.gz", "v2", code)

    hosting.deploy("ep", "d2", variant(uri), None, status)

    _, state, failure, serving = status.wait(2)[1]
    assert (state, serving) == ("InService", "d1")
    assert reason in failure, failure
    assert answer(hosting.invoke("ep", b'"x"', JSON, JSON))["version"] == "v1"


def test_inference_requirements_this_environment_satisfies_start_the_server(
    hosting: Endpoints, store: DirStore
) -> None:
    status = StatusLog()
    pinned = f"numpy=={metadata.version('numpy')}\n".encode()
    uri = model_archive(store, "s3://models/v1/model.tar.gz", "v1", {"code/requirements.txt": pinned})

    hosting.deploy("ep", "d1", variant(uri), None, status)

    assert status.wait(1)[0][1] == "InService"
    assert answer(hosting.invoke("ep", b'"x"', JSON, JSON))["version"] == "v1"


SLOW_START = b"import time\ntime.sleep(3)\n" + INFERENCE.encode()


@pytest.mark.parametrize(("timeout", "state"), [(1.0, "Failed"), (30.0, "InService")])
def test_the_variants_own_health_check_timeout_bounds_its_start(
    hosting: Endpoints, store: DirStore, timeout: float, state: str
) -> None:
    status = StatusLog()
    uri = model_archive(store, "s3://models/v1/model.tar.gz", "v1", {"code/inference.py": SLOW_START})

    hosting.deploy("ep", "d1", [VariantSpec("AllTraffic", uri, {}, health_timeout=timeout)], None, status)

    (call,) = status.wait(1)
    assert call[1] == state, call
    if state == "Failed":
        assert "not healthy within 1 s" in call[2]


def holds(log: Path, text: str) -> Callable[[], bool]:
    return lambda: text in log.read_text()


def test_each_instance_is_a_server_of_its_own_with_its_own_log_stream_and_the_variants_capture(
    tmp_path: Path, store: DirStore
) -> None:
    """Least outstanding requests, ties in turn: one invocation at a time alternates instances."""
    groups = LogGroups(tmp_path / "state" / "log-groups")
    hosting = Endpoints(tmp_path / "state" / "endpoints", store, logs=groups)
    deployment_dir = tmp_path / "state" / "endpoints" / "ep" / "d1"
    capture = CaptureSpec("s3://bucket/capture", 100.0, json_types=(JSON,))
    try:
        status = StatusLog()
        uri = model_archive(store, "s3://models/v1/model.tar.gz", "v1")
        hosting.deploy("ep", "d1", instances(uri, 2), capture, status)
        assert status.wait(1) == [("ep", "InService", "", "d1")]
        pids = hosting.instance_pids("ep")
        assert set(pids) == {"AllTraffic/d1_1", "AllTraffic/d1_2"} and len(set(pids.values())) == 2
        assert hosting.server_pids("ep") == {"AllTraffic": pids["AllTraffic/d1_1"]}
        assert hosting.live_instances("ep", "d1") == {"AllTraffic": 2}

        served = [hosting.invoke("ep", json.dumps(f"review {n}").encode(), JSON, JSON) for n in range(4)]
        assert [answer(result)["echo"] for result in served] == [f"review {n}" for n in range(4)]
        assert Counter(result.log_stream for result in served) == {"AllTraffic/d1_1": 2, "AllTraffic/d1_2": 2}
        homes = {answer(hosting.invoke("ep", b'"environment"', JSON, JSON))["environment"]["HOME"]
                 for _ in range(2)}
        assert homes == {str(deployment_dir / instance / "home") for instance in ("d1_1", "d1_2")}
        for number in range(2):
            failed = hosting.invoke("ep", b'"crash"', JSON, JSON, custom_attributes=f"trace={number}")
            log = deployment_dir / failed.log_stream.split("/")[1] / "server.log"
            wait_until(holds(log, f"CustomAttributes: trace={number}"), 10, "the failure in its log")
    finally:
        hosting.shutdown()
    streams = groups.streams("/aws/sagemaker/Endpoints/ep")
    assert sorted(stream.name for stream in streams) == ["AllTraffic/d1_1", "AllTraffic/d1_2"]
    for stream in streams:
        log = deployment_dir / stream.name.split("/")[1] / "server.log"
        assert [event.message for event in read_events(stream.path)] == log.read_text().splitlines()
        assert "model server: the failed request's CustomAttributes: trace=" in log.read_text()
    records = [
        json.loads(line)["captureData"]["endpointInput"]["data"]
        for path in sorted((store.root / "bucket" / "capture" / "ep" / "AllTraffic").rglob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    assert records[:4] == [json.dumps(f"review {n}") for n in range(4)]  # one writer, in order


def test_an_instance_killed_is_replaced_by_a_new_one_while_the_other_serves(
    tmp_path: Path, store: DirStore
) -> None:
    groups = LogGroups(tmp_path / "state" / "log-groups")
    hosting = Endpoints(tmp_path / "state" / "endpoints", store, logs=groups)
    try:
        status = StatusLog()
        uri = model_archive(store, "s3://models/v1/model.tar.gz", "v1")
        hosting.deploy("ep", "d1", instances(uri, 2, RANDOM), None, status)
        assert status.wait(1) == [("ep", "InService", "", "d1")]
        pids = hosting.instance_pids("ep")

        os.kill(pids["AllTraffic/d1_1"], signal.SIGKILL)

        wait_until(lambda: hosting.live_instances("ep", "d1") == {"AllTraffic": 1}, WAIT_SECONDS, "the dip")
        served: list[InvokeResult] = []

        def replaced() -> bool:
            served.append(hosting.invoke("ep", b'"x"', JSON, JSON))
            return hosting.live_instances("ep", "d1") == {"AllTraffic": 2}

        wait_until(replaced, WAIT_SECONDS, "a replacement")
        assert {(result.status, result.log_stream) for result in served[:-1]} == {(200, "AllTraffic/d1_2")}
        now = hosting.instance_pids("ep")
        assert set(now) == {"AllTraffic/d1_2", "AllTraffic/d1_3"}
        assert now["AllTraffic/d1_2"] == pids["AllTraffic/d1_2"]
        assert now["AllTraffic/d1_3"] not in pids.values()
        answered = {hosting.invoke("ep", b'"x"', JSON, JSON).log_stream for _ in range(32)}
        assert answered == set(now) and status.calls == [("ep", "InService", "", "d1")]
    finally:
        hosting.shutdown()
    streams = {stream.name for stream in groups.streams("/aws/sagemaker/Endpoints/ep")}
    assert streams == {"AllTraffic/d1_1", "AllTraffic/d1_2", "AllTraffic/d1_3"}


def test_a_lone_instance_killed_fails_invocations_until_its_replacement_answers(
    hosting: Endpoints, store: DirStore
) -> None:
    deployed(hosting, store)
    (pid,) = hosting.instance_pids("ep").values()

    os.kill(pid, signal.SIGKILL)

    wait_until(lambda: hosting.live_instances("ep", "d1") == {"AllTraffic": 0}, WAIT_SECONDS, "no instance")
    failed = hosting.invoke("ep", b'"x"', JSON, JSON)
    assert (failed.status, failed.log_stream) == (502, "AllTraffic/d1")
    wait_until(lambda: hosting.live_instances("ep", "d1") == {"AllTraffic": 1}, WAIT_SECONDS, "a replacement")
    (replacement,) = hosting.instance_pids("ep").items()
    assert replacement[0] == "AllTraffic/d1_2" and replacement[1] != pid and not pid_alive(pid)
    result = hosting.invoke("ep", b'"x"', JSON, JSON)
    assert (answer(result)["echo"], result.log_stream) == ("x", "AllTraffic/d1_2")


def test_an_instance_over_its_instance_types_memory_is_killed_and_replaced(
    tmp_path: Path, store: DirStore
) -> None:
    groups = LogGroups(tmp_path / "state" / "log-groups")
    hosting = Endpoints(tmp_path / "state" / "endpoints", store, logs=groups)
    memory = MemoryLimit(128 << 20, "the 0.125 GiB of ml.test.small", INSTANCE_PROCESSES)
    try:
        status = StatusLog()
        uri = model_archive(store, "s3://models/v1/model.tar.gz", "v1")
        spec = VariantSpec("AllTraffic", uri, {WORKERS_VARIABLE: "1"}, memory=memory)
        hosting.deploy("ep", "d1", [spec], None, status)
        assert status.wait(1) == [("ep", "InService", "", "d1")]
        assert answer(hosting.invoke("ep", b'{"allocate_mib": 16}', JSON, JSON))["echo"] == 16 << 20
        (pid,) = hosting.instance_pids("ep").values()

        killed = hosting.invoke("ep", b'{"allocate_mib": 256}', JSON, JSON)

        assert (killed.status, killed.log_stream) == (502, "AllTraffic/d1")
        wait_until(lambda: "AllTraffic/d1_2" in hosting.instance_pids("ep"), WAIT_SECONDS, "a replacement")
        assert not pid_alive(pid)
        assert answer(hosting.invoke("ep", b'"x"', JSON, JSON))["echo"] == "x"
    finally:
        hosting.shutdown()
    (stream,) = [s for s in groups.streams("/aws/sagemaker/Endpoints/ep") if s.name == "AllTraffic/d1"]
    lines = [event.message for event in read_events(stream.path) if "resident memory" in event.message]
    assert len(lines) == 1 and re.fullmatch(
        r"\[local-sagemaker\] the instance's model server processes reached 0\.(1[3-9]|2\d) GiB of "
        r"resident memory, over the 0\.125 GiB of ml\.test\.small: killed with SIGKILL, as the kernel's "
        r"OOM killer kills a container that outgrows its memory",
        lines[0],
    ), lines


@pytest.mark.skipif(len(cpus.MACHINE_CPUS) < 2, reason="holding an instance to fewer CPUs needs two or more")
def test_an_instance_runs_one_worker_per_vcpu_of_its_instance_type_not_per_cpu_of_this_machine(
    tmp_path: Path, store: DirStore
) -> None:
    """The serving toolkit starts a worker per CPU it sees: on an instance of 1 vCPU, one, however
    many CPUs this machine has; a variant of no known type sees all of them."""
    groups = LogGroups(tmp_path / "state" / "log-groups")
    hosting = Endpoints(tmp_path / "state" / "endpoints", store, logs=groups)
    try:
        uri = model_archive(store, "s3://models/v1/model.tar.gz", "v1")
        for endpoint, vcpus in (("one", 1), ("every", None)):
            status = StatusLog()
            hosting.deploy(endpoint, "d1", [VariantSpec("AllTraffic", uri, vcpus=vcpus)], None, status)
            assert status.wait(1) == [(endpoint, "InService", "", "d1")]
            assert answer(hosting.invoke(endpoint, b'"x"', JSON, JSON))["echo"] == "x"
    finally:
        hosting.shutdown()
    told = {}
    for endpoint in ("one", "every"):
        (stream,) = groups.streams(f"/aws/sagemaker/Endpoints/{endpoint}")
        messages = [event.message for event in read_events(stream.path)]
        told[endpoint] = [line for line in messages if re.fullmatch(r"model server: \d+ workers?", line)]
    every = len(cpus.MACHINE_CPUS)
    assert told == {"one": ["model server: 1 worker"], "every": [f"model server: {every} workers"]}


def test_deleting_an_endpoint_while_an_instance_is_replaced_leaves_no_process_behind(
    hosting: Endpoints, store: DirStore, tmp_path: Path
) -> None:
    flags = deployed_holding_requests(hosting, store, tmp_path)
    (pid,) = hosting.instance_pids("ep").values()
    (flags / "hang").touch()  # a replacement starts, and never answers /ping

    os.kill(pid, signal.SIGKILL)
    loading = wait_until(lambda: list(flags.glob("loading-*")), WAIT_SECONDS, "a replacement starting")
    gone = threading.Event()
    hosting.delete("ep", lambda name: gone.set())

    assert gone.wait(WAIT_SECONDS)
    replacement = int(loading[0].name.removeprefix("loading-"))
    assert not pid_alive(replacement) and not pid_alive(pid)
    assert hosting.instance_pids("ep") == {}


def test_a_replacement_that_keeps_failing_is_retried_later_each_time(
    hosting: Endpoints, store: DirStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flags = deployed_holding_requests(hosting, store, tmp_path)
    (pid,) = hosting.instance_pids("ep").values()
    (flags / "fail").touch()  # every replacement fails to load its model

    with caplog.at_level(logging.WARNING, "pipelines.local.hosting.endpoints"):
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: "next attempt in 4 s" in caplog.text, WAIT_SECONDS, "a second failed replacement")

    assert "instance AllTraffic/d1 ended with code -9; replacing it in 1 s" in caplog.text
    assert "a replacement for instance AllTraffic/d1 failed, next attempt in 2 s" in caplog.text
    assert len(list(flags.glob("failed-*"))) == 2
    assert hosting.live_instances("ep", "d1") == {"AllTraffic": 0}
def test_an_update_from_one_instance_to_two_and_back_is_blue_green(
    hosting: Endpoints, store: DirStore
) -> None:
    status = StatusLog()
    uri = model_archive(store, "s3://models/v1/model.tar.gz", "v1")
    hosting.deploy("ep", "d1", instances(uri, 1), None, status)
    assert status.wait(1) == [("ep", "InService", "", "d1")]
    one = hosting.instance_pids("ep")
    assert set(one) == {"AllTraffic/d1"}

    hosting.deploy("ep", "d2", instances(uri, 2), None, status)
    assert status.wait(3)[1:] == [("ep", "Updating", "", "d1"), ("ep", "InService", "", "d2")]
    two = hosting.instance_pids("ep")
    assert set(two) == {"AllTraffic/d2_1", "AllTraffic/d2_2"} and not pid_alive(one["AllTraffic/d1"])
    assert {hosting.invoke("ep", b'"x"', JSON, JSON).log_stream for _ in range(2)} == set(two)

    hosting.deploy("ep", "d3", instances(uri, 1), None, status)
    assert status.wait(5)[3:] == [("ep", "Updating", "", "d2"), ("ep", "InService", "", "d3")]
    assert set(hosting.instance_pids("ep")) == {"AllTraffic/d3"}
    assert not any(pid_alive(pid) for pid in two.values())
    assert hosting.invoke("ep", b'"x"', JSON, JSON).log_stream == "AllTraffic/d3"


def test_a_capture_file_whose_folder_a_delete_removes_as_it_opens_is_opened_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = with_buckets(ObjectStore(tmp_path / "store"), "bucket")
    writer = CaptureWriter(store, "s3://bucket/cap", "ep", "v", 100, True, False, json_types=[JSON])
    opening = os.open
    raced = []

    def folder_removed_first(path: Any, flags: int, mode: int = 0o777) -> int:
        if not raced:  # a delete of the hour's last object removed the folder just made
            raced.append(path)
            os.rmdir(os.path.dirname(path))
        return opening(path, flags, mode)

    monkeypatch.setattr(os, "open", folder_removed_first)
    assert writer.record(b'"x"', JSON, b"", JSON, "e1", datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC))
    writer.close()

    [captured] = store.list("s3://bucket/cap/")
    assert json.loads(store.get_bytes(captured))["eventMetadata"]["eventId"] == "e1"
    assert len(raced) == 1

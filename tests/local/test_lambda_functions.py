"""The local Lambda: stored zips, the Handler named at CreateFunction, errors as Lambda reports them."""

from __future__ import annotations

import io
import os
import re
import signal
import stat
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from processes import frozen, pid_alive, process_state, processes_with
from waiting import wait_until

from pipelines import REPO_ROOT
from pipelines.local.errors import ServiceError
from pipelines.local.lambdas import python_runtimes
from pipelines.local.lambdas.functions import Functions
from pipelines.local.lambdas.runtime import exit_status
from pipelines.local.layout import StateLayout
from pipelines.local.storage.database import Database
from pipelines.local.system.isolation import (
    Confinement,
    isolation_unavailable,
    own_processes_unavailable,
    read_only_tree_unavailable,
)

from .world import function_settled

HANDLER = b"""
import os
import sys
import time

print("initialising")
CALLS = []


def count(event, context):
    CALLS.append(event)
    print(f"call {len(CALLS)}")
    return {"calls": len(CALLS), "pid": os.getpid()}


def slow(event, context):
    time.sleep(event["seconds"])
    return {"pid": os.getpid()}


def crash(event, context):
    os._exit(3)

def answer(event, context):
    return {"echo": event["value"], "function": os.environ["AWS_LAMBDA_FUNCTION_NAME"]}

def broken(event, context):
    raise RuntimeError("no luck")

def environment(event, context):
    return {"environment": dict(os.environ), "home entries": os.listdir(os.environ["HOME"])}

def context(event, context):
    time.sleep(event.get("seconds", 0))
    named = ("aws_request_id", "function_name", "function_version", "invoked_function_arn",
             "memory_limit_in_mb", "log_group_name", "log_stream_name")
    return {**{name: getattr(context, name) for name in named},
            "remaining": context.get_remaining_time_in_millis()}

def peek(event, context):
    import errno
    seen = {"code": sorted(os.listdir(os.environ["LAMBDA_TASK_ROOT"]))}
    try:
        seen["secret"] = open(event["secret"]).read()
    except OSError as error:
        seen["secret"] = type(error).__name__
    try:
        open(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "app.py"), "a").write("# changed")
        seen["change code"] = "changed"
    except OSError as error:
        seen["change code"] = errno.errorcode[error.errno]
    return seen
def scratch(event, context):
    import errno
    path = os.path.join("/tmp", event["name"])
    before = open(path).read().split() if os.path.exists(path) else []
    with open(path, "a") as file:
        file.write(context.aws_request_id + "\\n")
    refused = {}
    for kind, folder in (("home", os.environ["HOME"]), ("/var/tmp", "/var/tmp"),
                         ("code", os.environ["LAMBDA_TASK_ROOT"])):
        try:
            open(os.path.join(folder, event["name"]), "w").close()
            refused[kind] = "written"
        except OSError as error:
            refused[kind] = errno.errorcode[error.errno]
    tmp = os.statvfs("/tmp")
    return {"before": before, "request": context.aws_request_id, "refused": refused,
            "tmp mb": tmp.f_blocks * tmp.f_frsize >> 20}

def shared_memory(event, context):
    import errno, multiprocessing
    seen = {"machine's mark": os.path.exists(os.path.join("/dev/shm", event["name"]))}
    try:
        multiprocessing.Lock()
        seen["lock"] = "made"
    except OSError as error:
        seen["lock"] = errno.errorcode[error.errno]
    return seen

def fill(event, context):
    import errno
    tmp = os.statvfs("/tmp")
    try:
        with open("/tmp/fill", "wb") as file:
            for _ in range(event["mb"]):
                file.write(bytes(1 << 20))
        written = "written"
    except OSError as error:
        written = errno.errorcode[error.errno]
    finally:
        os.remove("/tmp/fill")
    return {"tmp mb": tmp.f_blocks * tmp.f_frsize >> 20, "written": written}

def write(event, context):
    root, outcomes = os.environ["LAMBDA_TASK_ROOT"], {}
    for name, path, mode in (("change code", "app.py", "a"), ("add file", "new.py", "w"),
                             ("add to folder", "pkg/extra.py", "w")):
        try:
            with open(os.path.join(root, path), mode) as file:
                file.write("# tampered")
            outcomes[name] = "written"
        except OSError as error:
            outcomes[name] = type(error).__name__
    return outcomes

def interpreter(event, context):
    import importlib.util
    import boto3
    return {"python": list(sys.version_info[:2]), "boto3": boto3.__version__,
            "importable": [name for name in ("sklearn", "pandas", "sagemaker", "pipelines")
                           if importlib.util.find_spec(name)]}

def leave(event, context):
    import subprocess
    subprocess.Popen(["sleep", "60"], env={**os.environ, "LEFT_BY": event["mark"]}, start_new_session=True)
    return {"pid": os.getpid()}

def die(event, context):
    os.kill(os.getpid(), event["signal"])

TICKS = []

def tick(event, context):
    # A thread and a process in a session of its own, left working: each counts 10 ms ticks.
    import subprocess, threading
    if not TICKS:
        TICKS.append(0)
        def count():
            while True:
                TICKS.append(time.monotonic())
                time.sleep(0.01)
        threading.Thread(target=count, daemon=True).start()
        subprocess.Popen(["sh", "-c", "while :; do echo >> /tmp/ticks; sleep 0.01; done"],
                         env={**os.environ, "LEFT_BY": event["mark"]}, start_new_session=True)
    time.sleep(event.get("work", 0))
    with open("/tmp/ticks", "a+") as ticks:
        ticks.seek(0)
        return {"thread": len(TICKS), "process": len(ticks.readlines())}

def hog(event, context):
    held = bytearray(event["mb"] << 20)
    held[::4096] = b"x" * len(range(0, len(held), 4096))  # every page resident
    time.sleep(event.get("hold", 0))
    return {"pid": os.getpid()}
"""


def zipped(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return raw.getvalue()


@pytest.fixture
def functions(tmp_path: Path) -> Iterator[Functions]:
    functions = Functions(
        Database(tmp_path / "state.db"), tmp_path / "functions", tmp_path / "scratch", "us-east-1",
        "http://127.0.0.1:1",
    )
    yield functions
    functions.close()


def create(functions: Functions, name: str, handler: str, code: bytes) -> dict[str, object]:
    """A function, once Active (Lambda refuses a change while it is Pending)."""
    request = {"FunctionName": name, "Handler": handler, "Role": "r", "Runtime": "python3.12"}
    created = functions.create(request, code, 0.0)
    function_settled(functions, name)
    return created


def test_a_confined_function_sees_its_code_read_only_and_nothing_else_of_the_state(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "credentials.json").write_text("the server's keys")
    confinement = Confinement(read_only=(REPO_ROOT,), hidden=(state,))  # the runtime's venv is in the project
    functions = Functions(Database(state / "state.db"), state / "functions", state / "scratch", "us-east-1",
                          "http://127.0.0.1:1", confinement=confinement)
    try:
        create(functions, "f", "app.peek", zipped({"app.py": HANDLER}))
        result = functions.invoke("f", {"secret": str(state / "credentials.json")})
    finally:
        functions.close()
    assert result.error == "", result.error
    if isolation_unavailable():  # no namespaces on this kernel: the function runs unconfined
        assert result.payload["secret"] == "the server's keys"
        return
    # hidden; and its code cannot be changed: a read-only mount stops even a root user (EROFS),
    # and another user meets the code's own permissions first (EACCES)
    refused = "EROFS" if os.geteuid() == 0 else "EACCES"
    assert result.payload == {"code": ["app.py"], "secret": "FileNotFoundError", "change code": refused}


def test_the_handler_named_at_create_runs(functions: Functions) -> None:
    created = create(functions, "f", "app.answer", zipped({"app.py": HANDLER}))
    assert created["FunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:f"
    assert not any(str(key).startswith("_") for key in created)
    result = functions.invoke("arn:aws:lambda:us-east-1:000000000000:function:f", {"value": 7})
    assert (result.payload, result.error) == ({"echo": 7, "function": "f"}, "")


def test_a_handler_sees_the_lambda_runtimes_variables_not_the_servers(
    functions: Functions, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"PYTHONPATH": "/somewhere/else", "GITHUB_TOKEN": "not for handlers",
                        "TZ": "Asia/Tokyo"}.items():
        monkeypatch.setenv(name, value)
    request = {"FunctionName": "f", "Handler": "app.environment", "Role": "r", "Runtime": "python3.12",
               "Environment": {"Variables": {"ENDPOINT_NAME": "ep", "LANG": "fr_FR.UTF-8"}}}
    functions.create(request, zipped({"app.py": HANDLER}), 0.0)
    function_settled(functions, "f")

    result = functions.invoke("f", {})

    seen = result.payload["environment"]
    code_dir = Path(seen["LAMBDA_TASK_ROOT"])
    assert code_dir.is_relative_to(functions.root / "f")
    assert "PYTHONPATH" not in seen and "GITHUB_TOKEN" not in seen
    assert (seen["LANG"], seen["TZ"]) == ("fr_FR.UTF-8", ":UTC")  # LANG is the function's to set
    assert (seen["_HANDLER"], seen["AWS_EXECUTION_ENV"]) == ("app.environment", "AWS_Lambda_python3.12")
    assert (seen["AWS_LAMBDA_FUNCTION_NAME"], seen["ENDPOINT_NAME"]) == ("f", "ep")
    assert Path(seen["PATH"].split(os.pathsep)[0]) == python_runtimes.interpreter("python3.12").parent
    assert result.payload["home entries"] == []


def test_the_handler_gets_lambdas_context_with_a_request_id_per_invocation(functions: Functions) -> None:
    request = {"FunctionName": "f", "Handler": "app.context", "Runtime": "python3.12", "Timeout": 5}
    functions.create(request, zipped({"app.py": HANDLER}), 0.0)
    function_settled(functions, "f")

    first, second = functions.invoke("f", {}).payload, functions.invoke("f", {"seconds": 1}).payload

    assert uuid.UUID(first["aws_request_id"]) != uuid.UUID(second["aws_request_id"])
    assert (first["function_name"], first["function_version"]) == ("f", "$LATEST")
    assert first["invoked_function_arn"] == "arn:aws:lambda:us-east-1:000000000000:function:f"
    assert (first["memory_limit_in_mb"], first["log_group_name"]) == ("128", "/aws/lambda/f")
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", first["log_stream_name"])
    assert second["log_stream_name"] == first["log_stream_name"]  # the same warm environment
    assert 0 < first["remaining"] <= 5000  # counted down from the function's Timeout
    assert 0 < second["remaining"] <= 4000  # the handler slept 1 s of its 5 before asking


def test_the_code_directory_is_read_only_as_lambdas_task_root(functions: Functions) -> None:
    package = zipped({"app.py": HANDLER, "pkg/__init__.py": b""})
    created = create(functions, "f", "app.write", package)
    [code_dir] = [path.parent for path in (functions.root / "f").glob("*/app.py")]
    for path in [code_dir, *code_dir.rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o222 == 0, path

    outcomes = functions.invoke("f", {}).payload

    if os.geteuid() != 0:  # file modes do not bind root
        assert outcomes == {"change code": "PermissionError", "add file": "PermissionError",
                            "add to folder": "PermissionError"}
        assert (code_dir / "app.py").read_bytes() == HANDLER
    again = functions.update_code("f", package)
    assert again["CodeSha256"] == created["CodeSha256"]  # the same package again: its folder is reused


def test_an_environments_folder_is_of_the_state_gone_with_it_or_with_the_next_server(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    (scratch / "f-left-by-a-killed-server").mkdir(parents=True)
    functions = Functions(Database(tmp_path / "state.db"), tmp_path / "functions", scratch, "us-east-1",
                          "http://127.0.0.1:1")
    try:
        assert list(scratch.iterdir()) == []  # that server's environments ended with it
        create(functions, "f", "app.answer", zipped({"app.py": HANDLER}))
        assert functions.invoke("f", {"value": 1}).error == ""
        assert len(list(scratch.iterdir())) == 1
    finally:
        functions.close()
    assert list(scratch.iterdir()) == []


@pytest.fixture
def confined_functions(tmp_path: Path) -> Iterator[Functions]:
    """Functions confined as the server confines them: all read-only but their own /tmp."""
    if read_only_tree_unavailable():
        pytest.skip(f"an environment's tree cannot be made read-only here: {read_only_tree_unavailable()}")
    layout = StateLayout(tmp_path / "state")
    layout.create_root()
    functions = Functions(Database(layout.database), layout.functions, layout.lambda_scratch, "us-east-1",
                          "http://127.0.0.1:1", confinement=layout.lambda_confinement())
    yield functions
    functions.close()


def test_what_a_handler_leaves_running_ends_with_its_environment(confined_functions: Functions) -> None:
    """A process in a session of its own is still in the environment's PID namespace."""
    if own_processes_unavailable():
        pytest.skip(f"no PID namespaces here: {own_processes_unavailable()}")
    mark = f"left-{uuid.uuid4().hex}"
    create(confined_functions, "f", "app.leave", zipped({"app.py": HANDLER}))
    assert confined_functions.invoke("f", {"mark": mark}).error == ""
    assert processes_with(mark)  # running while its environment is
    confined_functions.close()
    wait_until(lambda: not processes_with(mark), timeout=10, what="the leftover process to end")


def test_what_a_handler_leaves_working_is_frozen_between_invocations_as_lambda_freezes_it(
    confined_functions: Functions,
) -> None:
    """Lambda freezes an environment once its runtime has answered: a thread or a process left
    working makes no progress until the next invocation, and then goes on."""
    if own_processes_unavailable():
        pytest.skip(f"no PID namespaces here: {own_processes_unavailable()}")
    mark = f"ticks-{uuid.uuid4().hex}"
    create(confined_functions, "f", "app.tick", zipped({"app.py": HANDLER}))
    assert confined_functions.invoke("f", {"mark": mark, "work": 0.1}).error == ""
    answered = confined_functions.invoke("f", {"mark": mark}).payload
    time.sleep(0.5)  # 50 ticks each, were they running
    idle = confined_functions.invoke("f", {"mark": mark}).payload
    working = confined_functions.invoke("f", {"mark": mark, "work": 1.0}).payload

    assert idle["thread"] - answered["thread"] < 10
    assert idle["process"] - answered["process"] < 10
    assert working["thread"] - idle["thread"] > 20  # thawed for the invocation: about 90 each
    assert working["process"] - idle["process"] > 20
    left = processes_with(mark)  # the process the handler left, frozen again once it answered
    assert left
    assert frozen(left), {pid: process_state(pid) for pid in left}


# A server of its own: creates a function and invokes it once, which leaves its environment frozen
# with a process of the handler's in it (marked), says so, and waits to be killed.
KILLED_SERVER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from pipelines.local.lambdas.functions import Functions
from pipelines.local.layout import StateLayout
from pipelines.local.storage.database import Database
state, code, mark = Path(sys.argv[2]), Path(sys.argv[3]).read_bytes(), sys.argv[4]
layout = StateLayout(state)
layout.create_root()
functions = Functions(Database(layout.database), layout.functions, layout.lambda_scratch, "us-east-1",
                      "http://127.0.0.1:1", confinement=layout.lambda_confinement())
request = {"FunctionName": "f", "Handler": "app.tick", "Role": "r", "Runtime": "python3.12"}
functions.create(request, code, 0.0)
while functions.get("f")["Configuration"]["State"] != "Active":
    time.sleep(0.05)
assert functions.invoke("f", {"mark": mark}).error == ""
print("frozen", flush=True)
time.sleep(120)
"""


def test_a_frozen_environment_ends_when_the_server_is_killed(tmp_path: Path) -> None:
    """A frozen runtime cannot read the end of its stdin: its parent-death signal ends it."""
    unavailable = own_processes_unavailable() or read_only_tree_unavailable()
    if unavailable:
        pytest.skip(f"no frozen environments here: {unavailable}")
    mark = f"killed-{uuid.uuid4().hex}"
    code = tmp_path / "code.zip"
    code.write_bytes(zipped({"app.py": HANDLER}))
    server = subprocess.Popen(
        [sys.executable, "-c", KILLED_SERVER, str(REPO_ROOT), str(tmp_path / "state"), str(code), mark],
        stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline() == "frozen\n"
        left = set(processes_with(mark)) - {server.pid}  # its command line holds the mark too
        assert left
        # A process in uninterruptible sleep (D, on a busy disk) stops as it leaves it: the signal waits.
        wait_until(lambda: frozen(list(left)), timeout=10,
                   what="every process of the environment stopped")
    finally:
        server.kill()  # SIGKILL: no clean-up of its own
        server.wait(10)
    wait_until(lambda: not processes_with(mark), timeout=10, what="the frozen environment to end")


@pytest.mark.parametrize(
    ("signum", "words"), [(signal.SIGKILL, "signal: killed"), (signal.SIGSEGV, "signal: segmentation fault")]
)
def test_a_runtime_killed_by_a_signal_is_named_by_it_from_a_pid_namespace_too(
    confined_functions: Functions, signum: int, words: str
) -> None:
    create(confined_functions, "f", "app.die", zipped({"app.py": HANDLER}))
    died = confined_functions.invoke("f", {"signal": signum})
    message = f"RequestId: {died.request_id} Error: Runtime exited with error: {words}"
    assert died.payload == {"errorMessage": message, "errorType": "Runtime.ExitError"}


def test_an_environments_tmp_is_its_own_kept_between_its_invocations_and_the_rest_read_only(
    confined_functions: Functions,
) -> None:
    name = f"mark-{uuid.uuid4().hex}"  # in /tmp and /var/tmp, where the machine's own files are too
    for function in ("f", "g"):
        create(confined_functions, function, "app.scratch", zipped({"app.py": HANDLER}))
    try:
        first = confined_functions.invoke("f", {"name": name}).payload
        again = confined_functions.invoke("f", {"name": name}).payload
        other = confined_functions.invoke("g", {"name": name}).payload
    finally:  # written only where an environment's /tmp is the machine's, or its tree writable
        leaked = (Path("/tmp") / name).exists()
        for folder in ("/tmp", "/var/tmp"):
            (Path(folder) / name).unlink(missing_ok=True)

    assert (first["before"], again["before"], other["before"]) == ([], [first["request"]], [])
    assert not leaked  # not the machine's /tmp
    assert first["tmp mb"] == 512  # EphemeralStorage's default
    assert first["refused"] == {"home": "EROFS", "/var/tmp": "EROFS", "code": "EROFS"}


def test_an_environment_has_no_shared_memory_as_lambda_has_no_dev_shm(confined_functions: Functions) -> None:
    """Lambda mounts no /dev/shm, so multiprocessing's locks, queues and pools fail there (errno 38);
    here /dev/shm is empty and read-only (errno 30): the handler fails at the same call, and sees
    nothing of what the machine's processes keep in theirs."""
    mark = Path("/dev/shm") / f"mark-{uuid.uuid4().hex}"
    mark.write_text("the machine's")
    try:
        create(confined_functions, "f", "app.shared_memory", zipped({"app.py": HANDLER}))
        seen = confined_functions.invoke("f", {"name": mark.name}).payload
    finally:
        mark.unlink()
    assert seen == {"machine's mark": False, "lock": "EROFS"}


def test_writing_past_the_ephemeral_storage_fails_with_no_space_left(confined_functions: Functions) -> None:
    request = {"FunctionName": "f", "Handler": "app.fill", "Role": "r", "Runtime": "python3.12",
               "EphemeralStorage": {"Size": 1}}  # under Lambda's 512, which its API refuses: a test's size
    confined_functions.create(request, zipped({"app.py": HANDLER}), 0.0)
    function_settled(confined_functions, "f")
    assert confined_functions.invoke("f", {"mb": 2}).payload == {"tmp mb": 1, "written": "ENOSPC"}


def test_the_configuration_and_runtime_variables_are_lambdas(functions: Functions) -> None:
    request = {"FunctionName": "f", "Handler": "app.environment", "Runtime": "python3.12", "MemorySize": 256}
    created = functions.create(request, zipped({"app.py": HANDLER}), 0.0)
    function_settled(functions, "f")

    assert (created["MemorySize"], created["Version"], created["PackageType"]) == (256, "$LATEST", "Zip")
    assert created["Architectures"] == ["x86_64"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", created["LastModified"])
    uuid.UUID(created["RevisionId"])
    seen = functions.invoke("f", {}).payload["environment"]
    assert seen["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert seen["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/f"
    assert seen["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", seen["AWS_LAMBDA_LOG_STREAM_NAME"])
    assert Path(seen["LAMBDA_RUNTIME_DIR"]) == python_runtimes.interpreter("python3.12").parent.parent

    time.sleep(0.01)
    updated = functions.update_configuration({"FunctionName": "f", "MemorySize": 512})
    function_settled(functions, "f")
    assert (updated["MemorySize"], functions.get("f")["Configuration"]["MemorySize"]) == (512, 512)
    assert updated["LastModified"] > created["LastModified"]
    assert functions.invoke("f", {}).payload["environment"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert create(functions, "g", "app.answer", zipped({"app.py": HANDLER}))["MemorySize"] == 128


def test_the_runtime_version_names_the_local_build_and_changes_with_it(
    functions: Functions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = create(functions, "f", "app.answer", zipped({"app.py": HANDLER}))
    arn = functions.get("f")["Configuration"]["RuntimeVersionConfig"]["RuntimeVersionArn"]
    assert re.fullmatch(r"arn:aws:lambda:us-east-1::runtime:[0-9a-f]{64}", arn)
    assert created["RuntimeVersionConfig"] == {"RuntimeVersionArn": arn}
    version = python_runtimes.runtime_version("python3.12", "us-east-1")
    assert (version.arn, version.name) == (arn, f"python:3.12.local-{arn[-64:][:8]}")
    other_pins = tmp_path / "requirements.txt"
    other_pins.write_text(python_runtimes.RUNTIME_REQUIREMENTS.read_text() + "extra==1.0\n")
    monkeypatch.setattr(python_runtimes, "RUNTIME_REQUIREMENTS", other_pins)
    assert functions.get("f")["Configuration"]["RuntimeVersionConfig"]["RuntimeVersionArn"] != arn


def test_more_than_4_kb_of_variables_is_refused_as_lambda_refuses_it(functions: Functions) -> None:
    fits = {"A": "x" * (4096 - len('{"A":""}'))}
    request = {"FunctionName": "f", "Handler": "app.answer", "Runtime": "python3.12",
               "Environment": {"Variables": fits}}
    functions.create(request, zipped({"app.py": HANDLER}), 0.0)
    function_settled(functions, "f")
    over = {"A": fits["A"], "B": "y"}
    too_much = {"Variables": over}
    for change in (lambda: functions.update_configuration({"FunctionName": "f", "Environment": too_much}),
                   lambda: functions.create({**request, "FunctionName": "g", "Environment": too_much},
                                            zipped({"app.py": HANDLER}), 0.0)):
        with pytest.raises(ServiceError) as refused:
            change()
        assert (refused.value.code, refused.value.message) == (
            "InvalidParameterValueException",
            "Lambda was unable to configure your environment variables because the environment variables you "
            f'have provided exceeded the 4KB limit. String measured: {{"A":"{fits["A"]}","B":"y"}}')
    assert functions.get("f")["Configuration"]["Environment"] == {"Variables": fits}


def test_a_handler_runs_on_its_runtimes_python_with_only_what_lambda_provides(functions: Functions) -> None:
    create(functions, "f", "app.interpreter", zipped({"app.py": HANDLER}))

    result = functions.invoke("f", {})

    assert result.payload == {"python": [3, 12], "boto3": boto3.__version__, "importable": []}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"Runtime": "nodejs22.x"}, "runs Python runtimes only"),
        ({"Runtime": "python3.9"}, r"no python3\.9 runtime \(built here: .*python3\.12"),
        ({"Runtime": ""}, "Runtime and Handler are mandatory"),
        ({"Environment": {"Variables": {"AWS_REGION": "eu-west-1", "TZ": "UTC", "_HANDLER": "x.y"}}},
         "reserved keys .* Reserved keys used in this request: AWS_REGION, _HANDLER$"),
    ],
)
def test_a_function_lambda_would_refuse_is_refused_at_create(
    functions: Functions, change: dict[str, object], message: str
) -> None:
    request = {"FunctionName": "f", "Handler": "app.answer", "Role": "r", "Runtime": "python3.12",
               **change}
    with pytest.raises(ServiceError, match=message) as refused:
        functions.create(request, zipped({"app.py": HANDLER}), 0.0)
    assert refused.value.code == "InvalidParameterValueException"
    with pytest.raises(ServiceError) as missing:
        functions.get("f")
    assert missing.value.code == "ResourceNotFoundException"


def test_an_exception_in_the_handler_is_lambdas_error_document(functions: Functions) -> None:
    create(functions, "f", "app.broken", zipped({"app.py": HANDLER}))

    result = functions.invoke("f", {})

    document = result.payload
    assert result.error == "RuntimeError: no luck"
    assert list(document) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert (document["errorMessage"], document["errorType"]) == ("no luck", "RuntimeError")
    assert document["requestId"] == result.request_id
    [frame] = document["stackTrace"]  # the handler's frames only, not the runtime's
    assert frame.startswith(f'  File "{functions.root / "f"}/')
    assert frame.endswith('/app.py", line 28, in broken\n    raise RuntimeError("no luck")\n')
    assert "[ERROR] RuntimeError: no luck\nTraceback (most recent call last):\n" in result.log


@pytest.mark.parametrize(
    ("value", "payload", "error"),
    [
        ("datetime.datetime(2024, 1, 1)", None,
         "Runtime.MarshalError: Unable to marshal response: datetime.datetime(2024, 1, 1, 0, 0) is not "
         "JSON serializable"),
        ("{'price': decimal.Decimal('1.5')}", {"price": 1.5}, ""),  # as DynamoDB numbers come back
    ],
)
def test_a_result_is_marshalled_as_lambdas_runtime_does(
    functions: Functions, value: str, payload: object, error: str
) -> None:
    code = f"import datetime, decimal\ndef handler(event, context):\n    return {value}\n"
    create(functions, "f", "app.handler", zipped({"app.py": code.encode()}))

    result = functions.invoke("f", {})

    assert result.error == error
    if error:
        message = error.split(": ", 1)[1]
        assert result.payload == {"errorMessage": message, "errorType": "Runtime.MarshalError",
                                  "requestId": result.request_id, "stackTrace": []}
    else:
        assert result.payload == payload


def test_new_code_replaces_the_old(functions: Functions) -> None:
    create(functions, "f", "app.answer", zipped({"app.py": HANDLER}))
    newer = HANDLER.replace(b'"echo": event["value"]', b'"echo": -1')
    updated = functions.update_code("f", zipped({"app.py": newer}))
    function_settled(functions, "f")
    assert functions.invoke("f", {"value": 7}).payload == {"echo": -1, "function": "f"}
    assert updated["CodeSize"] == len(zipped({"app.py": newer}))


def test_a_new_configuration_replaces_the_old_and_gets_new_environments(functions: Functions) -> None:
    request = {"FunctionName": "f", "Handler": "app.environment", "Role": "r", "Runtime": "python3.12",
               "Environment": {"Variables": {"ENDPOINT_NAME": "old", "GONE": "x"}}}
    functions.create(request, zipped({"app.py": HANDLER}), 0.0)
    function_settled(functions, "f")
    assert functions.invoke("f", {}).payload["environment"]["ENDPOINT_NAME"] == "old"

    updated = functions.update_configuration(
        {"FunctionName": "f", "Environment": {"Variables": {"ENDPOINT_NAME": "new"}}, "Timeout": 30}
    )
    function_settled(functions, "f")

    seen = functions.invoke("f", {}).payload["environment"]
    assert (seen["ENDPOINT_NAME"], "GONE" in seen) == ("new", False)  # replaced as a whole
    assert (updated["Timeout"], updated["Handler"]) == (30, "app.environment")
    assert functions.get("f")["Configuration"]["Environment"] == {"Variables": {"ENDPOINT_NAME": "new"}}
    functions.update_configuration({"FunctionName": "f", "Handler": "app.answer"})
    function_settled(functions, "f")
    assert functions.invoke("f", {"value": 1}).payload == {"echo": 1, "function": "f"}


@pytest.mark.parametrize(
    ("change", "message", "code"),
    [
        ({"Runtime": "nodejs22.x"}, "runs Python runtimes only", "InvalidParameterValueException"),
        ({"Environment": {"Variables": {"AWS_REGION": "eu-west-1"}}}, "Reserved keys used in this "
         "request: AWS_REGION$", "InvalidParameterValueException"),
        ({"FunctionName": "ghost"}, "ghost", "ResourceNotFoundException"),
    ],
)
def test_a_configuration_lambda_would_refuse_changes_nothing(
    functions: Functions, change: dict[str, object], message: str, code: str
) -> None:
    create(functions, "f", "app.answer", zipped({"app.py": HANDLER}))
    with pytest.raises(ServiceError, match=message) as refused:
        functions.update_configuration({"FunctionName": "f", **change})
    assert refused.value.code == code
    stored = functions.get("f")["Configuration"]
    assert (stored["Runtime"], stored["Environment"]) == ("python3.12", {"Variables": {}})
    assert functions.invoke("f", {"value": 2}).payload == {"echo": 2, "function": "f"}


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (b"not a zip", "^Could not unzip uploaded file. Please check your file, then try to upload again.$"),
        (zipped({"../escape.py": b"x = 1"}), "unsafe path"),
        (zipped({}), "^Uploaded file must be a non-empty zip$"),
        (b"", "^Uploaded file must be a non-empty zip$"),
    ],
    ids=["not a zip", "unsafe path", "an empty zip", "no bytes"],
)
def test_bad_code_is_refused(functions: Functions, tmp_path: Path, code: bytes, message: str) -> None:
    with pytest.raises(ServiceError, match=message) as refused:
        create(functions, "f", "app.answer", code)
    assert (refused.value.code, refused.value.status) == ("InvalidParameterValueException", 400)
    assert not (tmp_path / "escape.py").exists()
    create(functions, "f", "app.answer", zipped({"app.py": HANDLER}))
    with pytest.raises(ServiceError, match=message) as update_refused:
        functions.update_code("f", code)
    assert update_refused.value.code == "InvalidParameterValueException"


def test_a_handler_is_required_and_names_are_unique(functions: Functions) -> None:
    request = {"FunctionName": "f"}
    with pytest.raises(ServiceError, match="Runtime and Handler are mandatory"):
        functions.create(request, zipped({"a.py": b""}), 0.0)
    create(functions, "f", "app.answer", zipped({"app.py": HANDLER}))
    with pytest.raises(ServiceError) as raised:
        create(functions, "f", "app.answer", zipped({"app.py": HANDLER}))
    assert raised.value.code == "ResourceConflictException"
    with pytest.raises(ServiceError) as missing:
        functions.invoke("ghost", {})
    assert missing.value.code == "ResourceNotFoundException"


def test_two_creates_at_once_make_one_function_that_the_refused_one_can_read_at_once(
    functions: Functions, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lambda stores a function when it accepts its CreateFunction (Pending), so a second create of
    the name is refused as a duplicate and the function it lost to can be read and updated at once,
    as two upserts racing on a fresh state do (publish.py), however long unpacking the code takes."""
    unpack = functions._save_code

    def slow_unpack(name: str, code: bytes) -> tuple[str, str]:
        time.sleep(0.3)
        return unpack(name, code)

    monkeypatch.setattr(functions, "_save_code", slow_unpack)
    request = {"FunctionName": "f", "Handler": "app.answer", "Runtime": "python3.12"}

    def create_then_read() -> tuple[str, str]:
        try:
            outcome = functions.create(request, zipped({"app.py": HANDLER}), 0.0)["State"]
        except ServiceError as error:
            outcome = f"{error.code}: {error}"
        return outcome, functions.get("f")["Configuration"]["FunctionName"]

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(lambda _: create_then_read(), range(2)))
    assert outcomes == [("Pending", "f"), ("ResourceConflictException: Function already exist: f", "f")]


def test_an_environment_stays_warm_between_invocations(functions: Functions) -> None:
    create(functions, "f", "app.count", zipped({"app.py": HANDLER}))
    first, second = functions.invoke("f", {}), functions.invoke("f", {})
    assert first.payload["calls"] == 1 and second.payload["calls"] == 2  # module state kept
    assert first.payload["pid"] == second.payload["pid"]
    assert "initialising" in first.log and "call 1" in first.log  # init output, then its own
    assert "initialising" not in second.log and "call 2" in second.log and "call 1" not in second.log


SLOW_INIT = b"import time\ntime.sleep(1)\ndef handler(event, context):\n    return 1\n"


def test_a_change_is_in_progress_until_its_environment_is_initialised_and_none_other_meanwhile(
    functions: Functions,
) -> None:
    arn = "arn:aws:lambda:us-east-1:000000000000:function:f"
    request = {"FunctionName": "f", "Handler": "app.handler", "Runtime": "python3.12"}
    created = functions.create(request, zipped({"app.py": SLOW_INIT}), 0.0)
    assert (created["State"], created["StateReasonCode"], "LastUpdateStatus" in created) == (
        "Pending", "Creating", False)
    pending = "The operation cannot be performed at this time. The function is currently in the " \
              "following state: Pending"
    with pytest.raises(ServiceError, match=f"^{pending}$") as refused:
        functions.update_code("f", zipped({"app.py": SLOW_INIT + b"# new\n"}))
    assert (refused.value.code, refused.value.status) == ("ResourceConflictException", 409)
    revision = function_settled(functions, "f")["RevisionId"]

    variables = {"Variables": {"STAGE": "two"}}  # new environments, with their init phase
    updated = functions.update_configuration({"FunctionName": "f", "Environment": variables})
    assert (updated["State"], updated["LastUpdateStatus"]) == ("Active", "InProgress")
    assert updated["LastUpdateStatusReason"] == "The function is being created."  # Lambda's, on update too
    assert updated["RevisionId"] != revision
    in_progress = f"The operation cannot be performed at this time. An update is in progress for resource: " \
                  f"{arn}"
    for change in (lambda: functions.update_code("f", zipped({"a.py": b""})),
                   lambda: functions.update_configuration({"FunctionName": "f", "Timeout": 1})):
        with pytest.raises(ServiceError, match=re.escape(in_progress)) as refused:
            change()
        assert refused.value.code == "ResourceConflictException"
    done = function_settled(functions, "f")
    assert (done["Environment"], done["RevisionId"], done["CodeSha256"]) == (
        variables, updated["RevisionId"], created["CodeSha256"])
    assert "StateReason" not in done


def test_a_refused_change_leaves_the_function_free_for_the_next(functions: Functions) -> None:
    create(functions, "f", "app.answer", zipped({"app.py": HANDLER}))
    with pytest.raises(ServiceError, match="Could not unzip"):
        functions.update_code("f", b"not a zip")
    functions.update_code("f", zipped({"app.py": HANDLER}))  # not refused as "in progress"


def test_new_code_gets_new_environments(functions: Functions) -> None:
    create(functions, "f", "app.count", zipped({"app.py": HANDLER}))
    before = functions.invoke("f", {}).payload
    functions.update_code("f", zipped({"app.py": HANDLER + b"\n# changed\n"}))
    function_settled(functions, "f")
    after = functions.invoke("f", {}).payload
    assert after["calls"] == 1 and after["pid"] != before["pid"]


def test_a_deleted_function_is_gone_with_its_environments_and_one_made_again_starts_afresh(
    functions: Functions,
) -> None:
    code = zipped({"app.py": HANDLER})
    create(functions, "f", "app.count", code)
    before = functions.invoke("f", {}).payload

    assert functions.delete("arn:aws:lambda:us-east-1:000000000000:function:f") == "f"

    not_found = "Function not found: arn:aws:lambda:us-east-1:000000000000:function:f"
    calls = (lambda: functions.get("f"), lambda: functions.invoke("f", {}), lambda: functions.delete("f"))
    for call in calls:
        with pytest.raises(ServiceError, match=f"^{re.escape(not_found)}$") as missing:
            call()
        assert (missing.value.code, missing.value.status) == ("ResourceNotFoundException", 404)
    wait_until(lambda: not pid_alive(before["pid"]), 10, "the deleted function's environment to end")
    create(functions, "f", "app.count", code)  # the same name and code: a new function all the same
    after = functions.invoke("f", {}).payload
    assert after["calls"] == 1 and after["pid"] != before["pid"]


STARTED_THEN_SLOW = b"""
import os, time
def handler(event, context):
    open(event["flag"], "w").close()
    time.sleep(event["seconds"])
    return {"pid": os.getpid()}
"""


def test_an_invocation_running_as_its_function_is_deleted_finishes_and_its_environment_serves_no_other(
    functions: Functions, tmp_path: Path
) -> None:
    code = zipped({"app.py": STARTED_THEN_SLOW})
    create(functions, "f", "app.handler", code)
    started = tmp_path / "started"
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(functions.invoke, "f", {"flag": str(started), "seconds": 1})
        wait_until(started.exists, 10, "the invocation to start")
        functions.delete("f")
        create(functions, "f", "app.handler", code)
        finished = running.result(10)
    assert finished.error == "" and isinstance(finished.payload["pid"], int)
    again = functions.invoke("f", {"flag": str(tmp_path / "again"), "seconds": 0}).payload
    assert again["pid"] != finished.payload["pid"]


@pytest.mark.parametrize(
    ("qualifier", "message"),
    [
        ("$LATEST", "^\\$LATEST version cannot be deleted without deleting the function\\.$"),
        ("1", "^Qualifier 1 names a published version or an alias, which the local Lambda does not keep"),
        ("live", "^Qualifier live names a published version or an alias"),
    ],
)
def test_deleting_a_version_is_refused_and_the_function_stays(
    functions: Functions, qualifier: str, message: str
) -> None:
    create(functions, "f", "app.answer", zipped({"app.py": HANDLER}))
    with pytest.raises(ServiceError, match=message) as refused:
        functions.delete("f", qualifier)
    assert refused.value.code == "InvalidParameterValueException"
    assert functions.invoke("f", {"value": 1}).payload["echo"] == 1


def test_a_function_being_created_cannot_be_deleted_until_it_is_active(functions: Functions) -> None:
    request = {"FunctionName": "f", "Handler": "app.handler", "Runtime": "python3.12"}
    functions.create(request, zipped({"app.py": SLOW_INIT}), 0.0)
    with pytest.raises(ServiceError, match=r"following state: Pending$") as refused:
        functions.delete("f")
    assert refused.value.code == "ResourceConflictException"
    function_settled(functions, "f")
    functions.delete("f")
    with pytest.raises(ServiceError, match=r"^Function not found"):
        functions.get("f")


def test_while_an_update_is_in_progress_invocations_run_the_code_and_configuration_it_replaces(
    functions: Functions,
) -> None:
    create(functions, "f", "app.answer", zipped({"app.py": b"def answer(event, context):\n    return 1\n"}))
    warm = functions.invoke("f", {})
    assert warm.payload == 1
    newer = b"import time\ntime.sleep(2.5)\ndef answer(event, context):\n    return 2\n"
    updated = functions.update_code("f", zipped({"app.py": newer}))
    assert updated["LastUpdateStatus"] == "InProgress"

    during = functions.invoke("f", {})

    assert functions.get("f")["Configuration"]["LastUpdateStatus"] == "InProgress"  # still initialising
    assert during.payload == 1 and during.request_id != warm.request_id
    assert function_settled(functions, "f")["CodeSha256"] == updated["CodeSha256"]
    assert functions.invoke("f", {}).payload == 2


def test_concurrent_invocations_each_get_an_environment(functions: Functions) -> None:
    create(functions, "f", "app.slow", zipped({"app.py": HANDLER}))
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: functions.invoke("f", {"seconds": 0.5}), range(2)))
    assert all(not r.error for r in results)
    assert results[0].payload["pid"] != results[1].payload["pid"]


def test_a_timeout_ends_the_environment_and_the_next_call_starts_a_new_one(functions: Functions) -> None:
    request = {"FunctionName": "f", "Handler": "app.slow", "Runtime": "python3.12", "Timeout": 1}
    functions.create(request, zipped({"app.py": HANDLER}), 0.0)
    function_settled(functions, "f")
    timed_out = functions.invoke("f", {"seconds": 30})
    message = f"RequestId: {timed_out.request_id} Error: Task timed out after 1.00 seconds"
    assert timed_out.payload == {"errorMessage": message, "errorType": "Sandbox.Timedout"}
    *_, said, end, report = timed_out.log.splitlines()  # Lambda's own last three lines
    assert said.endswith(f"Z {timed_out.request_id} Task timed out after 1.00 seconds")
    assert (end, report.split("\t")[0]) == (f"END RequestId: {timed_out.request_id}",
                                            f"REPORT RequestId: {timed_out.request_id}")
    assert functions.invoke("f", {"seconds": 0}).payload["pid"] > 0


def test_a_crashed_environment_is_replaced(functions: Functions) -> None:
    create(functions, "f", "app.crash", zipped({"app.py": HANDLER}))
    for _ in range(2):  # a fresh environment, the same fate
        crashed = functions.invoke("f", {})
        message = f"RequestId: {crashed.request_id} Error: Runtime exited with error: exit status 3"
        assert crashed.payload == {"errorMessage": message, "errorType": "Runtime.ExitError"}
    assert (exit_status(-9), exit_status(-11)) == ("signal: killed", "signal: segmentation fault")


def test_an_environment_over_its_memory_size_is_killed_and_replaced_as_lambdas_is(
    functions: Functions,
) -> None:
    create(functions, "f", "app.hog", zipped({"app.py": HANDLER}))  # MemorySize 128
    within = functions.invoke("f", {"mb": 16})
    over = functions.invoke("f", {"mb": 160, "hold": 3})
    message = f"RequestId: {over.request_id} Error: Runtime exited with error: signal: killed"
    assert over.payload == {"errorMessage": message, "errorType": "Runtime.OutOfMemory"}
    assert int(re.findall(r"\tMax Memory Used: (\d+) MB\t", over.log)[0]) > 128
    after = functions.invoke("f", {"mb": 16})
    assert after.payload["pid"] != within.payload["pid"]  # the killed environment was discarded


def test_the_report_line_carries_the_environments_peak_memory_in_lambdas_order(functions: Functions) -> None:
    create(functions, "f", "app.hog", zipped({"app.py": HANDLER}))
    first, second = functions.invoke("f", {"mb": 8}), functions.invoke("f", {"mb": 48})
    pattern = (r"REPORT RequestId: {}\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\tMemory Size: 128 MB\t"
               r"Max Memory Used: (\d+) MB\t{}")
    (used_first,) = re.findall(pattern.format(first.request_id, r"Init Duration: [\d.]+ ms\t"), first.log)
    (used_second,) = re.findall(pattern.format(second.request_id, ""), second.log)
    assert 8 < int(used_first) < int(used_second) < 128  # the peak of the environment so far


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        ("missing.answer", "Runtime.ImportModuleError: Unable to import module 'missing': "
                           "No module named 'missing'"),
        ("app.nothing", "Runtime.HandlerNotFound: Handler 'nothing' missing on module 'app'"),
        ("nohandler", "Runtime.MalformedHandlerName: Bad handler 'nohandler': not enough values to unpack "
                      "(expected 2, got 1)"),
    ],
)
def test_an_unloadable_handler_fails_each_invocation(functions: Functions, handler: str, error: str) -> None:
    create(functions, "f", handler, zipped({"app.py": HANDLER}))
    assert functions.invoke("f", {}).error == error


def test_a_function_whose_runtime_was_removed_fails_its_invocations_as_lambda_reports_it(
    functions: Functions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create(functions, "f", "app.answer", zipped({"app.py": HANDLER}))
    monkeypatch.setattr(python_runtimes, "RUNTIMES_DIR", tmp_path / "removed")

    with pytest.raises(ServiceError, match=r"no python3\.12 runtime") as raised:
        functions.invoke("f", {"value": 1})

    assert (raised.value.code, raised.value.status) == ("InvalidRuntimeException", 502)

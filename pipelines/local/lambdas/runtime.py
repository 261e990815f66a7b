"""Warm execution environments: Lambda's reuse of an initialised function process, reproduced.

Lambda runs a function's init code (importing the handler module) once per execution environment
and then serves invocations from it one at a time, keeping module state and /tmp between them;
an environment that times out or crashes is discarded, and a new code or configuration means new
environments. Lambda may also initialise an environment before the first invoke. Locally each
environment is one child process running RUNTIME: it reads one request per line on stdin, writes
each invocation's output to its stdout and stderr (environment_output.py reads them into the
environment's log stream, between Lambda's START and END and REPORT lines) and one result line to
a pipe. It exits when stdin closes, and is killed when the server dies (its parent-death signal),
so no environment outlives the server, even a killed one. Its process group's resident memory is
sampled while it runs its init phase or an invocation and, over the function's MemorySize, the
group is killed, as Lambda's OOM killer kills an environment. Between invocations, and between an
init phase ahead of the first invoke and that invoke, its processes are stopped (SIGSTOP), as Lambda
freezes an environment once its runtime has answered: a thread or a process the handler leaves
working makes no progress until the next invocation thaws them (SIGCONT).
"""

from __future__ import annotations

import json
import math
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.local.errors import ServiceError
from pipelines.local.jobs.log_groups import LogGroups
from pipelines.local.lambdas.environment_output import PHASE_END, EnvironmentOutput
from pipelines.local.system import clock
from pipelines.local.system.interpreters import installation
from pipelines.local.system.isolation import (
    Confinement,
    PrivateTmp,
    as_started_directly,
    confined,
    in_own_processes,
)
from pipelines.local.system.memory import GroupMemory, peak_resident_bytes
from pipelines.local.system.supervision import (
    POLL_SECONDS,
    dying_with_parent,
    freeze,
    signal_group,
    stop_group,
    thaw,
)

INIT_SECONDS = 10.0  # Lambda's limit on an init phase ahead of the first invoke
INITIALISED = '"initialised"\n'  # the line RUNTIME writes once the handler's module is imported
IDLE_SECONDS = 600.0  # an environment unused this long is shut down, as Lambda reclaims them
STOP_GRACE_SECONDS = 2.0
MB = 1 << 20  # Lambda's MB, in MemorySize and in the REPORT line

RUNTIME = r"""
import decimal, importlib, json, os, sys, time, traceback
handler_name, results_fd, phase_end = sys.argv[1:4]
# A line of output is in the log as soon as it is printed, as Lambda's runtime sends it.
sys.stdout.reconfigure(line_buffering=True)
sys.stderr.reconfigure(line_buffering=True)


def end_phase():
    # What the init phase or an invocation printed is all out: say so on the same pipe.
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(1, phase_end.encode())


class Client:
    # A mobile client as awslambdaric's context names it.
    __slots__ = ["installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name"]


class ClientContext:
    __slots__ = ["custom", "env", "client"]


def from_dict(kind, values):
    # awslambdaric's make_obj_from_dict: each slot from the dict, None when it is not there.
    made = kind()
    for name in kind.__slots__:
        setattr(made, name, values.get(name))
    return made


def client_context(values):
    # The invoker's ClientContext, as awslambdaric builds it; None when the invoke sent none.
    if not values:
        return None
    made = from_dict(ClientContext, values)
    if made.client:
        made.client = from_dict(Client, made.client)
    return made


class LambdaContext:
    # What Lambda's Python runtime (awslambdaric) passes a handler; no Cognito identity here.
    def __init__(self, request):
        self.aws_request_id = request["request_id"]
        self.invoked_function_arn = request["arn"]
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.client_context = client_context(request.get("client_context"))
        self.identity = None
        self._deadline_ms = request["deadline_ms"]

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def log(self, message):
        sys.stdout.write(message)
        sys.stdout.flush()


def fault(error_type, message, request, stack=()):
    # Lambda's error document; its log gets the error and the traceback, as the runtime logs them.
    trace = traceback.format_list(stack)
    print(f"[ERROR] {error_type}: {message}", *(["Traceback (most recent call last):"] if trace else []),
          "".join(trace), sep="\n", end="", file=sys.stderr)
    return {"error": {"errorMessage": message, "errorType": error_type,
                      "requestId": request["request_id"], "stackTrace": trace}}


def number(value):
    # awslambdaric's to_json: a Decimal (as DynamoDB returns numbers) is a JSON number, nothing else is.
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(repr(value) + " is not JSON serializable")


sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
sys.dont_write_bytecode = True  # no __pycache__ in the read-only task root, even for a root user
results = os.fdopen(int(results_fd), "w")
handler = failure = None
try:
    module_name, function_name = handler_name.rsplit(".", 1)  # as awslambdaric reads _HANDLER
except ValueError as error:
    failure = ("Runtime.MalformedHandlerName", f"Bad handler '{handler_name}': {error}")
else:
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        failure = ("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {error}")
    else:
        handler = getattr(module, function_name, None)
        if handler is None:
            failure = ("Runtime.HandlerNotFound",
                       f"Handler '{function_name}' missing on module '{module_name}'")
end_phase()
results.write(json.dumps("initialised") + "\n")  # the init phase is over, however it went
results.flush()
for line in sys.stdin:
    request = json.loads(line)
    if handler is None:
        result = fault(*failure, request)
    else:
        try:
            value = handler(request["event"], LambdaContext(request))
        except Exception as error:
            # The first frame is this runtime's call of the handler, which Lambda's trace leaves out.
            result = fault(type(error).__name__, str(error), request,
                           traceback.extract_tb(error.__traceback__)[1:])
        else:
            try:
                result = {"payload": json.dumps(value, default=number)}
            except (TypeError, ValueError) as error:
                result = fault("Runtime.MarshalError", f"Unable to marshal response: {error}", request)
    end_phase()
    results.write(json.dumps(result) + "\n")
    results.flush()
"""


@dataclass(frozen=True)
class Configuration:
    """What an environment is made from; environments are shared only within one configuration."""

    function: str
    interpreter: str  # the runtime's Python (python_runtimes.py)
    code_dir: str
    handler: str
    environment: Mapping[str, str]
    confinement: Confinement | None = None  # what the environment must not see (system/isolation.py)
    ephemeral_storage_mb: int = 512  # the size of its /tmp
    init_start: str = ""  # Lambda's INIT_START line for its runtime's version (python_runtimes.py)
    # Which creation of the function: one deleted and created again under its name shares nothing.
    incarnation: str = ""

    def key(self) -> str:
        return json.dumps([
            self.function, self.interpreter, self.code_dir, self.handler, sorted(self.environment.items()),
            self.ephemeral_storage_mb, self.incarnation,
        ])


@dataclass(frozen=True)
class Request:
    """One invocation: the event, and what its context names (the request id, the ARN invoked)."""

    event: Any
    request_id: str
    arn: str
    client_context: dict[str, Any] | None = None  # the invoker's, decoded (synchronous invokes only)


@dataclass
class Outcome:
    """One invocation as Lambda reports it: the handler's result as JSON text, or an error document."""

    payload: str | None
    error: dict[str, Any] | None
    log: str


@dataclass
class Environment:
    """One initialised function process; used by one invocation at a time."""

    configuration: Configuration
    process: subprocess.Popen[str]
    results: int  # the read end of the result pipe
    folder: Path
    output: EnvironmentOutput
    started: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    invocations: int = 0
    initialised: bool = False
    init_ms: float = 0.0  # how long the init phase took, once it is over
    unread: bytes = b""  # what was read of the result pipe past the last line
    memory: GroupMemory = field(init=False)  # the resident memory of its processes
    out_of_memory: bool = False  # killed over MemorySize
    # In a PID namespace of its own (isolation.OWN_PROCESSES): what its handler leaves running
    # ends with it, and its exit status is the setup's shell's.
    own_processes: bool = False
    frozen: set[int] = field(default_factory=set)  # its processes, while they are stopped (freeze)

    def __post_init__(self) -> None:
        self.memory = GroupMemory(self.process.pid)

    @classmethod
    def start(
        cls, configuration: Configuration, scratch: Path, spawner: ThreadPoolExecutor,
        logs: LogGroups | None = None,
    ) -> Environment:
        """A new environment with a folder of its own in `scratch` (where its mounts are set up)
        and a /tmp of its own, writing its stream into the function's log group in `logs`. It is
        started from the `spawner` thread, which lives as long as the environments: its
        parent-death signal fires when the thread that started it ends."""
        folder = Path(tempfile.mkdtemp(prefix=f"{configuration.function}-", dir=scratch))
        read_end, write_end = os.pipe()
        output_read, output_write = os.pipe()
        # Lambda's stream of one environment: `2024/06/01/[$LATEST]<32 hex digits>`.
        version = configuration.environment["AWS_LAMBDA_FUNCTION_VERSION"]
        name = time.strftime(f"%Y/%m/%d/[{version}]", time.gmtime()) + uuid.uuid4().hex
        argv = [configuration.interpreter, "-c", RUNTIME, configuration.handler, str(write_end),
                PHASE_END.decode()]
        code_dir = Path(configuration.code_dir)  # its code and home as Lambda's: there, read-only
        shown = (code_dir, code_dir.parent / "home", installation(Path(configuration.interpreter)))
        argv = confined(argv, folder, configuration.confinement, shown=shown, busy_fds=(write_end,),
                        tmp=PrivateTmp(size_mb=configuration.ephemeral_storage_mb), own_processes=True)
        env = {**configuration.environment, "AWS_LAMBDA_LOG_STREAM_NAME": name}
        # SIGKILL: confined, the process is `unshare`, which ignores SIGTERM while it waits, and
        # whose end ends its PID namespace, even a frozen one that could not read stdin's end.
        launch = dying_with_parent(argv, env, configuration.code_dir, signal.SIGKILL)
        try:
            process = _started_on(
                spawner,
                launch.argv,
                stdin=subprocess.PIPE,
                stdout=output_write,
                stderr=output_write,
                text=True,
                env=env,
                cwd=configuration.code_dir,
                pass_fds=(write_end,),
                start_new_session=True,  # a group of its own, whose memory is its sandbox's
                preexec_fn=launch.preexec_fn,
            )
        finally:
            os.close(write_end)
            os.close(output_write)
        group = configuration.environment["AWS_LAMBDA_LOG_GROUP_NAME"]
        stream = logs.open(group, name) if logs is not None else None
        output = EnvironmentOutput(output_read, stream, opening=configuration.init_start)
        return cls(configuration, process, read_end, folder, output, own_processes=in_own_processes(argv))

    def invoke(self, invocation: Request, timeout: float) -> Outcome:
        """Run one invocation; on a timeout or a crash the environment is left dead. The first
        invocation's log begins with what the init phase printed, as Lambda's first log does; in
        the stream the invocation's output is between Lambda's START and its END and REPORT."""
        first = self.invocations == 0
        self.invocations += 1
        deadline_ms = int((time.time() + timeout) * 1000)  # the runtime API's Lambda-Runtime-Deadline-Ms
        request = json.dumps({
            "event": invocation.event, "request_id": invocation.request_id, "arn": invocation.arn,
            "deadline_ms": deadline_ms, "client_context": invocation.client_context,
        }) + "\n"
        version = self.configuration.environment["AWS_LAMBDA_FUNCTION_VERSION"]
        deadline = time.monotonic() + timeout
        began = time.monotonic()
        log = ""
        line: str | None = ""
        self.thaw()
        try:
            line = self.initialise(deadline)
            if first and line:
                log = self.output.phase(STOP_GRACE_SECONDS)
            start = f"START RequestId: {invocation.request_id} Version: {version}\n"
            self.output.platform(start)
            log += start
            began = time.monotonic()
            if line:
                assert self.process.stdin is not None
                self.process.stdin.write(request)
                self.process.stdin.flush()
                line = self._line(deadline)
        except (BrokenPipeError, OSError):
            pass
        self.last_used = time.monotonic()
        duration_ms = (self.last_used - began) * 1000
        used_mb = self._max_memory_used_mb()
        if line:
            self.freeze()
            log += self.output.phase(STOP_GRACE_SECONDS)
            log += self._report(invocation.request_id, duration_ms, used_mb, first)
            result = json.loads(line)
            return Outcome(result.get("payload"), result.get("error"), log)
        self.close()
        log += self.output.phase(STOP_GRACE_SECONDS)
        if line is None:
            failure = ("Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds")
            timed_out = f"{clock.now_timestamp()} {invocation.request_id} {failure[1]}\n"
            self.output.platform(timed_out)
            log += timed_out
        else:
            status = exit_status(self.process.returncode, self.own_processes)
            kind = "Runtime.OutOfMemory" if self.out_of_memory else "Runtime.ExitError"
            failure = (kind, f"Runtime exited with error: {status}")
        log += self._report(invocation.request_id, duration_ms, used_mb, first)
        # Errors of the platform, not of the handler: no requestId or stackTrace members.
        message = f"RequestId: {invocation.request_id} Error: {failure[1]}"
        return Outcome(None, {"errorMessage": message, "errorType": failure[0]}, log)

    def _report(self, request_id: str, duration_ms: float, used_mb: int, first: bool) -> str:
        """Lambda's END and REPORT lines into the stream; returned for the invocation's log, which
        on Lambda holds them too."""
        init = f"Init Duration: {self.init_ms:.2f} ms\t" if first and self.initialised else ""
        lines = (
            f"END RequestId: {request_id}\n",
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {math.ceil(duration_ms)} ms\tMemory Size: {self._memory_size_mb} MB\t"
            f"Max Memory Used: {used_mb} MB\t{init}\n",
        )
        for line in lines:
            self.output.platform(line)
        return "".join(lines)

    def initialise(self, deadline: float) -> str | None:
        """Wait (until `deadline`, monotonic) for the end of the init phase, which the runtime
        announces with one line: that line, or None if it did not come in time, "" if the process ended."""
        if self.initialised:
            return INITIALISED
        line = self._line(deadline)
        self.initialised = line == INITIALISED
        self.init_ms = (time.monotonic() - self.started) * 1000
        return line

    def freeze(self) -> None:
        """Stop its processes until the next invocation, as Lambda freezes an environment whose
        runtime has answered. Only one in a PID namespace of its own: there every process it
        leaves ends with it, a stopped one too, even when the server is killed."""
        if self.own_processes and not self.frozen:
            self.frozen = freeze(self.memory.processes)

    def thaw(self) -> None:
        thaw(self.frozen)
        self.frozen = set()

    @property
    def _memory_size_mb(self) -> int:
        return int(self.configuration.environment["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])

    def _max_memory_used_mb(self) -> int:
        """Lambda's Max Memory Used: the environment process's peak resident memory (VmHWM), or
        the highest its group was sampled at once it is gone, in MB rounded up."""
        peak = max(peak_resident_bytes(self.process.pid), self.memory.peak_bytes)
        return math.ceil(peak / MB)

    def _line(self, deadline: float) -> str | None:
        """The next line of the result pipe, read from the descriptor itself (a buffered reader
        may hold a second line that select() would then not see); "" once the process ended,
        also when it was killed over MemorySize while waiting."""
        while b"\n" not in self.unread:
            wait = min(POLL_SECONDS, max(0.0, deadline - time.monotonic()))
            ready, _, _ = select.select([self.results], [], [], wait)
            if not ready:
                if self._over_memory():
                    return ""
                if time.monotonic() >= deadline:
                    return None
                continue
            chunk = os.read(self.results, 1 << 16)
            if not chunk:
                return ""
            self.unread += chunk
        line, _, self.unread = self.unread.partition(b"\n")
        return line.decode() + "\n"

    def _over_memory(self) -> bool:
        """Whether its processes hold more than MemorySize; if so they are killed (SIGKILL)."""
        if not self.memory.exceeds(self._memory_size_mb * MB):
            return False
        self.out_of_memory = True
        signal_group(self.process.pid, signal.SIGKILL)
        self.process.wait()
        return True

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        self.thaw()  # a stopped process would hold its SIGTERM until the grace is over
        with suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        stop_group(self.process, STOP_GRACE_SECONDS)
        if self.results >= 0:  # closed once: the number may be another file's by the next call
            os.close(self.results)
            self.results = -1
        shutil.rmtree(self.folder, ignore_errors=True)


def _started_on(spawner: ThreadPoolExecutor, argv: list[str], **popen: Any) -> subprocess.Popen[str]:
    """`argv` started (subprocess.Popen with `popen`) on the spawner thread; Lambda's
    ServiceException once the server is stopping."""
    try:
        future: Future[subprocess.Popen[str]] = spawner.submit(lambda: subprocess.Popen(argv, **popen))
    except RuntimeError as error:  # shut down
        raise ServiceError("ServiceException", "the local Lambda service is shutting down", 500) from error
    return future.result()


def exit_status(code: int | None, from_shell: bool = False) -> str:
    """How Lambda's runtime names a process's end: `exit status 3`, `signal: killed`. `from_shell`:
    the code is a shell's, which reports a command killed by signal N as 128 + N (the first process
    of a PID namespace, isolation.OWN_PROCESSES)."""
    if code is not None:
        code = as_started_directly(code, from_shell)
        if code < 0:
            return f"signal: {signal.strsignal(-code) or -code}".lower()
    return f"exit status {code}"


class WarmEnvironments:
    """Idle environments by configuration: an invocation takes one (or starts one) and gives it
    back; a newer configuration of the same function retires the older ones."""

    def __init__(self, scratch: Path, logs: LogGroups | None = None) -> None:
        """`scratch` holds the environments' folders; what is in it is an earlier server's, whose
        environments ended with it, so it is emptied. Each environment writes its log stream into
        `logs`."""
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True, mode=0o700)
        self._scratch = scratch
        self._logs = logs
        self._lock = threading.Lock()
        self._idle: dict[str, list[Environment]] = {}
        self._closed = False
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lambda-spawner")

    def invoke(self, configuration: Configuration, request: Request, timeout: float) -> Outcome:
        environment = self._take(configuration) or self._start(configuration)
        outcome = environment.invoke(request, timeout)
        self._give_back(environment)
        return outcome

    def prepare(self, configuration: Configuration, prepared: Callable[[], None]) -> None:
        """Initialise one environment ahead of the first invoke, in the background, unless one
        of this configuration is already idle (code uploaded again unchanged); call `prepared`
        once its init phase is over (or ran out of time), or at once if one was idle. Until then
        the function's other environments stay: an update in progress still invokes them."""

        def start() -> None:
            environment = None
            try:
                environment = self._start(configuration)
                if environment.initialise(time.monotonic() + INIT_SECONDS) == INITIALISED:
                    environment.freeze()  # until its first invoke
            except ServiceError:  # the server is stopping: no environment to prepare
                pass
            finally:
                prepared()
                self._retire_others(configuration)
                if environment is not None:
                    self._give_back(environment)

        with self._lock:
            idle = bool(self._idle.get(configuration.key()))
        if idle:
            prepared()
            self._retire_others(configuration)
            return
        threading.Thread(target=start, name=f"lambda-init-{configuration.function}", daemon=True).start()

    def _start(self, configuration: Configuration) -> Environment:
        return Environment.start(configuration, self._scratch, self._spawner, self._logs)

    def _take(self, configuration: Configuration) -> Environment | None:
        """An idle environment of this configuration; one found dead on the way is closed."""
        self._retire_others(configuration)
        dead: list[Environment] = []
        found = None
        with self._lock:
            pool = self._idle.get(configuration.key(), [])
            while pool and found is None:
                environment = pool.pop()
                if environment.alive:
                    found = environment
                else:
                    dead.append(environment)
        for environment in dead:
            environment.close()
        return found

    def _give_back(self, environment: Environment) -> None:
        expired: list[Environment] = []
        with self._lock:
            now = time.monotonic()
            for pool in self._idle.values():
                expired += [e for e in pool if now - e.last_used > IDLE_SECONDS]
                pool[:] = [e for e in pool if now - e.last_used <= IDLE_SECONDS]
            if environment.alive and not self._closed:
                self._idle.setdefault(environment.configuration.key(), []).append(environment)
            else:
                expired.append(environment)
        for stale in expired:
            stale.close()

    def _retire_others(self, configuration: Configuration) -> None:
        """Close the idle environments of this function made from another configuration."""
        self.retire(configuration.function, keep=configuration.key())

    def retire(self, function: str, keep: str = "") -> None:
        """Close the idle environments of `function` but those of the configuration `keep`; one busy
        with an invocation finishes it, and is never taken again by another configuration."""
        with self._lock:
            retired = [
                environment
                for key, pool in self._idle.items()
                if key != keep
                for environment in pool
                if environment.configuration.function == function
            ]
            for key in list(self._idle):
                self._idle[key] = [e for e in self._idle[key] if e not in retired]
        for environment in retired:
            environment.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            everything = [environment for pool in self._idle.values() for environment in pool]
            self._idle.clear()
        for environment in everything:
            environment.close()
        self._spawner.shutdown(wait=False)

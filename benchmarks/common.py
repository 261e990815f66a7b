"""Shared helpers for the benchmark scripts: the cache dir, side virtualenvs, child processes,
a deployed local endpoint to measure, and plain-text tables.

Nothing here is imported by the project; benchmarks are scripts that print their figures.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
CACHE = Path(os.environ.get("BENCH_CACHE_DIR", BENCH / ".cache"))
PYTHON = sys.executable
LOOPBACK = "127.0.0.1"


def log(message: str) -> None:
    """Progress goes to stderr so stdout holds only the figures."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- side virtualenvs ------------------------------------------------------------------------


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(
    name: str,
    requirement_sets: Sequence[Sequence[str]],
    *,
    no_deps: Sequence[str] = (),
    timeout: float = 1800.0,
) -> Path:
    """Create ``CACHE/venvs/<name>`` once and install the pinned requirements into it.

    Each set is one ``pip install`` (so a later set can pin over what an earlier one pulled in);
    ``no_deps`` are installed last with ``--no-deps``. A stamp holding the hash of the whole
    recipe makes a second run a no-op, and a changed recipe rebuilds the venv from scratch."""
    venv = CACHE / "venvs" / name
    # The venv's own path is part of the recipe: its scripts' shebangs name it, so a venv copied or
    # moved elsewhere is rebuilt rather than failing to start its entry points.
    recipe = json.dumps(
        {"sets": requirement_sets, "no_deps": no_deps, "python": sys.version, "path": str(venv)}
    )
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    stamp = venv / ".bench-stamp"
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return venv_python(venv)
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    log(f"creating {venv} (once; later runs reuse it)")
    # The base interpreter, not this venv's, so the side venv shares nothing with the project's.
    base = getattr(sys, "_base_executable", None) or PYTHON
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv_python(venv))
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    deadline = time.monotonic() + timeout
    for requirements in requirement_sets:
        log(f"{name}: pip install {' '.join(requirements)}")
        subprocess.run([*pip, *requirements], check=True, timeout=max(60.0, deadline - time.monotonic()))
    if no_deps:
        log(f"{name}: pip install --no-deps {' '.join(no_deps)}")
        subprocess.run(
            [*pip, "--no-deps", *no_deps], check=True, timeout=max(60.0, deadline - time.monotonic())
        )
    stamp.write_text(digest)
    return venv_python(venv)


def site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Path(out.stdout.strip())


def package_versions(python: Path | str, names: Iterable[str]) -> dict[str, str]:
    code = (
        "import json, sys\n"
        "from importlib import metadata\n"
        "out = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        out[name] = metadata.version(name)\n"
        "    except metadata.PackageNotFoundError:\n"
        "        out[name] = '-'\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(result.stdout)


# --- child processes -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def start_process(
    argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a server in its own process group, stdout+stderr to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as handle:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(cwd) if cwd else None,
            start_new_session=True,
        )


def stop_process(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM the process group we started (its pid is the group id), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_http_ok(
    url: str, process: subprocess.Popen[bytes] | None, timeout: float, log_path: Path | None = None
) -> float:
    """Poll ``url`` until it answers 200; returns the seconds it took. Bounded by ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if process is not None and process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:] if log_path else ""
            raise RuntimeError(f"server exited with {process.returncode} before {url} was up:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.1)
    tail = log_path.read_text(errors="replace")[-3000:] if log_path else ""
    raise TimeoutError(f"{url} not healthy within {timeout:.0f} s:\n{tail}")


def read_listening_port(log_path: Path, process: subprocess.Popen[bytes], timeout: float) -> int:
    """The port from a model server's ``LISTENING <port>`` line (see model_server.py)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if log_path.exists():
            match = re.search(r"^LISTENING (\d+)$", log_path.read_text(errors="replace"), re.M)
            if match:
                return int(match.group(1))
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        time.sleep(0.05)
    raise TimeoutError(f"no LISTENING line in {log_path} within {timeout:.0f} s")


# --- a deployed local endpoint ---------------------------------------------------------------


class CliFailed(subprocess.CalledProcessError):
    """A CLI command exited non-zero; printed, it ends with what the command printed, so a
    benchmark that stops on it says why."""

    def __str__(self) -> str:
        return f"{super().__str__()}\n{(self.stdout or '')[-2000:]}{(self.stderr or '')[-2000:]}"


def cli(state_dir: Path, *args: str, timeout: float = 900.0) -> subprocess.CompletedProcess[str]:
    """``python -m pipelines ARGS`` against the local target with its own state dir."""
    env = {**os.environ, "PIPELINE_STATE_DIR": str(state_dir), "PIPELINE_TARGET": "local"}
    argv = [PYTHON, "-m", "pipelines", *args]
    done = subprocess.run(argv, cwd=REPO, env=env, text=True, capture_output=True, timeout=timeout)
    if done.returncode:
        raise CliFailed(done.returncode, argv, done.stdout, done.stderr)
    return done


def deploy_endpoint(state_dir: Path) -> dict[str, float]:
    """upload, upsert, start --wait in ``state_dir``: leaves an InService endpoint behind."""
    times: dict[str, float] = {}
    for label, args in (
        ("data upload", ("data", "upload", "data")),
        ("upsert", ("upsert",)),
        ("start --wait", ("start", "--wait")),
    ):
        start = time.perf_counter()
        cli(state_dir, *args)
        times[label] = time.perf_counter() - start
    return times


def server_info(state_dir: Path) -> dict[str, Any]:
    return json.loads((state_dir / "server.json").read_text())


def runtime_signer(state_dir: Path, port: int, path: str) -> Callable[[bytes], dict[str, str]]:
    """For the local runtime API, which serves signed requests only: the headers (Host, JSON
    content type and accept, SigV4 signature) of a POST of one body to `path`."""
    from pipelines.local import daemon

    url = f"http://127.0.0.1:{port}{path}"
    plain = {"Content-Type": "application/json", "Accept": "application/json"}
    return lambda body: daemon.signed_headers(state_dir, "POST", url, body, plain)


def wait_endpoint_in_service(state_dir: Path, endpoint: str, timeout: float = 180.0) -> None:
    """The deploy Lambda returns at once; the endpoint comes up a little later."""
    path = f"/endpoints/{endpoint}/invocations"
    port = int(server_info(state_dir)["port"])
    sign = runtime_signer(state_dir, port, path)
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", data=b'"fine"', method="POST", headers=sign(b'"fine"')
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"endpoint {endpoint} not serving within {timeout:.0f} s")


def stop_local_server(state_dir: Path) -> None:
    try:
        cli(state_dir, "local", "down", timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        log(f"local down failed: {exc}")


def remove_local_state(state_dir: Path) -> None:
    """Stop the state's server and delete the state, Lambda code folders (read-only) included."""
    stop_local_server(state_dir)
    for folder, _, _ in os.walk(state_dir):
        Path(folder).chmod(0o700)
    shutil.rmtree(state_dir)


def find_model_archive(state_dir: Path) -> Path:
    archives = sorted((state_dir / "store").rglob("model.tar.gz"), key=lambda p: p.stat().st_mtime)
    archives = [a for a in archives if ".versions" not in a.parts]
    if not archives:
        raise FileNotFoundError(f"no model.tar.gz under {state_dir / 'store'}")
    return archives[-1]


def extract(archive: Path, dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(dest, filter="data")
    return dest


def endpoint_server_pid(state_dir: Path, endpoint: str) -> int | None:
    """The pid of the endpoint's model server process (a child of the local server)."""
    info = server_info(state_dir)
    parent = int(info["pid"])
    children: list[str] = []
    # hosting.py forks model servers from a spawner thread: look at every thread's children.
    for task in Path(f"/proc/{parent}/task").glob("*"):
        try:
            children += (task / "children").read_text().split()
        except OSError:
            continue
    for pid in children:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        serves = b"pipelines.local.hosting.model_server" in cmdline
        if serves and any(endpoint.encode() in a for a in cmdline):
            return int(pid)
    for pid in children:  # one endpoint per state dir in these benchmarks
        try:
            if b"pipelines.local.hosting.model_server" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return int(pid)
        except OSError:
            continue
    return None


def endpoint_server_log(state_dir: Path, endpoint: str) -> Path | None:
    """The log the endpoint's model server writes (hosting.py sends its stdout and stderr there)."""
    pid = endpoint_server_pid(state_dir, endpoint)
    try:
        return Path(os.readlink(f"/proc/{pid}/fd/1")) if pid is not None else None
    except OSError:
        return None


# --- output ----------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table (readable as plain text too)."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line(headers), "| " + " | ".join("-" * w for w in widths) + " |"]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


MEASUREMENT_HEADERS = ["payload", "concurrency", "req/s", "reviews/s", "p50 ms", "p99 ms", "errors"]


def measurement_cells(result: dict[str, Any]) -> list[object]:
    """One measured cell (loadgen/interleave result) as the columns of MEASUREMENT_HEADERS."""
    return [
        result["payload"],
        result["concurrency"],
        f"{result['rps']:.1f}",
        f"{result['reviews_per_s']:.0f}",
        f"{result['p50_ms']:.2f}",
        f"{result['p99_ms']:.2f}",
        result["errors"],
    ]


def machine_description() -> str:
    mem_kb = 0
    try:
        for row in Path("/proc/meminfo").read_text().splitlines():
            if row.startswith("MemTotal:"):
                mem_kb = int(row.split()[1])
    except OSError:
        pass
    cpu = platform.processor() or ""
    try:
        for row in Path("/proc/cpuinfo").read_text().splitlines():
            if row.startswith("model name"):
                cpu = row.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem_kb / 1024 / 1024:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


# --- a local SageMaker server we own ----------------------------------------------------------


def start_local_server(
    state_dir: Path, log_path: Path, endpoint: str, timeout: float = 180.0
) -> tuple[subprocess.Popen[bytes], int]:
    """``python -m pipelines.local.api.server`` from this checkout on ``state_dir`` (whose own server
    must be stopped); it restores the endpoint before publishing server.json. Returns the process
    (its own group: stop it with stop_process) and the port."""
    (state_dir / "server.json").unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = start_process(
        [PYTHON, "-m", "pipelines.local.api.server", "--state-dir", str(state_dir), "--port", "0"],
        log_path,
        env,
        cwd=REPO,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (state_dir / "server.json").exists():
            info = json.loads((state_dir / "server.json").read_text())
            if info.get("pid") == process.pid:
                wait_endpoint_in_service(state_dir, endpoint, timeout=timeout)
                return process, int(info["port"])
        if process.poll() is not None:
            raise RuntimeError(f"local server exited: {log_path.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    stop_process(process)
    raise TimeoutError(f"local server on {state_dir} did not start within {timeout:.0f} s")


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float, float] | None:
    """A distribution-free interval for the median of what `values` sample: between the k-th
    smallest and the k-th largest, k the largest for which the interval covers the median with at
    least `confidence` (binomial order statistics); with its exact coverage. None for fewer than 6
    values, which no such interval covers at 95 %. Rounds vary by more than the goal's margin
    (machine noise), so a median alone cannot say whether the goal is met."""
    ordered, n = sorted(values), len(values)
    below = 0.0  # P(Binomial(n, 1/2) < k): the median falls outside on one side
    best = None
    for k in range(1, n // 2 + 1):
        below += math.comb(n, k - 1) / 2**n
        coverage = 1 - 2 * below
        if coverage < confidence:
            break
        best = (ordered[k - 1], ordered[n - k], coverage)
    return best

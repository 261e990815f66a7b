"""The serving stacks compared by benchmarks/endpoint.py, each started as a local process on
127.0.0.1 and serving the same model.tar.gz.

- ``ours``: pipelines/local/model_server.py (the local inference container), started directly;
  its pre-forked workers: ``SAGEMAKER_MODEL_SERVER_WORKERS``, by default one per available core.
- ``sagemaker-containers``: the SageMaker scikit-learn serving stack, sagemaker-containers 2.8.6.post2
  (gunicorn + gevent + Flask), in its own venv under ``benchmarks/.cache/venvs/``, started with its
  ``serve`` entry point as the image's ``serve`` command does, with the image's environment
  (``SAGEMAKER_PROGRAM``, ``SAGEMAKER_SUBMIT_DIRECTORY``, ``SAGEMAKER_SERVING_MODULE``, ...).
- ``mlflow``: ``mlflow models serve --env-manager local`` (uvicorn) on the same scikit-learn
  pipeline logged with ``mlflow.sklearn`` into a local file store, in its own venv.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    BENCH,
    CACHE,
    LOOPBACK,
    PYTHON,
    REPO,
    ensure_venv,
    extract,
    free_port,
    log,
    read_listening_port,
    site_packages,
    start_process,
    stop_process,
    wait_http_ok,
)

# The model was trained by the project's venv: the side venvs carry the same scientific stack so
# the pickle loads and inference.py's scikit-learn major.minor check passes.
SCIENCE = ["scikit-learn==1.9.1", "numpy==2.4.6", "scipy==1.17.1", "joblib==1.6.0"]

# sagemaker-containers 2.8.6.post2 declares flask==1.1.1 and the `typing` backport (which shadows
# the standard library's typing on Python 3 and breaks it), so it goes in with --no-deps and its
# real dependencies are listed here, pinned to releases Flask 1.1.1 still works with.
SMC_STACK = [
    "flask==1.1.1",
    "werkzeug==2.0.3",
    "jinja2==3.0.3",
    "itsdangerous==2.0.1",
    "markupsafe==2.0.1",
    "click==8.1.8",
    "gunicorn==26.2.0",
    "gevent==25.5.1",
    "protobuf==3.20.3",
    "six==1.17.0",
    "retrying==1.4.2",
    "inotify_simple==1.2.1",
    "paramiko==3.5.1",
    "psutil==7.0.0",
    "boto3==1.44.5",
    "setuptools==80.9.0",
    "wheel==0.45.1",
]
SMC_PACKAGE = "sagemaker-containers==2.8.6.post2"

MLFLOW_STACK = ["mlflow==3.17.2", "pandas==3.1.1"]

# The model server's app under gunicorn: the compiled scorer needs numpy only.
GUNICORN_STACK = ["numpy==2.4.6", "gunicorn==26.2.0"]
GUNICORN_THREADS = 8  # per worker; predict_fn still runs one call at a time per process

# Patches applied to the installed sagemaker-containers files (idempotent, each checked):
#   1. collections.Mapping -> collections.abc.Mapping: the alias was removed in Python 3.10; the
#      SageMaker images apply the same rewrite when they install the package.
#   2. gunicorn binds 127.0.0.1 instead of 0.0.0.0: inside a container 0.0.0.0 is the container's
#      own network namespace; on this machine it would be every interface. Nothing else changes.
SMC_PATCHES = [
    (
        "sagemaker_containers/_mapping.py",
        "class MappingMixin(collections.Mapping):",
        "class MappingMixin(collections.abc.Mapping):",
    ),
    (
        "sagemaker_containers/_mapping.py",
        "import collections\n",
        "import collections\nimport collections.abc\n",
    ),
    (
        "sagemaker_containers/_server.py",
        'gunicorn_bind_address = "0.0.0.0:{}".format(env.http_port)',
        'gunicorn_bind_address = "127.0.0.1:{}".format(env.http_port)',
    ),
]


def ensure_smc_venv() -> Path:
    python = ensure_venv("sagemaker-containers", [SCIENCE, SMC_STACK], no_deps=[SMC_PACKAGE])
    patch_smc(site_packages(python))
    serving = site_packages(python) / "bench_sklearn_serving.py"
    source = BENCH / "sklearn_serving.py"
    if not serving.is_file() or serving.read_bytes() != source.read_bytes():
        shutil.copyfile(source, serving)
    return python


def patch_smc(site: Path) -> None:
    for relative, old, new in SMC_PATCHES:
        path = site / relative
        text = path.read_text()
        if new in text and (old not in text or old in new):
            continue
        if old not in text:
            raise RuntimeError(f"cannot patch {path}: {old!r} not found")
        path.write_text(text.replace(old, new, 1))
        log(f"patched {path.name}: {old.strip()!r} -> {new.strip()!r}")
    for pyc in (site / "sagemaker_containers").rglob("__pycache__"):
        shutil.rmtree(pyc, ignore_errors=True)


def ensure_mlflow_venv() -> Path:
    return ensure_venv("mlflow", [SCIENCE + MLFLOW_STACK])


def ensure_gunicorn_venv() -> Path:
    return ensure_venv("gunicorn", [GUNICORN_STACK])


# How each stack's log says how many worker processes serve requests.
def _ours_workers(text: str) -> int | None:
    """model_server.py writes ``model server: N worker(s)`` once it is listening."""
    found = re.findall(r"^model server: (\d+) workers?$", text, re.MULTILINE)
    return int(found[-1]) if found else None  # hosting appends to its log: the last start counts


def _gunicorn_workers(text: str) -> int | None:
    """gunicorn logs ``Booting worker with pid: P`` per worker started, ``Worker exiting`` per exit."""
    booted = len(set(re.findall(r"Booting worker with pid: (\d+)", text)))
    exited = len(set(re.findall(r"Worker exiting \(pid: (\d+)\)", text)))
    return booted - exited if booted else None


def _mlflow_workers(text: str) -> int | None:
    """mlflow logs the uvicorn command it runs, ``... --workers N ...``."""
    found = re.findall(r"uvicorn .*--workers (\d+)", text)
    return int(found[-1]) if found else None


WORKER_COUNTS: dict[str, Callable[[str], int | None]] = {
    "ours": _ours_workers,
    "gunicorn": _gunicorn_workers,
    "sagemaker-containers": _gunicorn_workers,
    "mlflow": _mlflow_workers,
}


@dataclass
class Server:
    """A started server: where to send requests and how to stop it."""

    name: str
    port: int
    invocations_path: str
    process: subprocess.Popen[bytes] | None
    log_path: Path | None
    body_format: str = "sagemaker"  # or "mlflow": {"inputs": [...]}
    pids: list[int] = field(default_factory=list)
    startup_seconds: float = 0.0
    stack: str = "ours"  # a key of WORKER_COUNTS: which log format says how many workers it runs

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def workers(self) -> int | None:
        """How many worker processes serve requests, as the server's log says (None: not said)."""
        if self.log_path is None or not self.log_path.is_file():
            return None
        return WORKER_COUNTS[self.stack](self.log_path.read_text(errors="replace"))


def start_ours(model_tar: Path, work: Path, name: str = "ours-direct", workers: int | None = None) -> Server:
    """pipelines/local/model_server.py on the unpacked artifact, as hosting.py starts it, with
    ``SAGEMAKER_MODEL_SERVER_WORKERS=workers`` if given (else its default: one per core)."""
    model_dir = extract(model_tar, work / name / "model")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGEMAKER_")}
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONUNBUFFERED"] = "1"
    if workers:
        env["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(workers)
    log_path = work / name / "server.log"
    import time

    start = time.monotonic()
    process = start_process(
        [PYTHON, "-m", "pipelines.local.hosting.model_server", "--model-dir", str(model_dir), "--port", "0"],
        log_path,
        env,
        cwd=model_dir.parent,
    )
    port = read_listening_port(log_path, process, 120)
    wait_http_ok(f"http://{LOOPBACK}:{port}/ping", process, 60, log_path)
    return Server(
        name,
        port,
        "/invocations",
        process,
        log_path,
        pids=[process.pid],
        startup_seconds=time.monotonic() - start,
    )


def start_gunicorn(
    model_tar: Path, work: Path, name: str = "ours-gunicorn", workers: int | None = None
) -> Server:
    """The model server's app (benchmarks/wsgi_app.py) under gunicorn: gthread workers, one per
    core like ours (or ``workers``), the model loaded once before the fork (--preload)."""
    import time

    python = ensure_gunicorn_venv()
    model_dir = extract(model_tar, work / name / "model")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGEMAKER_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(
        {
            "MODEL_DIR": str(model_dir),
            "PYTHONPATH": f"{BENCH}{os.pathsep}{REPO}",
            "PYTHONUNBUFFERED": "1",
            "HOME": str(work / name),
        }
    )
    argv = [
        str(python.parent / "gunicorn"),
        "--worker-class", "gthread",
        "--workers", str(workers or os.cpu_count() or 1),
        "--threads", str(GUNICORN_THREADS),
        "--preload",
        "--bind", f"{LOOPBACK}:{port}",
        "--backlog", "128",
        "--keep-alive", "300",
        "wsgi_app:application",
    ]
    log_path = work / name / "server.log"
    start = time.monotonic()
    process = start_process(argv, log_path, env, cwd=work / name)
    wait_http_ok(f"http://{LOOPBACK}:{port}/ping", process, 120, log_path)
    return Server(
        name, port, "/invocations", process, log_path, pids=[process.pid],
        startup_seconds=time.monotonic() - start, stack="gunicorn",
    )


def start_smc(
    model_tar: Path, work: Path, workers: int | None = None, name: str = "sagemaker-containers"
) -> Server:
    """The SageMaker scikit-learn serving stack: ``serve`` -> gunicorn -k gevent -> Flask worker.

    Laid out as in the container: the artifact is unpacked to ``<base>/model`` (``/opt/ml/model``),
    ``SAGEMAKER_SUBMIT_DIRECTORY`` is its ``code/`` folder and ``SAGEMAKER_PROGRAM`` inference.py,
    as the SageMaker SDK sets them for a model with an entry point; ``SAGEMAKER_SERVING_MODULE``
    names the scikit-learn container's WSGI app (bench_sklearn_serving:main, see
    sklearn_serving.py). ``SAGEMAKER_USE_NGINX=false``: no nginx in front (the image has one)."""
    import time

    python = ensure_smc_venv()
    base = work / name / "opt" / "ml"
    if base.exists():
        shutil.rmtree(base)
    model_dir = extract(model_tar, base / "model")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGEMAKER_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(
        {
            "PATH": f"{python.parent}{os.pathsep}{env.get('PATH', '')}",
            "SAGEMAKER_BASE_DIR": str(base),
            "SAGEMAKER_PROGRAM": "inference.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": str(model_dir / "code"),
            "SAGEMAKER_SERVING_MODULE": "bench_sklearn_serving:main",
            "SAGEMAKER_USE_NGINX": "false",
            "SAGEMAKER_BIND_TO_PORT": str(port),
            "SAGEMAKER_MODEL_SERVER_TIMEOUT": "60",
            "SAGEMAKER_REGION": "us-east-1",
            "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
            # `serve` pip-installs the user code dir (as in the image); keep that offline.
            "PIP_NO_INDEX": "1",
            "PIP_NO_BUILD_ISOLATION": "0",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PYTHONUNBUFFERED": "1",
            # gunicorn keeps a control socket under $HOME/.gunicorn: keep it in the work dir.
            "HOME": str(work / name),
        }
    )
    if workers:
        env["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(workers)
    log_path = work / name / "server.log"
    start = time.monotonic()
    process = start_process([str(python.parent / "serve")], log_path, env, cwd=base)
    wait_http_ok(f"http://{LOOPBACK}:{port}/ping", process, 180, log_path)
    return Server(
        name,
        port,
        "/invocations",
        process,
        log_path,
        pids=[process.pid],
        startup_seconds=time.monotonic() - start,
        stack="sagemaker-containers",
    )


def log_mlflow_model(model_tar: Path, work: Path) -> Path:
    """Log the artifact's scikit-learn pipeline with mlflow.sklearn into a file store; returns
    the local path of the logged model (what ``mlflow models serve -m`` gets)."""
    python = ensure_mlflow_venv()
    target = CACHE / "mlflow"
    marker = target / "model-for.json"
    digest = _sha256(model_tar)
    if marker.is_file():
        info = json.loads(marker.read_text())
        if info.get("sha256") == digest and Path(info["path"]).is_dir():
            return Path(info["path"])
    if target.exists():
        shutil.rmtree(target)
    model_dir = extract(model_tar, work / "mlflow-source")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(_mlflow_offline_env())
    result = subprocess.run(
        [
            str(python),
            str(BENCH / "mlflow_model.py"),
            "--model-dir",
            str(model_dir),
            "--store",
            str(target / "mlruns"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"logging the model with mlflow failed:\n{result.stderr[-3000:]}")
    path = Path(json.loads(result.stdout.strip().splitlines()[-1])["path"])
    marker.write_text(json.dumps({"sha256": digest, "path": str(path)}))
    return path


def _mlflow_offline_env() -> dict[str, str]:
    return {
        "MLFLOW_ENABLE_TELEMETRY": "false",
        # MLflow 3.x keeps the file store behind this flag; the brief asks for a file store.
        "MLFLOW_ALLOW_FILE_STORE": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "MLFLOW_TRACKING_URI": f"file://{CACHE / 'mlflow' / 'mlruns'}",
        "PYTHONUNBUFFERED": "1",
    }


def start_mlflow(model_tar: Path, work: Path, workers: int | None = None) -> Server:
    """``mlflow models serve -m <logged model> --env-manager local --host 127.0.0.1``."""
    import time

    model_path = log_mlflow_model(model_tar, work)
    python = ensure_mlflow_venv()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(_mlflow_offline_env())
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    argv = [
        str(python.parent / "mlflow"),
        "models",
        "serve",
        "-m",
        str(model_path),
        "--env-manager",
        "local",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
    ]
    if workers:
        argv += ["--workers", str(workers)]
    log_path = work / "mlflow" / "server.log"
    start = time.monotonic()
    process = start_process(argv, log_path, env, cwd=work)
    wait_http_ok(f"http://{LOOPBACK}:{port}/ping", process, 180, log_path)
    return Server(
        "mlflow",
        port,
        "/invocations",
        process,
        log_path,
        body_format="mlflow",
        pids=[process.pid],
        startup_seconds=time.monotonic() - start,
        stack="mlflow",
    )


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


if __name__ == "__main__":
    # `python benchmarks/stacks.py` builds both side venvs (a few minutes, once).
    sys.path.insert(0, str(BENCH))
    print(ensure_smc_venv())
    print(ensure_mlflow_venv())

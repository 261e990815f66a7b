"""Lambda's Python runtimes, reproduced: a function runs on its declared runtime's interpreter, with
what that runtime provides (the standard library and boto3), never on the server's own Python.

A `python3.12` function run on the server's 3.11, beside scikit-learn, pandas and the SageMaker SDK,
would pass here and fail on Lambda (a 3.12-only syntax, an import Lambda does not have). Each runtime
is a virtual environment under `.venv-lambda/<runtime>`, built by `make install` from a Python of that
version found on this machine, holding only the pinned boto3 of RUNTIME_REQUIREMENTS. A function
whose runtime has no such environment is refused at CreateFunction, naming what is missing.

Run as a module, `python -m pipelines.local.lambdas.python_runtimes python3.12` builds one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from pipelines import REPO_ROOT

RUNTIMES_DIR = REPO_ROOT / ".venv-lambda"
RUNTIME_REQUIREMENTS = Path(__file__).with_name("python-runtime-requirements.txt")
PYTHON_RUNTIME = re.compile(r"python(?P<version>3\.\d+)")


class UnavailableRuntime(ValueError):
    """The local Lambda cannot run this runtime; the message says what it has and how to add one."""


def built_runtimes() -> list[str]:
    return sorted(path.parent.parent.name for path in RUNTIMES_DIR.glob("python3.*/bin/python"))


def interpreter(runtime: str) -> Path:
    """The interpreter of `runtime`'s environment, or UnavailableRuntime saying why there is none."""
    found = PYTHON_RUNTIME.fullmatch(runtime)
    if found is None:
        raise UnavailableRuntime(
            f"The runtime parameter of {runtime} is not supported by the local Lambda: it runs "
            f"Python runtimes only (built here: {', '.join(built_runtimes()) or 'none'})."
        )
    python = RUNTIMES_DIR / runtime / "bin" / "python"
    if not python.exists():
        raise UnavailableRuntime(
            f"The local Lambda has no {runtime} runtime (built here: "
            f"{', '.join(built_runtimes()) or 'none'}): `python -m pipelines.local.lambdas."
            f"python_runtimes {runtime}` builds one from a Python {found['version']} on this machine "
            f"(`make install` builds the project's)."
        )
    return python


@dataclass(frozen=True)
class RuntimeVersion:
    """What Lambda's INIT_START line and a function's RuntimeVersionConfig name: on Lambda a release
    of the managed runtime; here the local build of it (its interpreter's version and the packages
    it holds), whose digest changes exactly when that build does."""

    name: str
    arn: str

    def init_start(self) -> str:
        """The line Lambda writes first into each new execution environment's log stream."""
        return f"INIT_START Runtime Version: {self.name}\tRuntime Version ARN: {self.arn}\n"


def runtime_version(runtime: str, region: str) -> RuntimeVersion:
    """`runtime`'s local build as a runtime version: `python:3.12.local-<digest>`, and an ARN of
    Lambda's form, `arn:aws:lambda:<region>::runtime:<64 hex digits>`."""
    built = ""
    with suppress(OSError):  # an environment removed since: its functions fail to run, as they should
        config = (RUNTIMES_DIR / runtime / "pyvenv.cfg").read_text(encoding="utf-8")
        built = next((line for line in config.splitlines() if line.startswith("version")), "")
    identity = "\n".join([runtime, built, RUNTIME_REQUIREMENTS.read_text(encoding="utf-8")])
    digest = hashlib.sha256(identity.encode()).hexdigest()
    name = f"python:{runtime.removeprefix('python')}.local-{digest[:8]}"
    return RuntimeVersion(name, f"arn:aws:lambda:{region}::runtime:{digest}")


def find_python(version: str) -> Path | None:
    """A working `python<version>` on PATH, else in pyenv's versions (whose shims may not resolve)."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which(f"python{version}")]
    with suppress(OSError):  # a pyenv this user may not read (another user's home) holds none for them
        pattern = f"versions/{version}.*/bin/python{version}"
        candidates += [str(path) for path in sorted(pyenv_root.glob(pattern))]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return Path(candidate)
    return None


def build(runtime: str) -> Path:
    """Create `runtime`'s environment: a venv of that Python holding only the pinned boto3."""
    found = PYTHON_RUNTIME.fullmatch(runtime)
    if found is None:
        raise UnavailableRuntime(f"{runtime} is not a Python runtime")
    python = find_python(found["version"])
    if python is None:
        raise UnavailableRuntime(
            f"no Python {found['version']} on this machine (looked for python{found['version']} on "
            f"PATH and in pyenv): the local Lambda needs it to run {runtime} functions; install one "
            f"(`pyenv install {found['version']}`, or the distribution's python{found['version']} "
            f"package) and run make again"
        )
    target = RUNTIMES_DIR / runtime
    subprocess.run([str(python), "-m", "venv", "--clear", str(target)], check=True)
    subprocess.run(
        [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps",
         "--disable-pip-version-check", "-r", str(RUNTIME_REQUIREMENTS)],
        check=True,
    )
    return target


def main(argv: list[str]) -> int:
    try:
        for runtime in argv:
            print(f"local Lambda runtime {runtime}: {build(runtime)}", file=sys.stderr)
    except UnavailableRuntime as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

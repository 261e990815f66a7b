"""What the scikit-learn image's toolkits would pip-install from a code directory, checked here
instead of installed.

The training toolkit runs `pip install -r requirements.txt` when the entry point's directory holds
one, and `pip install .` when it holds a setup.py; the serving toolkit pip-installs the inference
code's directory the same way when a model server starts. A local job or model server runs in this
machine's environment and installs nothing into it, so each requirement is checked against what is
installed here: one that is not satisfied fails the job or the deployment, naming it, where it would
otherwise run green with versions other than the ones SageMaker installs. A setup.py is refused: what
it installs is known only by running it.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from pipelines.local.jobs.outcome import JobError
from pipelines.local.storage.archives import UnsafeArchive, read_members

REQUIREMENTS_FILE = "requirements.txt"
SETUP_FILE = "setup.py"
_COMMENT = re.compile(r"(^|\s)#.*$")  # pip's rule: a # at the start or after whitespace
_CANNOT_INSTALL = "the local target installs nothing into a job"


def check_code_dir(code_dir: Path, toolkit: str) -> dict[str, str]:
    """check_installs for a code directory on disk (`toolkit` names who would install, for the
    message); a setup.py is any entry of that name, as the toolkit tests for it."""
    requirements = code_dir / REQUIREMENTS_FILE
    found = requirements.read_bytes() if requirements.is_file() else None
    return check_installs((code_dir / SETUP_FILE).exists(), found, toolkit)


def check_source_archive(archive: Path, toolkit: str) -> dict[str, str]:
    """check_installs for the top of a source tarball, read in one pass; an archive that cannot be
    read safely is left to the job, which fails when it unpacks it."""
    try:
        found = read_members(archive, (SETUP_FILE, REQUIREMENTS_FILE))
    except UnsafeArchive:
        return {}
    return check_installs(SETUP_FILE in found, found.get(REQUIREMENTS_FILE), toolkit)


def check_installs(has_setup: bool, requirements: bytes | None, toolkit: str) -> dict[str, str]:
    """The installed distributions that satisfy a requirements.txt, name (with the extras asked
    for, `pandas[timezone]`) to version ({} without one); raises
    JobError for a setup.py, or for the first requirement this environment does not satisfy."""
    if has_setup:
        raise JobError(
            f"ClientError: the code directory holds {SETUP_FILE}, which {toolkit} would pip-install "
            f"as a package (pip install .), running it and installing what it declares; "
            f"{_CANNOT_INSTALL} and cannot check that without running it: list the packages in "
            f"{REQUIREMENTS_FILE} instead"
        )
    return {} if requirements is None else _check_requirements_text(_text(requirements))


def _text(requirements: bytes) -> str:
    try:
        return requirements.decode("utf-8")
    except UnicodeDecodeError as error:
        raise JobError(f"ClientError: {REQUIREMENTS_FILE} is not UTF-8 text ({error})") from None


def _check_requirements_text(text: str) -> dict[str, str]:
    """Each requirement of the file checked in turn; the satisfied ones, with their version."""
    satisfied = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _COMMENT.sub("", raw).strip()
        if not line:
            continue
        where = f"{REQUIREMENTS_FILE} line {number} ({line!r})"
        requirement = _parse(line, where)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            raise JobError(
                f"ClientError: {where}: {requirement.name} is not installed in the local environment "
                f"and {_CANNOT_INSTALL}; install it here (pip install '{line}') to run this step"
            ) from None
        if not requirement.specifier.contains(installed, prereleases=True):
            raise JobError(
                f"ClientError: {where}: the local environment has {requirement.name} {installed}, "
                f"and {_CANNOT_INSTALL}; SageMaker would install {line}"
            )
        extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        satisfied[requirement.name + extras] = installed
    return satisfied


def installed_line(satisfied: dict[str, str]) -> str:
    """The satisfied requirements as a log line names them."""
    return ", ".join(f"{name} {installed}" for name, installed in satisfied.items())


def _parse(line: str, where: str) -> Requirement:
    """One requirement; pip's options and direct URLs name nothing that can be checked here."""
    if line.startswith("-"):
        raise JobError(f"ClientError: {where}: pip options cannot be checked locally ({_CANNOT_INSTALL})")
    try:
        requirement = Requirement(line)
    except InvalidRequirement as error:
        raise JobError(f"ClientError: {where} is not a valid requirement: {error}") from None
    if requirement.url:
        raise JobError(f"ClientError: {where}: a direct URL cannot be checked locally ({_CANNOT_INSTALL})")
    return requirement

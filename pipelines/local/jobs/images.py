"""Which container images a local job can stand in for, the refusal for every other image, and the
environment a process in that image starts with.

A local job runs its command in this machine's Python, so it behaves as a step would in the
SageMaker scikit-learn image only when that image's scikit-learn is the one installed here. A step
meant for another framework, or another scikit-learn release, would run green locally and fail (or
answer differently) on SageMaker; it is refused instead, naming the image and what is here.
"""

from __future__ import annotations

import functools
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from pipelines.local.jobs.image_python import image_digest
from pipelines.local.jobs.outcome import JobError
from pipelines.local.system.supervision import interpreter_environment

# <account>.dkr.ecr.<region>.amazonaws.com[.cn]/sagemaker-scikit-learn:<major>.<minor>-<build>-cpu-py3
_SKLEARN_IMAGE = re.compile(
    r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/sagemaker-scikit-learn:"
    r"(?P<release>\d+\.\d+)-\d+(?:-cpu)?(?:-py3)?$"
)


# The ENV lines of every SageMaker scikit-learn image's Dockerfile; its time zone is UTC too.
IMAGE_ENVIRONMENT = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "PYTHONIOENCODING": "UTF-8",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TZ": "UTC",
}


class UnsupportedImage(ValueError):
    """The local target cannot reproduce this image; the message says what it provides."""


@functools.cache
def local_sklearn_release() -> str:
    """`major.minor` of the scikit-learn installed here, as the image tags name it: read once per
    server (a metadata lookup, 1 ms at each job's start), as the image environments' links are."""
    try:
        return ".".join(version("scikit-learn").split(".")[:2])
    except PackageNotFoundError:
        return "none"


def check_image(image_uri: str) -> None:
    """Raise UnsupportedImage unless the local environment reproduces `image_uri`."""
    here = local_sklearn_release()
    provides = (
        f"the local target runs jobs and model servers in the SageMaker scikit-learn image's contract with "
        f"scikit-learn {here} (image tag {here}-<build>-cpu-py3)"
    )
    match = _SKLEARN_IMAGE.match(image_uri)
    if match is None:
        raise UnsupportedImage(f"image {image_uri!r} cannot run locally: {provides}")
    if match.group("release") != here:
        raise UnsupportedImage(
            f"image {image_uri!r} has scikit-learn {match.group('release')}, which the local "
            f"target cannot reproduce: {provides}"
        )


def resolved_digest(image_uri: str) -> str | None:
    """What `image_uri` resolves to here, as SageMaker resolves an image's tag to its digest: the
    digest of the local environment that stands in for it (image_python.image_digest); None for an
    image nothing here stands in for."""
    try:
        check_image(image_uri)
    except UnsupportedImage:
        return None
    return image_digest()


def require_image(image_uri: object) -> None:
    """At job start, where the URI may have come from a parameter: fail the job, not run it."""
    if not isinstance(image_uri, str):
        raise JobError(f"ValidationException: the job names no container image (got {image_uri!r})")
    try:
        check_image(image_uri)
    except UnsupportedImage as error:
        raise JobError(f"ClientError: {error}") from None


def container_environment(home: Path, scratch: Path | None, python_bin: Path) -> dict[str, str]:
    """A fresh container's environment, not this server's: the image's variables, what the local
    interpreter needs to run (`python_bin`, where `python` is, first on PATH), an empty home and,
    for a process that shares this machine's /tmp, TMPDIR naming an empty `scratch` dir (both
    created here; a confined one has a /tmp of its own and, as in a container, no TMPDIR).
    Whatever else is set on this machine (PYTHONPATH, PYTHONOPTIMIZE, AWS_*, a token) would let
    code behave here as it cannot on SageMaker, so none of it is passed on."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**IMAGE_ENVIRONMENT, **interpreter_environment(python_bin), "HOME": str(home)}
    if scratch is not None:
        scratch.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(scratch)
    return env

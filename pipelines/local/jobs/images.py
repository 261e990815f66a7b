"""Which container images a local job can stand in for, and the refusal for every other image.

A local job runs its command in this machine's Python, so it behaves as a step would in the
SageMaker scikit-learn image only when that image's scikit-learn is the one installed here. A step
meant for another framework, or another scikit-learn release, would run green locally and fail (or
answer differently) on SageMaker; it is refused instead, naming the image and what is here.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version

from pipelines.local.jobs.outcome import JobError

# <account>.dkr.ecr.<region>.amazonaws.com[.cn]/sagemaker-scikit-learn:<major>.<minor>-<build>-cpu-py3
_SKLEARN_IMAGE = re.compile(
    r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/sagemaker-scikit-learn:"
    r"(?P<release>\d+\.\d+)-\d+(?:-cpu)?(?:-py3)?$"
)


class UnsupportedImage(ValueError):
    """The local target cannot reproduce this image; the message says what it provides."""


def local_sklearn_release() -> str:
    """`major.minor` of the scikit-learn installed here, as the image tags name it."""
    try:
        return ".".join(version("scikit-learn").split(".")[:2])
    except PackageNotFoundError:
        return "none"


def check_image(image_uri: str) -> None:
    """Raise UnsupportedImage unless the local environment reproduces `image_uri`."""
    here = local_sklearn_release()
    provides = (
        f"the local target runs jobs in the SageMaker scikit-learn image's contract with "
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


def require_image(image_uri: object) -> None:
    """At job start, where the URI may have come from a parameter: fail the job, not run it."""
    if not isinstance(image_uri, str):
        raise JobError(f"ValidationException: the job names no container image (got {image_uri!r})")
    try:
        check_image(image_uri)
    except UnsupportedImage as error:
        raise JobError(f"ClientError: {error}") from None

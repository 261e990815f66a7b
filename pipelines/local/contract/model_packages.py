"""What SageMaker refuses in a model package request beyond its shape, and the members the local
registry cannot act on, each named instead of kept and ignored.

The registry refuses a CreateModelPackage or UpdateModelPackage request for the first of these
problems (service/registry.py), and a RegisterModel step's Arguments are checked against them at
upsert (executor/checks.py), as the CreateModelPackage request they become would be.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipelines.local.contract.members import object_items, object_member, repeated

# SageMaker's words for a request naming both kinds of package, or neither.
BOTH_NAMES = (
    "Both ModelPackageName and ModelPackageGroupName are provided in the input. "
    "Cannot determine which one to use."
)
NO_NAME = "Missing ARN."
# SageMaker's words for a CreateModelPackage with a group and Tags (the API reference: "If you supply
# ModelPackageGroupName, your model package ... uses the tags associated with the model group. In
# this case, you cannot supply a tag argument.").
VERSION_TAGS = "Tags are not supported in Model Package versions. Please add them to the Model Package Group."
# What SageMaker does with these and a local version could only store: run transform jobs to
# validate the package, create it from an algorithm resource, encrypt it with a KMS key, keep a
# model card, a life-cycle stage or a registration type, keep it in restricted storage.
NOT_REPRODUCED = (
    "ValidationSpecification", "SourceAlgorithmSpecification", "SecurityConfig", "ModelCard",
    "ModelLifeCycle", "ModelPackageRegistrationType", "ManagedStorageType",
)
# What UpdateModelPackage changes in a version as given; its other members are refused by name.
UPDATED_AS_GIVEN = ("ModelApprovalStatus", "ApprovalDescription", "InferenceSpecification", "SourceUri")
UPDATE_MEMBERS = frozenset({
    "ModelPackageArn", "ClientToken", *UPDATED_AS_GIVEN, "CustomerMetadataProperties",
    "CustomerMetadataPropertiesToRemove", "AdditionalInferenceSpecificationsToAdd",
})


def creation_problems(request: Mapping[str, Any]) -> list[str]:
    """Why CreateModelPackage would refuse the request here, the first reason first."""
    named, grouped = _given(request, "ModelPackageName"), _given(request, "ModelPackageGroupName")
    problems = []
    if named and grouped:
        problems.append(BOTH_NAMES)
    elif not grouped:
        problems.append(
            "CreateModelPackage with ModelPackageName (an unversioned model package) is not supported "
            "locally." if named else NO_NAME
        )
    if grouped and _given(request, "Tags"):
        problems.append(VERSION_TAGS)
    problems += _not_reproduced("CreateModelPackage", [m for m in NOT_REPRODUCED if _given(request, m)])
    problems += specification_problems(object_member(request, "InferenceSpecification"))
    return problems + repeated_name_problems(object_items(request.get("AdditionalInferenceSpecifications")))


def repeated_name_problems(specifications: list[Mapping[str, Any]]) -> list[str]:
    """A version's AdditionalInferenceSpecifications: "The name must be unique within the list of
    your additional inference specifications for a particular model package" (the API reference),
    whether the list is given at creation or grown by UpdateModelPackage."""
    twice = repeated(specification.get("Name") for specification in specifications)
    return [f"AdditionalInferenceSpecifications names must be unique: {', '.join(twice)}"] if twice else []


def update_problems(request: Mapping[str, Any]) -> list[str]:
    """Why UpdateModelPackage would refuse the request here, the first reason first."""
    problems = _not_reproduced("UpdateModelPackage", sorted(set(request) - UPDATE_MEMBERS))
    if _given(request, "InferenceSpecification"):
        problems += specification_problems(object_member(request, "InferenceSpecification"))
        if _given(request, "SourceUri"):
            problems.append("InferenceSpecification and SourceUri cannot be updated in the same request.")
    return problems


def specification_problems(specification: Mapping[str, Any]) -> list[str]:
    """A version's InferenceSpecification: SageMaker refuses AdditionalS3DataSource in it, and a
    local version is served from its first container's model data, so it must name some."""
    containers = object_items(specification.get("Containers"))
    problems = []
    if any(_given(container, "AdditionalS3DataSource") for container in containers):
        problems.append("AdditionalS3DataSource is not allowed in InferenceSpecification")
    if not containers or not containers[0].get("ModelDataUrl"):
        problems.append(
            "InferenceSpecification.Containers[0].ModelDataUrl is required locally: a local model "
            "package is served from its first container's model data."
        )
    return problems


def _given(request: Mapping[str, Any], member: str) -> bool:
    return request.get(member) is not None


def _not_reproduced(operation: str, members: list[str]) -> list[str]:
    return [f"{operation} with {', '.join(members)} is not supported locally."] if members else []

"""The model registry: model package groups and their numbered, approvable versions."""

from __future__ import annotations

import time
from collections.abc import Callable

from pipelines.local.contract.model_packages import (
    UPDATED_AS_GIVEN,
    creation_problems,
    repeated_name_problems,
    update_problems,
)
from pipelines.local.contract.models import service_model
from pipelines.local.errors import ServiceError, invalid
from pipelines.local.jobs.images import resolved_digest
from pipelines.local.service.context import CREATED_BY, ServiceContext
from pipelines.local.service.idempotency import once
from pipelines.local.service.listing import Listing, between, contains, equals, only
from pipelines.local.storage.database import Body

# A version describes itself with what its CreateModelPackage request gave, where the answer has room.
DESCRIBED_PACKAGE = service_model("sagemaker").shape_for("DescribeModelPackageOutput")
GROUP_SUMMARY = (
    "ModelPackageGroupName", "ModelPackageGroupArn", "ModelPackageGroupDescription", "CreationTime",
    "ModelPackageGroupStatus",
)
# A version's summary has no ModelPackageName: "for versioned model packages the ListModelPackages API
# does not return ModelPackageName; it only returns ModelPackageArn" (sagemaker-python-sdk issue 5606).
PACKAGE_SUMMARY = (
    "ModelPackageGroupName", "ModelPackageVersion", "ModelPackageArn",
    "ModelPackageDescription", "CreationTime", "ModelPackageStatus", "ModelApprovalStatus",
)
SORT_BY_NAME_OR_TIME = {"Name": "ModelPackageGroupName", "CreationTime": "CreationTime"}
GROUPS = Listing(
    "ListModelPackageGroups", "ModelPackageGroupSummaryList", SORT_BY_NAME_OR_TIME,
    identity="ModelPackageGroupArn", default_order="Ascending",
    filters={
        "NameContains": contains("ModelPackageGroupName"),
        **between("CreationTimeAfter", "CreationTimeBefore"),
        "CrossAccountFilterOption": only("SameAccount"),  # no group is shared from another account
    },
)
PACKAGES = Listing(
    "ListModelPackages", "ModelPackageSummaryList", SORT_BY_NAME_OR_TIME,
    identity="ModelPackageArn", default_order="Ascending", scope=("ModelPackageGroupName",),
    filters={
        "NameContains": contains("ModelPackageName"),
        **between("CreationTimeAfter", "CreationTimeBefore"),
        "ModelApprovalStatus": equals("ModelApprovalStatus"),
        "ModelPackageType": lambda package, kind: kind in ("Versioned", "Both"),  # all are versions
    },
)
MAX_METADATA = DESCRIBED_PACKAGE.members["CustomerMetadataProperties"].metadata["max"]
MAX_ADDITIONAL = DESCRIBED_PACKAGE.members["AdditionalInferenceSpecifications"].metadata["max"]


class RegistryOperations:
    def __init__(self, context: ServiceContext, on_change: Callable[[Body, Body | None], None]) -> None:
        self.context = context
        self.database = context.database
        self._on_change = on_change  # SageMaker's state change event: (version, before the update)

    def create_model_package_group(self, request: Body) -> Body:
        """A group; its ManagedConfiguration (restricted storage for its versions) is refused by name."""
        if request.get("ManagedConfiguration") is not None:
            raise invalid("CreateModelPackageGroup with ManagedConfiguration is not supported locally.")
        name = request["ModelPackageGroupName"]
        with self.context.lock:
            if self._find_group(name):
                raise invalid(f"Model Package Group already exists: {name}")
            now = time.time()
            body = {
                "ModelPackageGroupName": name,
                "ModelPackageGroupArn": self.context.arn("model-package-group", name.lower()),
                "CreationTime": now,
                "CreatedBy": CREATED_BY,
                "ModelPackageGroupStatus": "Completed",
            }
            if "ModelPackageGroupDescription" in request:  # a member not given is not answered
                body["ModelPackageGroupDescription"] = request["ModelPackageGroupDescription"]
            self.database.put("model_package_group", name, body, now)
            self.context.add_tags(body["ModelPackageGroupArn"], request.get("Tags", []))
        return {"ModelPackageGroupArn": body["ModelPackageGroupArn"]}

    def _find_group(self, name_or_arn: str) -> Body | None:
        """The group a name or ARN names. A group's ARN holds its name lower-cased, so names are
        unique regardless of case and `sentimentmodels` (an ARN's) finds `SentimentModels`."""
        return self.database.find("model_package_group", _group_name(name_or_arn))

    def _group(self, name_or_arn: str) -> Body:
        body = self._find_group(name_or_arn)
        if body is None:
            raise invalid(f"ModelPackageGroup {_group_name(name_or_arn)} does not exist.")
        return body

    def describe_model_package_group(self, request: Body) -> Body:
        return {"CreatedBy": CREATED_BY, **self._group(request["ModelPackageGroupName"])}

    def delete_model_package_group(self, request: Body) -> Body:
        """Only an empty group: one that still holds versions is a ConflictException, the error
        the API reference gives (its wording is not documented)."""
        with self.context.lock:
            group = self._group(request["ModelPackageGroupName"])
            name = group["ModelPackageGroupName"]
            versions = [p["ModelPackageVersion"] for p in self.database.packages(name)]
            if versions:
                raise ServiceError(
                    "ConflictException",
                    f"Model package group {name} still holds model package versions "
                    f"{', '.join(map(str, versions))}; delete them before deleting the group.",
                )
            self.database.delete_package_group(name)
            self.context.delete_tags(group["ModelPackageGroupArn"])
        return {}

    def list_model_package_groups(self, request: Body) -> Body:
        groups = self.database.all("model_package_group")
        return GROUPS.page(groups, request, lambda g: {k: g[k] for k in GROUP_SUMMARY if k in g})

    def create_model_package(self, request: Body) -> Body:
        """A new version, once per ClientToken: a retry of the call (botocore fills the token in and
        sends it again) answers the version the first call made and sends no second event."""
        added: list[Body] = []

        def add() -> Body:
            added.append(self._add_version(request))
            return {"ModelPackageArn": added[0]["ModelPackageArn"]}

        answer = once(self.context, "ClientToken", "CreateModelPackage", request, add)
        for body in added:
            self._on_change(_described(body), None)
        return answer

    def register_model_package(self, request: Body) -> str:
        """The RegisterModel step: creates its group on first use, as SageMaker's does, in the
        same locked step as the version, so a deletion of the new, empty group cannot come between."""
        with self.context.lock:
            if self._find_group(request["ModelPackageGroupName"]) is None:
                self.create_model_package_group(
                    {"ModelPackageGroupName": request["ModelPackageGroupName"]}
                )
            body = self._add_version(request)
        self._on_change(_described(body), None)
        return str(body["ModelPackageArn"])

    def _add_version(self, request: Body) -> Body:
        """A new version of the request's group, stored; the caller sends its event."""
        problems = creation_problems(request)
        if problems:
            raise invalid(problems[0])
        status = request.get("ModelApprovalStatus", "PendingManualApproval")
        now = time.time()

        echoed = {k: v for k, v in request.items() if k in DESCRIBED_PACKAGE.members}
        with self.context.lock:  # the group cannot be deleted between finding it and adding to it
            group = self._group(request["ModelPackageGroupName"])["ModelPackageGroupName"]

            def describe(version: int) -> Body:
                return {
                    "CertifyForMarketplace": False,
                    **echoed,
                    **_with_image_digests(echoed),
                    "ModelPackageName": group,
                    "ModelPackageGroupName": group,
                    "ModelPackageVersion": version,
                    "ModelPackageArn": self.context.arn("model-package", f"{group.lower()}/{version}"),
                    "CreationTime": now,
                    "LastModifiedTime": now,
                    "CreatedBy": CREATED_BY,
                    "ModelPackageStatus": "Completed",
                    "ModelPackageStatusDetails": _status_details(),
                    "ModelApprovalStatus": status,
                }

            body = self.database.add_package(group, describe, now)
            self.context.add_tags(body["ModelPackageArn"], request.get("Tags", []))
        return body

    def _package(self, name: str) -> Body:
        body = self.database.package(self._package_arn(name))
        if body is None:
            raise invalid(f"ModelPackage {name} does not exist.")
        return _described(body)

    def _package_arn(self, name: str) -> str:
        """The ARN of the version an ARN or `<group>/<version>` names. A plain name names an
        unversioned package, of which there are none here."""
        group, _, version = name.rpartition("/")
        found = None if name.startswith("arn:") or not group else self._find_group(group)
        if found is None:
            return name
        return self.context.arn("model-package", f"{found['ModelPackageGroupName'].lower()}/{version}")

    def describe_model_package(self, request: Body) -> Body:
        return self._package(request["ModelPackageName"])

    def delete_model_package(self, request: Body) -> Body:
        """A version goes, its tags with it; the others keep their numbers, and the group never
        gives a deleted version's number again."""
        with self.context.lock:
            arn = self._package(request["ModelPackageName"])["ModelPackageArn"]
            self.database.delete_package(arn)
            self.context.delete_tags(arn)
        return {}

    def list_model_packages(self, request: Body) -> Body:
        group = request.get("ModelPackageGroupName")
        # With neither member the API lists unversioned packages only, and every local one is a version.
        if group is None and "ModelPackageType" not in request:
            packages = []
        else:
            packages = self.database.packages(self._group(group)["ModelPackageGroupName"] if group else None)
        return PACKAGES.page(
            map(_described, packages), request, lambda p: {k: p[k] for k in PACKAGE_SUMMARY if k in p}
        )

    def update_model_package(self, request: Body) -> Body:
        """Changes a version, once per ClientToken, recording when and by whom (LastModifiedTime,
        LastModifiedBy); the state change event goes out after the change is stored."""
        problems = update_problems(request)
        if problems:
            raise invalid(problems[0])
        changes: list[tuple[Body, Body]] = []

        def change() -> Body:
            body = self._package(request["ModelPackageArn"])
            before = dict(body)
            body.update({key: request[key] for key in UPDATED_AS_GIVEN if key in request})
            body.update(_with_image_digests(request))
            _update_metadata(body, request)
            _add_inference_specifications(body, request.get("AdditionalInferenceSpecificationsToAdd", []))
            body.update(LastModifiedTime=time.time(), LastModifiedBy=CREATED_BY)
            self.database.save_package(body)
            changes.append((body, before))
            return {"ModelPackageArn": body["ModelPackageArn"]}

        with self.context.lock:
            answer = once(self.context, "ClientToken", "UpdateModelPackage", request, change)
        for body, before in changes:
            self._on_change(_described(body), before)
        return answer


def _described(package: Body) -> Body:
    """A stored version as DescribeModelPackage answers (versions stored before these members
    existed get them too)."""
    described = {
        "ModelPackageName": package["ModelPackageGroupName"],
        "CreatedBy": CREATED_BY,
        "CertifyForMarketplace": False,
        **package,
        "ModelPackageStatusDetails": _status_details(),
    }
    return {k: v for k, v in described.items() if v not in ({}, "")}


def _status_details() -> Body:
    """A version's ModelPackageStatusDetails: no validation or image scan was asked of SageMaker."""
    return {"ValidationStatuses": [], "ImageScanStatuses": []}


def _with_image_digests(request: Body) -> Body:
    """The request's InferenceSpecification with each container's ImageDigest, the digest its image
    resolved to when the version was registered, as SageMaker records it; none for an image the
    local target does not stand in for (images.resolved_digest)."""
    specification = request.get("InferenceSpecification")
    if not isinstance(specification, dict):
        return {}
    containers = []
    for container in specification.get("Containers") or []:
        digest = resolved_digest(str(container.get("Image", "")))
        containers.append({**container, "ImageDigest": digest} if digest and "ImageDigest" not in container
                          else container)
    return {"InferenceSpecification": {**specification, "Containers": containers}}


def _group_name(name_or_arn: str) -> str:
    return name_or_arn.rsplit("model-package-group/", 1)[-1]


def _update_metadata(body: Body, request: Body) -> None:
    """CustomerMetadataProperties adds or replaces keys and ...ToRemove deletes keys: the other
    keys stay (an annotation must not drop ModelDataSha256, which deploy checks)."""
    given: dict[str, str] = request.get("CustomerMetadataProperties", {})
    removed: list[str] = request.get("CustomerMetadataPropertiesToRemove", [])
    both = sorted(set(given) & set(removed))
    if both:
        raise invalid(f"CustomerMetadataProperties keys both set and removed: {', '.join(both)}")
    kept = {**body.get("CustomerMetadataProperties", {}), **given}
    merged = {key: value for key, value in kept.items() if key not in removed}
    if len(merged) > MAX_METADATA:
        raise invalid(f"CustomerMetadataProperties would have {len(merged)} entries; at most {MAX_METADATA}.")
    body["CustomerMetadataProperties"] = merged


def _add_inference_specifications(body: Body, added: list[Body]) -> None:
    """AdditionalInferenceSpecificationsToAdd appends to the version's list, whose names are unique."""
    if not added:
        return
    specifications = [*body.get("AdditionalInferenceSpecifications", []), *added]
    if len(specifications) > MAX_ADDITIONAL:
        raise invalid(f"AdditionalInferenceSpecifications would have {len(specifications)} entries; "
                      f"at most {MAX_ADDITIONAL}.")
    problems = repeated_name_problems(specifications)
    if problems:
        raise invalid(problems[0])
    body["AdditionalInferenceSpecifications"] = specifications

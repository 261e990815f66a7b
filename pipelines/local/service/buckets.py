"""S3's bucket operations over the local object store: a bucket must be created before it holds objects.

CreateBucket applies S3's naming rules for general purpose buckets and its LocationConstraint rules
for the one region this server answers for (none in us-east-1, that region's own elsewhere), makes
the bucket as S3 makes a new one (ACLs disabled by BucketOwnerEnforced, SSE-S3 default encryption),
and refuses by name what the store cannot honour (object lock, ACLs enabled, tags, an account
regional namespace, a directory bucket). Every bucket is versioned: the store keeps each version.
HeadBucket, ListBuckets, DeleteBucket (only of a bucket that holds no object version),
GetBucketVersioning, GetBucketLocation and GetBucketEncryption answer as S3 does; PutBucketVersioning
takes `Enabled`, what every bucket is, and refuses suspending it or MFA delete by name.
"""

from __future__ import annotations

import ipaddress
import re
import time

from botocore.model import StringShape

from pipelines.local.contract.models import operation_model
from pipelines.local.errors import ServiceError, not_implemented
from pipelines.local.service.context import ServiceContext
from pipelines.local.service.object_listing import position, token
from pipelines.local.service.objects import OWNER, SSE_S3, no_such_bucket
from pipelines.local.storage.buckets import Bucket, BucketExists
from pipelines.local.storage.database import Body
from pipelines.local.storage.objects import BucketNotEmpty

LEGACY_REGION = "us-east-1"  # where a bucket has no LocationConstraint, and an owned one is re-created
EU = ("EU", "eu-west-1")  # a LocationConstraint S3 keeps as given, for the region it stands for
NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3")
MAX_BUCKETS = 10000  # ListBuckets' page when none is asked, and the most one may ask
ACLS_DISABLED = "BucketOwnerEnforced"  # S3's ObjectOwnership of a new bucket
PRIVATE = "private"  # the one canned ACL a bucket with ACLs disabled accepts
# Members asking for what the store does not keep, with the value that asks for nothing.
UNKEPT = {"ObjectLockEnabledForBucket": "false", "BucketNamespace": "global"}
UNKEPT_CONFIGURATION = ("Location", "Bucket", "Tags")
NOT_EMPTY = "The bucket you tried to delete is not empty. You must delete all versions in the bucket."
DEFAULT_ENCRYPTION = {
    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": SSE_S3}, "BucketKeyEnabled": False}]
}


def valid_name(name: str) -> bool:
    """S3's naming rules for a general purpose bucket."""
    if not NAME.fullmatch(name) or ".." in name or name.startswith(RESERVED_PREFIXES):
        return False
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return not name.endswith(RESERVED_SUFFIXES)
    return False


class BucketOperations:
    def __init__(self, context: ServiceContext) -> None:
        self.store = context.store
        self.region = context.region
        self.lock = context.lock
        constraint = operation_model("s3", "CreateBucket").input_shape.members["CreateBucketConfiguration"]
        location = constraint.members["LocationConstraint"]
        assert isinstance(location, StringShape)
        self.known_locations = frozenset(location.enum)

    def create_bucket(self, request: Body) -> Body:
        name = request["Bucket"]
        if not valid_name(name):
            message = "The specified bucket is not valid."
            raise ServiceError("InvalidBucketName", message, 400, {"BucketName": name})
        configuration = request.get("CreateBucketConfiguration") or {}
        _refuse_what_is_not_kept(request, configuration)
        _refuse_acls(request)
        location = configuration.get("LocationConstraint", "")
        self._check_location(location)
        with self.lock:
            try:
                self.store.create_bucket(Bucket(name, self.region, time.time(), location))
            except BucketExists:
                if self.region != LEGACY_REGION:
                    raise ServiceError(
                        "BucketAlreadyOwnedByYou",
                        "Your previous request to create the named bucket succeeded and you already own it.",
                        409, {"BucketName": name},
                    ) from None
        where = f"/{name}" if self.region == LEGACY_REGION else f"http://{name}.s3.amazonaws.com/"
        return {"Location": where}

    def head_bucket(self, request: Body) -> Body:
        return {"BucketRegion": self._bucket(request).region, "AccessPointAlias": False}

    def list_buckets(self, request: Body) -> Body:
        """The account's buckets by name, a page at a time; each with its region once any of
        ListBuckets' parameters is given, as S3 answers."""
        paged = any(name in request for name in ("MaxBuckets", "ContinuationToken", "Prefix", "BucketRegion"))
        limit = _max_buckets(request.get("MaxBuckets", MAX_BUCKETS))
        after = position(request["ContinuationToken"]) if "ContinuationToken" in request else ""
        prefix, region = request.get("Prefix", ""), request.get("BucketRegion")
        found = [
            bucket for bucket in self.store.buckets.all()
            if bucket.name > after and bucket.name.startswith(prefix) and region in (None, bucket.region)
        ]
        listed = [
            {"Name": bucket.name, "CreationDate": bucket.created}
            | ({"BucketRegion": bucket.region} if paged else {})
            for bucket in found[:limit]
        ]
        answer: Body = {"Buckets": listed, "Owner": OWNER}
        if "Prefix" in request:
            answer["Prefix"] = prefix
        if len(found) > limit:
            answer["ContinuationToken"] = token(found[limit - 1].name)
        return answer

    def delete_bucket(self, request: Body) -> Body:
        name = self._bucket(request).name
        with self.lock:
            try:
                self.store.delete_bucket(name)
            except BucketNotEmpty:
                raise ServiceError(  # S3's words for a versioned bucket, as every bucket here is
                    "BucketNotEmpty", NOT_EMPTY, 409, {"BucketName": name}
                ) from None
        return {}

    def get_bucket_versioning(self, request: Body) -> Body:
        self._bucket(request)
        return {"Status": "Enabled"}

    def put_bucket_versioning(self, request: Body) -> Body:
        """`Enabled` is what every bucket here is already; suspending versions or MFA delete is what
        the store cannot do, refused by name rather than ignored."""
        self._bucket(request)
        configuration = request.get("VersioningConfiguration") or {}
        asked = [what for what, unkept in (
            ("Status=Suspended", configuration.get("Status") == "Suspended"),
            ("MfaDelete=Enabled", configuration.get("MFADelete") == "Enabled"),
            ("x-amz-mfa", "MFA" in request),
        ) if unkept]
        if asked:
            raise not_implemented(
                asked[0],
                f"the local SageMaker's S3 keeps every version of every object without MFA, not what "
                f"{asked[0]} asks for",
            )
        return {}

    def get_bucket_location(self, request: Body) -> Body:
        location = self._bucket(request).location
        return {"LocationConstraint": location} if location else {}

    def get_bucket_encryption(self, request: Body) -> Body:
        self._bucket(request)
        return {"ServerSideEncryptionConfiguration": DEFAULT_ENCRYPTION}

    def _bucket(self, request: Body) -> Bucket:
        bucket = self.store.bucket(request["Bucket"])
        if bucket is None:
            raise no_such_bucket(request["Bucket"])
        return bucket

    def _check_location(self, location: str) -> None:
        """This region's constraint: none in us-east-1 (naming it is invalid), its own elsewhere."""
        if location == LEGACY_REGION or (location and location not in self.known_locations):
            raise ServiceError(
                "InvalidLocationConstraint", "The specified location constraint is not valid.", 400,
                {"LocationConstraint": location},
            )
        region = EU[1] if location == EU[0] else location or LEGACY_REGION
        if region != self.region:
            said = location or "unspecified"
            raise ServiceError(
                "IllegalLocationConstraintException",
                f"The {said} location constraint is incompatible for the region specific endpoint this "
                "request was sent to.", 400,
            )


def _refuse_what_is_not_kept(request: Body, configuration: Body) -> None:
    """S3's NotImplemented, by name, for what a new bucket would have to keep and the store cannot."""
    asked = [
        header for name, header in (
            ("ObjectLockEnabledForBucket", "x-amz-bucket-object-lock-enabled"),
            ("BucketNamespace", "x-amz-bucket-namespace"),
        )
        if str(request.get(name, UNKEPT[name])).lower() != UNKEPT[name]
    ]
    if request.get("ObjectOwnership", ACLS_DISABLED) != ACLS_DISABLED:
        asked.append("x-amz-object-ownership")
    asked += [f"CreateBucketConfiguration.{name}" for name in UNKEPT_CONFIGURATION if name in configuration]
    if asked:
        raise not_implemented(
            asked[0],
            f"the local SageMaker's S3 makes general purpose buckets with ACLs disabled, versioned, "
            f"without object lock or tags, in the global namespace, not what {asked[0]} asks for",
        )


def _refuse_acls(request: Body) -> None:
    """A bucket made with ACLs disabled (BucketOwnerEnforced) takes no ACL but `private`."""
    grants = [name for name in request if name.startswith("Grant")]
    if grants or request.get("ACL", PRIVATE) != PRIVATE:
        raise ServiceError(
            "InvalidBucketAclWithObjectOwnership",
            "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting", 400,
        )


def _max_buckets(value: object) -> int:
    """MaxBuckets within S3's range, 1 to 10,000."""
    asked = value if isinstance(value, int) else -1
    if not 1 <= asked <= MAX_BUCKETS:
        raise ServiceError(
            "InvalidArgument", f"max-buckets must be an integer from 1 to {MAX_BUCKETS}", 400,
            {"ArgumentName": "max-buckets", "ArgumentValue": str(value)},
        )
    return asked

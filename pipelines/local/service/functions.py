"""Lambda's function operations as the REST API names them, over the local functions.

A function's code comes as a zip in the request or as an object in the local S3 (S3Bucket, S3Key,
S3ObjectVersion), as the SDK's Lambda helper uploads a larger one; a container image it cannot
run is refused.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import Any

from pipelines.local.lambdas.functions import Functions, invalid_parameter
from pipelines.local.storage.database import Body
from pipelines.local.storage.objects import NoSuchKey, ObjectStore


class FunctionOperations:
    def __init__(self, functions: Functions, store: ObjectStore) -> None:
        self.functions = functions
        self.store = store

    def create_function(self, request: Body) -> Body:
        return self.functions.create(request, self._code(request["Code"], "Code."), time.time())

    def get_function(self, request: Body) -> Body:
        return self.functions.get(request["FunctionName"])

    def update_function_code(self, request: Body) -> Body:
        return self.functions.update_code(request["FunctionName"], self._code(request, ""))

    def update_function_configuration(self, request: Body) -> Body:
        return self.functions.update_configuration(request)

    def _code(self, source: Mapping[str, Any], prefix: str) -> bytes:
        """The zip a request carries, or the one in the S3 object it names."""
        if "ZipFile" in source:
            return base64.b64decode(source["ZipFile"])
        if "S3Bucket" not in source or "S3Key" not in source:
            raise invalid_parameter(
                f"{prefix}ZipFile or {prefix}S3Bucket and {prefix}S3Key are required: the local "
                "Lambda runs .zip packages, not container images."
            )
        uri = f"s3://{source['S3Bucket']}/{source['S3Key']}"
        try:
            return self.store.get_bytes(uri, source.get("S3ObjectVersion"))
        except (NoSuchKey, ValueError):
            raise invalid_parameter(
                "Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: The "
                f"specified key does not exist. ({uri})",
            ) from None

"""Lambda's function operations as the REST API names them, over the local functions."""

from __future__ import annotations

import base64
import time

from pipelines.local.errors import invalid
from pipelines.local.lambdas.functions import Functions
from pipelines.local.storage.database import Body


class FunctionOperations:
    def __init__(self, functions: Functions) -> None:
        self.functions = functions

    def create_function(self, request: Body) -> Body:
        if "ZipFile" not in request["Code"]:
            raise invalid("Code.ZipFile is required: the local Lambda has no S3 or image code.")
        return self.functions.create(request, time.time())

    def get_function(self, request: Body) -> Body:
        return self.functions.get(request["FunctionName"])

    def update_function_code(self, request: Body) -> Body:
        if "ZipFile" not in request:
            raise invalid("ZipFile is required: the local Lambda has no S3 or image code.")
        return self.functions.update_code(request["FunctionName"], base64.b64decode(request["ZipFile"]))

    def update_function_configuration(self, request: Body) -> Body:
        return self.functions.update_configuration(request)

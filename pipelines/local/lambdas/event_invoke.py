"""Lambda's event invoke configs: how often an asynchronous invocation is retried, how long it may
wait, and where its invocation record goes (Put/Get/Update/Delete/ListFunctionEventInvokeConfigs).

A local function has only $LATEST, so it has one config at most. Destinations are checked when a
config is put, not when a record is due: the local target delivers records to a Lambda function
or to EventBridge's default bus, and refuses an SQS queue, an SNS topic or an S3 bucket, which it
has none of, rather than accept one and drop what it should receive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from pipelines.local.errors import ServiceError
from pipelines.local.lambdas.configuration import invalid_parameter
from pipelines.local.lambdas.destinations import cannot_deliver, default_bus
from pipelines.local.lambdas.functions import LATEST, FunctionReference, Functions
from pipelines.local.storage.database import Body

KIND = "event_invoke_config"
SETTINGS = ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig")
CONDITIONS = ("OnSuccess", "OnFailure")


@dataclass(frozen=True)
class AsyncSettings:
    """What an asynchronous invocation of a function follows: Lambda's defaults, unless its config
    says otherwise. A destination is an ARN, or "" for none."""

    retries: int = 2
    max_age: float = 6 * 3600.0
    on_success: str = ""
    on_failure: str = ""


class EventInvokeConfigs:
    def __init__(self, functions: Functions) -> None:
        self.functions = functions
        self.database = functions.database

    def put(self, request: Body) -> Body:
        """A new config, replacing any: the settings it leaves out are Lambda's defaults again."""
        reference, body = self._function(request)
        config = self._checked(body["FunctionName"], {k: request[k] for k in SETTINGS if k in request})
        return self._save(reference, body["FunctionName"], config)

    def update(self, request: Body) -> Body:
        """The settings given replace the stored ones (DestinationConfig as a whole); the others stay."""
        reference, body = self._function(request)
        stored = self._stored(reference)
        changed = self._checked(body["FunctionName"], {k: request[k] for k in SETTINGS if k in request})
        return self._save(reference, body["FunctionName"], {**stored, **changed})

    def get(self, request: Body) -> Body:
        return self._stored(self.functions.named(request["FunctionName"], request.get("Qualifier")))

    def delete(self, request: Body) -> None:
        reference = self.functions.named(request["FunctionName"], request.get("Qualifier"))
        self._stored(reference)
        self.database.delete(KIND, reference.name)

    def forget(self, function: str) -> None:
        """A deleted function's config goes with it (a stored function's name)."""
        self.database.delete(KIND, function)

    def listed(self, name_or_arn: str) -> list[Body]:
        """The function's configs: its $LATEST's, if it has one."""
        reference, _ = self._function({"FunctionName": name_or_arn})
        stored = self.database.get(KIND, reference.name)
        return [stored] if stored else []

    def settings(self, function: str) -> AsyncSettings:
        """What the next asynchronous invocation of `function` (a stored function's name) follows."""
        config = self.database.get(KIND, function) or {}
        destinations = config.get("DestinationConfig", {})
        defaults = AsyncSettings()
        return AsyncSettings(
            retries=int(config.get("MaximumRetryAttempts", defaults.retries)),
            max_age=float(config.get("MaximumEventAgeInSeconds", defaults.max_age)),
            on_success=destinations.get("OnSuccess", {}).get("Destination", ""),
            on_failure=destinations.get("OnFailure", {}).get("Destination", ""),
        )

    def _function(self, request: Body) -> tuple[FunctionReference, dict[str, Any]]:
        """The function a Put, Update or List names, in Lambda's words when there is none."""
        reference = self.functions.named(request["FunctionName"], request.get("Qualifier"))
        body = self.functions.find(reference)
        if body is None:
            raise ServiceError("ResourceNotFoundException", "The function doesn't exist.", 404)
        return reference, body

    def _stored(self, reference: FunctionReference) -> Body:
        found = self.functions.find(reference)
        config = self.database.get(KIND, reference.name) if found else None
        if config is None:
            named = replace(reference, qualifier=reference.qualifier or LATEST).arn
            raise ServiceError(
                "ResourceNotFoundException", f"The function {named} doesn't have an EventInvokeConfig", 404
            )
        return config

    def _checked(self, function: str, settings: Body) -> Body:
        """Settings Lambda accepts and the local target can follow; DestinationConfig with both
        conditions, as Lambda answers it."""
        if not settings:
            raise invalid_parameter("You must specify at least one of error handling or destination setting.")
        if "DestinationConfig" in settings:
            given = settings["DestinationConfig"]
            settings["DestinationConfig"] = {condition: given.get(condition, {}) for condition in CONDITIONS}
            for condition in CONDITIONS:
                destination = given.get(condition, {}).get("Destination", "")
                if destination:
                    self._check_destination(function, destination)
        return settings

    def _check_destination(self, function: str, destination: str) -> None:
        """A Lambda function of this account and region (not the function itself), or the default
        event bus; the local target has nothing else to deliver a record to."""
        service = destination.split(":")[2] if destination.startswith("arn:") else destination.split(":")[0]
        region = self.functions.region
        if service == "lambda":
            target = self.functions.find(self.functions.named(destination))
            if target is None:
                raise invalid_parameter(f"The destination ARN {destination} is invalid.")
            if target["FunctionName"] == function:
                raise invalid_parameter("You can't specify the function as a destination for itself.")
        elif service != "events" or destination != default_bus(region):
            raise invalid_parameter(cannot_deliver("invocation records", destination, region))

    def _save(self, reference: FunctionReference, function: str, settings: Body) -> Body:
        config = {
            "FunctionArn": replace(reference, name=function, qualifier=LATEST).arn,
            "DestinationConfig": {condition: {} for condition in CONDITIONS},
            **settings,
            "LastModified": time.time(),
        }
        self.database.put(KIND, function, config, config["LastModified"])
        return config

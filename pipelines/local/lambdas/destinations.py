"""Where the local Lambda can send what an asynchronous invocation leaves behind.

On AWS an invocation record goes to an event invoke config's destination and a failed event to the
function's dead-letter queue. The local target delivers to a Lambda function or to EventBridge's
default bus only; anything else (an SQS queue, an SNS topic, an S3 bucket) is refused where it is
named, in one message, rather than accepted and never delivered.
"""

from __future__ import annotations

from pipelines.local.system.identity import arn


def default_bus(region: str) -> str:
    """The one event bus of the local EventBridge."""
    return arn("events", region, "event-bus/default")


def cannot_deliver(what: str, destination: str, region: str) -> str:
    """The refusal of `destination` for `what`, naming what the local Lambda delivers to instead."""
    return (
        f"The local Lambda cannot deliver {what} to {destination}: it delivers them to a Lambda function "
        f"of this account and region, or to the default event bus ({default_bus(region)}); an SQS queue, "
        "an SNS topic, an S3 bucket or another event bus cannot be reproduced locally."
    )

"""EventBridge's own delivery of a rule's event to a Lambda target, retried when Lambda refuses it.

Once Lambda accepts the event, its retries are Lambda's (lambdas/asynchronous.py). When Lambda does
not accept it at all, EventBridge retries what a retry can mend (a function still Pending, a
throttle) with exponential backoff and jitter, as long as the target's RetryPolicy allows (185
retries and 24 hours unless it says otherwise); what no retry mends (no such function) is not
retried, as EventBridge documents. An event given up goes to the target's dead-letter queue: the
local target has no SQS, so it is logged with the queue it names.

A delivery being retried is kept in the state until it is delivered or given up, so a server that
starts again goes on with it by its recorded times, as EventBridge's retries outlive any one host.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pipelines.local.errors import ServiceError
from pipelines.local.lambdas.asynchronous import AsyncInvocations
from pipelines.local.storage.database import Body, Database
from pipelines.local.storage.durable_work import DurableWork
from pipelines.local.system.clock import Clock

log = logging.getLogger(__name__)
QUEUE = "event_deliveries"  # the state's table of deliveries being retried
# Lambda's refusals that a later attempt may not meet: a change in progress, a throttle, an outage.
RETRIED = frozenset({"ResourceConflictException", "TooManyRequestsException", "ServiceUnavailable"})
MAX_RETRIES, MAX_AGE = 185, 86400.0  # RetryPolicy's defaults
# EventBridge does not publish its backoff's constants: the wait doubles from 1 s up to 5 minutes.
FIRST_BACKOFF, MAX_BACKOFF = 1.0, 300.0


@dataclass(frozen=True)
class Delivery:
    """One rule's event for one target, as the state keeps it. Times are epoch seconds."""

    id: str
    rule: str
    target: Body  # as PutTargets stored it: Arn, RetryPolicy, DeadLetterConfig
    payload: Any  # what the target receives (the event, its Input or its InputPath's part)
    accepted: float  # the event's age counts from here
    due: float  # when the next attempt runs
    attempts: int = 0


def backoff(retry: int, jitter: Callable[[float], float]) -> float:
    """The wait before retry `retry` (from 1): exponential, with half of it random ("equal jitter")."""
    ceiling = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (retry - 1))
    return ceiling / 2 + jitter(ceiling / 2)


class Deliveries:
    def __init__(self, database: Database, invocations: AsyncInvocations, clock: Clock) -> None:
        self.invocations = invocations
        self.clock = clock
        self.jitter: Callable[[float], float] = lambda most: random.uniform(0.0, most)
        self.work = DurableWork(
            database, QUEUE, Delivery, self._run, lambda delivery: f"delivery-{delivery.rule}"
        )

    def deliver(self, rule: str, target: Body, payload: Any) -> None:
        """Hand the event to the target's function now; if Lambda refuses it for a while, keep it and
        retry on a thread of its own."""
        now = self.clock.now()
        retry = self._attempt(Delivery(str(uuid.uuid4()), rule, target, payload, now, now))
        if retry is not None:
            self._save(retry)
            self.work.start(retry)

    def resume(self) -> None:
        """After a restart: every delivery the state still holds is retried when it is due."""
        self.work.resume()

    def close(self) -> None:
        """The server is stopping: deliveries waiting for a retry stay in the state."""
        self.work.close()

    def _run(self, delivery: Delivery) -> None:
        retry: Delivery | None = delivery
        while retry is not None:
            if self.clock.wait_until(retry.due, self.work.stopping):
                return
            if self.clock.now() > retry.accepted + _limits(retry.target)[1]:
                _dead_letter(retry, "the event is older than the target's MaximumEventAgeInSeconds")
                retry = None
            else:
                retry = self._attempt(retry)
            if retry is not None:
                self._save(retry)
        self.work.forget(delivery.id)

    def _attempt(self, delivery: Delivery) -> Delivery | None:
        """Try the delivery once: None when it is done with (delivered or given up), else the
        delivery due for its next attempt."""
        delivery = replace(delivery, attempts=delivery.attempts + 1)
        try:
            self.invocations.submit(delivery.target["Arn"], delivery.payload)
            return None
        except ServiceError as error:
            reason = f"{error.code}: {error.message}"
            retries, max_age = _limits(delivery.target)
            due = self.clock.now() + backoff(delivery.attempts, self.jitter)
            if error.code not in RETRIED or delivery.attempts > retries or due > delivery.accepted + max_age:
                _dead_letter(delivery, reason)
                return None
            log.warning("rule %s: target %s refused the event (attempt %d), retried in %.1f s: %s",
                        delivery.rule, delivery.target["Arn"], delivery.attempts, due - self.clock.now(),
                        reason)
            return replace(delivery, due=due)

    def _save(self, delivery: Delivery) -> None:
        self.work.keep(delivery.id, delivery.accepted, delivery)


def _limits(target: Body) -> tuple[int, float]:
    """The target's RetryPolicy: how many retries, and how old an event may be at its last one."""
    policy = target.get("RetryPolicy", {})
    return (int(policy.get("MaximumRetryAttempts", MAX_RETRIES)),
            float(policy.get("MaximumEventAgeInSeconds", MAX_AGE)))


def _dead_letter(delivery: Delivery, reason: str) -> None:
    queue = delivery.target.get("DeadLetterConfig", {}).get("Arn", "no dead-letter queue")
    log.error("rule %s: target %s not delivered after %d attempts (%s): %s", delivery.rule,
              delivery.target["Arn"], delivery.attempts, queue, reason)

"""Waiting for a change of the deploy function: how often Lambda is asked, and how a failed or
endless change ends the wait."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest

from pipelines.publish import CREATED, UPDATED, FunctionChangeFailed, wait_for_function


class ScriptedLambda:
    """GetFunctionConfiguration answering the given configurations in turn (the last one again)."""

    def __init__(self, *answers: dict[str, Any]) -> None:
        self.answers = list(answers)
        self.asked = 0

    def get_function_configuration(self, FunctionName: str) -> dict[str, Any]:
        assert FunctionName == "deployer"
        self.asked += 1
        return self.answers[min(self.asked, len(self.answers)) - 1]


def clients(lambda_: ScriptedLambda) -> Any:
    return SimpleNamespace(settings=SimpleNamespace(deploy_function_name="deployer"), lambda_=lambda_)


def test_a_change_is_seen_done_soon_after_it_is_and_the_polls_back_off_to_a_second() -> None:
    lambda_ = ScriptedLambda(*[{"State": "Pending"}] * 10, {"State": "Active"})
    slept: list[float] = []
    wait_for_function(clients(lambda_), CREATED, sleep=slept.append)
    assert lambda_.asked == 11
    assert slept[:3] == pytest.approx([0.05, 0.075, 0.1125])
    # Polls at 0.05, 0.125, 0.24 and 0.41 s: a local function's init (about 0.3 s) is seen by then.
    assert sum(slept[:4]) < 0.45
    assert max(slept) == 1.0 and slept[-1] == 1.0  # and on AWS no more often than the waiter


def test_an_update_is_done_when_its_last_update_is_successful_not_when_the_function_is_active() -> None:
    lambda_ = ScriptedLambda({"State": "Active", "LastUpdateStatus": "InProgress"},
                             {"State": "Active", "LastUpdateStatus": "Successful"})
    slept: list[float] = []
    wait_for_function(clients(lambda_), UPDATED, sleep=slept.append)
    assert (lambda_.asked, slept) == (2, [0.05])


@pytest.mark.parametrize(
    ("done", "failed", "reason"),
    [
        (CREATED, {"State": "Failed", "StateReason": "the role cannot be assumed"},
         "State Failed (the role cannot be assumed)"),
        (UPDATED, {"State": "Active", "LastUpdateStatus": "Failed",
                   "LastUpdateStatusReason": "the zip file is not a zip file"},
         "LastUpdateStatus Failed (the zip file is not a zip file)"),
    ],
)
def test_a_failed_change_ends_the_wait_with_lambdas_reason(
    done: tuple[str, str], failed: dict[str, Any], reason: str
) -> None:
    with pytest.raises(FunctionChangeFailed, match=re.escape(f"deployer: {reason}")):
        wait_for_function(clients(ScriptedLambda(failed)), done, sleep=lambda _: None)


def test_a_change_that_never_ends_ends_the_wait_at_its_timeout() -> None:
    lambda_ = ScriptedLambda({"State": "Pending"})
    with pytest.raises(FunctionChangeFailed, match="State still Pending after 0 s"):
        wait_for_function(clients(lambda_), CREATED, timeout=0.0, sleep=lambda _: None)
    assert lambda_.asked == 1

"""Follow a scripted execution the way `start --wait` follows a real one, for tests of what it prints.

Run as `python scripted_execution.py succeed|fail`: a stand-in SageMaker client answers
DescribePipelineExecution and ListPipelineExecutionSteps from a fixed story (a cached step, a step on
its second attempt, and in `fail` a Preprocess failure with two problems), and the CLI's own view
(live table on a terminal, plain lines otherwise) shows it.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from pipelines import executions, step_table

ARN = "arn:aws:sagemaker:us-east-1:000000000000:pipeline/demo/execution/abc123"
START = datetime.now(UTC) - timedelta(seconds=30)
PROBLEMS = (
    "train.csv: line 1: missing column 'sentiment'; found columns ['review_text']\n"
    "test.csv: line 2: sentiment must be 0 or 1, found '2'"
)


def step(name: str, status: str, began: int, ended: int | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"StepName": name, "StepStatus": status, "AttemptCount": 1,
                            "StartTime": START + timedelta(seconds=began), **extra}
    if ended is not None:
        body["EndTime"] = START + timedelta(seconds=ended)
    return body


def story(outcome: str) -> list[tuple[str, list[dict[str, Any]]]]:
    cached = {"CacheHitResult": {"SourcePipelineExecutionArn": ARN.replace("abc123", "old999")}}
    done = step("Preprocess", "Succeeded", 0, 1, **cached)
    if outcome == "fail":
        return [
            ("Executing", [step("Preprocess", "Executing", 0)]),
            ("Failed", [step("Preprocess", "Failed", 0, 2, FailureReason=PROBLEMS)]),
        ]
    return [
        ("Executing", [step("Preprocess", "Executing", 0)]),
        ("Executing", [done, step("Train", "Executing", 1)]),
        ("Executing", [done, step("Train", "Succeeded", 1, 9, AttemptCount=2),
                       step("Evaluate", "Executing", 9)]),
        ("Succeeded", [done, step("Train", "Succeeded", 1, 9, AttemptCount=2),
                       step("Evaluate", "Succeeded", 9, 12)]),
    ]


class ScriptedSageMaker:
    """Each DescribePipelineExecution moves the story on; the steps follow the same position."""

    def __init__(self, outcome: str) -> None:
        self.frames = story(outcome)
        self.position = -1

    def describe_pipeline_execution(self, PipelineExecutionArn: str) -> dict[str, Any]:
        self.position = min(self.position + 1, len(self.frames) - 1)
        status = self.frames[self.position][0]
        return {"PipelineExecutionArn": PipelineExecutionArn, "PipelineExecutionStatus": status,
                "CreationTime": START, "LastModifiedTime": START + timedelta(seconds=12)}

    def get_paginator(self, operation: str) -> Any:
        steps = self.frames[self.position][1]

        class Pages:
            def paginate(self, **_: Any) -> list[dict[str, Any]]:
                return [{"PipelineExecutionSteps": steps}]

        return Pages()


def main(outcome: str) -> int:
    def say(text: str) -> None:
        print(text, flush=True)

    with step_table.execution_view(say) as view:
        status, _ = executions.wait_for(ScriptedSageMaker(outcome), ARN, say, poll_seconds=0.01,
                                        view=view)
    return 0 if status == "Succeeded" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

"""Training metrics as SageMaker reads them from a job's log: AlgorithmSpecification.MetricDefinitions.

Each definition is a name and a regular expression whose first group captures a number; SageMaker
scans the job's stdout and stderr with them and DescribeTrainingJob's FinalMetricDataList holds the
last value each one matched. A pipeline reads that as `Steps.<Train>.FinalMetricDataList['<name>']
.Value`, for example in a condition, so the local job reports it the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pipelines.local.contract.members import object_items, object_member


def metric_definition_problems(request: Mapping[str, Any]) -> Iterator[str]:
    """Definitions the local job could not read a value with: a regular expression Python cannot
    compile, or one with no group to capture the value (limits.py refuses the job for them)."""
    return _problems(_definitions(request))


def final_metrics(request: Mapping[str, Any], log: Path, timestamp: str) -> list[dict[str, Any]]:
    """FinalMetricDataList: for each definition that matched a number in the log, its last value."""
    definitions = [(d["Name"], re.compile(d["Regex"])) for d in _definitions(request)]
    if not definitions or not log.is_file():
        return []
    last: dict[str, float] = {}
    with log.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            for name, pattern in definitions:
                for match in pattern.finditer(line):
                    value = _number(match.group(1))
                    if value is not None:
                        last[name] = value
    return [
        {"MetricName": name, "Value": last[name], "Timestamp": timestamp}
        for name, _ in definitions
        if name in last
    ]


def _definitions(request: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return object_items(object_member(request, "AlgorithmSpecification").get("MetricDefinitions"))


def _problems(definitions: list[Mapping[str, Any]]) -> Iterator[str]:
    for definition in definitions:
        name, regex = definition.get("Name"), definition.get("Regex")
        if not isinstance(regex, str):
            continue  # an expression: checked once resolved
        try:
            groups = re.compile(regex).groups
        except re.error as error:
            yield f"metric {name!r}: Regex {regex!r} is not a regular expression Python reads ({error})"
            continue
        if groups < 1:
            yield (
                f"metric {name!r}: Regex {regex!r} has no group: the value is what its first group "
                "captures"
            )


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None

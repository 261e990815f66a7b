"""Reading a split that preprocess.py wrote: UTF-8 CSV, header `review_text,sentiment`.

Evaluate reads both splits (the test split, and the training split for the drift baseline) with the
csv module rather than pandas: preprocess.py has already checked and normalised every row, and
importing pandas would cost the job a second.
Ships in the Processing steps' library folder (lib/); standard library only.
"""

from __future__ import annotations

import csv
from pathlib import Path

TEXT = "review_text"
LABEL = "sentiment"


class SplitError(ValueError):
    """The split cannot be read as preprocess.py writes it; the message says why."""


def read_columns(path: Path, *columns: str) -> list[list[str]]:
    """The named columns of the split, each as a list of strings (blank lines skipped). The caller
    says, in its own words, when the file is missing."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = [row for row in csv.reader(handle, strict=True) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise SplitError(f"cannot read {path}: {error}") from None
    if not rows:
        raise SplitError(f"{path.name} is empty")
    header, body = rows[0], rows[1:]
    missing = [column for column in columns if column not in header]
    if missing:
        raise SplitError(f"{path.name} lacks column(s) {missing}; found {header}")
    if not body:
        raise SplitError(f"{path.name} has no rows")
    positions = [header.index(column) for column in columns]
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise SplitError(f"{path.name} row {line}: {len(row)} fields, the header has {len(header)}")
    return [[row[position] for row in body] for position in positions]


def read_labelled(path: Path) -> tuple[list[str], list[int]]:
    """Texts and their 0/1 labels."""
    texts, labels = read_columns(path, TEXT, LABEL)
    stripped = [label.strip() for label in labels]
    if any(label not in ("0", "1") for label in stripped):
        raise SplitError(f"{path.name}: sentiment must be 0 or 1 in every row")
    return texts, [int(label) for label in stripped]

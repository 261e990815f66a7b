"""SageMaker Processing step: validate the raw review CSVs and write clean copies.

Bad data should stop the pipeline here, with a message a data owner can act on (file, line,
problem), rather than surface later as a cryptic training error or a silently worse model.
The script ships alone into the scikit-learn container, so it imports only the standard library.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple, NoReturn

TEXT = "review_text"
LABEL = "sentiment"
LABELS = {"0": 0, "1": 1}
MAX_REVIEW_CHARS = 20_000
SPLITS = ("train", "test")
DELIMITER_NAMES = {";": "semicolon (;)", "\t": "tab", "|": "pipe (|)"}
# Far above MAX_REVIEW_CHARS so an over-long review reaches the length check with a clear message
# instead of failing inside the csv module.
CSV_FIELD_LIMIT = 2**31 - 1


class DataError(Exception):
    """A problem in an input file that whoever supplies the data has to fix."""


class Record(NamedTuple):
    """One CSV record and the file line it starts on (quoted newlines make these differ)."""

    line: int
    fields: list[str]


Row = tuple[str, int]


def decode(raw: bytes, name: str) -> str:
    """Decode strictly: a wrong encoding must be reported, not turned into replacement chars."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Count line breaks as the CSV reader does: CRLF, a bare CR or LF.
        line = len(re.findall(rb"\r\n|\r|\n", raw[: exc.start])) + 1
        raise DataError(
            f"{name}: line {line}: not valid UTF-8: byte 0x{raw[exc.start]:02x} at byte offset "
            f"{exc.start} of the file ({exc.reason}); save the file as UTF-8"
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def read_records(text: str, name: str) -> Iterator[Record]:
    """Yield the non-blank CSV records, each with the line it starts on as a text editor counts."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    end = 0
    while True:
        start = end + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(
                f"{name}: line {start}: malformed CSV in the record starting on this line ({exc})"
            ) from None
        end = reader.line_num
        if fields:
            yield Record(start, fields)


def delimiter_hint(fields: list[str]) -> str:
    """Explain the usual cause of a missing column: the file was saved with another delimiter."""
    if len(fields) != 1:
        return ""
    for delimiter, label in DELIMITER_NAMES.items():
        if delimiter in fields[0]:
            return f"; the header looks {label}-separated, but the file must be comma-separated"
    return ""


def parse_header(record: Record, name: str) -> list[str]:
    """Return the column names, requiring review_text and sentiment exactly once each."""
    columns = [field.strip() for field in record.fields]
    missing = [column for column in (TEXT, LABEL) if column not in columns]
    if missing:
        raise DataError(
            f"{name}: line {record.line}: missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(repr, missing))}; "
            f"found columns {columns}{delimiter_hint(record.fields)}"
        )
    for column in (TEXT, LABEL):
        if columns.count(column) > 1:
            raise DataError(f"{name}: line {record.line}: column {column!r} appears twice")
    return columns


def clean_text(raw: str, where: str) -> str:
    """Collapse whitespace so the same review always looks the same, and enforce the limit."""
    if not raw:
        raise DataError(f"{where}: review_text is missing (empty)")
    text = " ".join(raw.split())
    if not text:
        raise DataError(f"{where}: review_text contains only whitespace")
    if len(text) > MAX_REVIEW_CHARS:
        raise DataError(
            f"{where}: review_text is {len(text):,} characters long; "
            f"the limit is {MAX_REVIEW_CHARS:,}"
        )
    return text


def clean_label(raw: str, where: str) -> int:
    """Accept exactly 0 or 1 so that no other spelling is silently guessed at."""
    value = raw.strip()
    if value not in LABELS:
        found = repr(value) if value else "an empty value"
        raise DataError(f"{where}: sentiment must be 0 or 1, found {found}")
    return LABELS[value]


def clean_row(record: Record, columns: list[str], name: str) -> Row:
    """Validate one data record and return its normalised (text, label)."""
    where = f"{name}: line {record.line}"
    if [field.strip() for field in record.fields] == columns:
        raise DataError(f"{where}: the header row is repeated inside the data")
    if len(record.fields) != len(columns):
        raise DataError(
            f"{where}: found {len(record.fields)} fields but the header has {len(columns)}; "
            "quote a review that contains commas"
        )
    text = clean_text(record.fields[columns.index(TEXT)], where)
    return text, clean_label(record.fields[columns.index(LABEL)], where)


def drop_duplicates(rows: list[Row], name: str) -> list[Row]:
    """Drop exact repeats, which would otherwise weigh some reviews more than others."""
    unique = list(dict.fromkeys(rows))
    print(f"{name}: dropped {len(rows) - len(unique)} exact duplicate rows")
    return unique


def require_both_classes(rows: list[Row], name: str) -> None:
    """A classifier cannot learn from one class, so stop before training would fail."""
    labels = sorted({label for _, label in rows})
    if len(labels) < 2:
        raise DataError(
            f"{name}: every data row has sentiment {labels[0]}; "
            "training needs both classes (0 and 1)"
        )


def load_split(path: Path, need_both_classes: bool) -> list[Row]:
    """Read, validate and clean one CSV file; raise DataError on the first problem found."""
    name = path.name
    if not path.is_file():
        raise DataError(f"{name}: file not found (expected {path})")
    raw = path.read_bytes()
    text = decode(raw, name)
    if not text.strip():
        size = f"{len(raw)} bytes, only whitespace" if raw else "0 bytes"
        raise DataError(
            f"{name}: the file is empty ({size}); expected a header line {TEXT},{LABEL}"
        )
    records = read_records(text, name)
    header = next(records)
    columns = parse_header(header, name)
    extra = [column for column in columns if column not in (TEXT, LABEL)]
    if extra:
        print(f"{name}: ignoring extra columns {extra}")
    rows = [clean_row(record, columns, name) for record in records]
    if not rows:
        raise DataError(
            f"{name}: no data rows: the file holds only the header (line {header.line})"
        )
    print(f"{name}: {len(rows)} valid rows")
    rows = drop_duplicates(rows, name)
    if need_both_classes:
        require_both_classes(rows, name)
    return rows


def write_csv(rows: list[Row], path: Path) -> None:
    """Write the clean split in the one format the later steps read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([TEXT, LABEL])
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {path}")


def report_overlap(train: list[Row], test: list[Row]) -> None:
    """Warn when test reviews also occur in train, since that inflates the evaluation."""
    shared = {text for text, _ in train} & {text for text, _ in test}
    if shared:
        print(f"warning: {len(shared)} test reviews also appear in train.csv")


def write_message(base: Path, message: str) -> None:
    """Hand the reason to SageMaker, which shows output/message as the job's FailureReason."""
    target = base / "output" / "message"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(message, encoding="utf-8")


def fail(base: Path, message: str) -> NoReturn:
    """Stop on bad data: no traceback, since the message already says what to fix."""
    write_message(base, message)
    print(message, file=sys.stderr)
    sys.exit(1)


def run(base: Path) -> None:
    """Validate both splits, reporting the first problem of each file together."""
    source = base / "processing" / "input" / "data"
    splits: dict[str, list[Row]] = {}
    errors: list[str] = []
    for split in SPLITS:
        try:
            splits[split] = load_split(source / f"{split}.csv", need_both_classes=split == "train")
        except DataError as exc:
            errors.append(str(exc))
    if errors:
        fail(base, "\n".join(errors))
    report_overlap(splits["train"], splits["test"])
    for split, rows in splits.items():
        write_csv(rows, base / "processing" / split / f"{split}.csv")


def main() -> None:
    """Entry point of the Processing job."""
    base = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
    csv.field_size_limit(CSV_FIELD_LIMIT)
    try:
        run(base)
    except Exception as exc:
        write_message(base, f"preprocess failed unexpectedly: {type(exc).__name__}: {exc}")
        raise


if __name__ == "__main__":
    main()

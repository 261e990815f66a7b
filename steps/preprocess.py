"""SageMaker Processing step: validate the raw review CSVs and write clean copies.

Bad data should stop the pipeline here, with a message a data owner can act on (file, line,
problem), rather than surface later as a cryptic training error or a silently worse model.
The script ships alone into the scikit-learn container, so it imports only the standard library.

Each file is streamed: decoded a chunk at a time, validated row by row and written straight to
its clean copy. Exact repeats are found by 16-byte digests of the rows rather than by keeping the
rows, so memory grows only with the number of distinct rows, not with the size of the CSV.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple, NoReturn

TEXT = "review_text"
LABEL = "sentiment"
LABELS = {"0": 0, "1": 1}
MAX_REVIEW_CHARS = 20_000
SPLITS = ("train", "test")
DELIMITER_NAMES = {";": "semicolon (;)", "\t": "tab", "|": "pipe (|)"}
# Far above MAX_REVIEW_CHARS so an over-long review reaches the length check with a clear message
# instead of failing inside the csv module.
CSV_FIELD_LIMIT = 2**31 - 1
# Bytes decoded at a time: what memory is bounded by, besides the row digests.
CHUNK_BYTES = 1 << 18
LINE_BREAK = re.compile(r"\r\n|\r|\n")
# SageMaker keeps the first 1,024 bytes of output/message as the job's (and step's) FailureReason.
MESSAGE_BYTES = 1024
CUT = "…"


class DataError(Exception):
    """A problem in an input file that whoever supplies the data has to fix."""


class Record(NamedTuple):
    """One CSV record and the file line it starts on (quoted newlines make these differ)."""

    line: int
    fields: list[str]


Row = tuple[str, int]


def utf8_error(exc: UnicodeDecodeError, name: str, line: int, before: str, start: int) -> DataError:
    """Point at the bad byte by its offset in the file and its line, so it can be found and fixed.

    `before` is the text decoded since the start of `line`, and `start` the file offset of the
    bytes the decoder failed on (exc.object, which begins with any bytes held over from the
    previous chunk).
    """
    before += exc.object[: exc.start].decode("utf-8")
    # Count line breaks as the CSV reader does: CRLF, a bare CR or LF.
    line += len(LINE_BREAK.findall(before))
    return DataError(
        f"{name}: line {line}: not valid UTF-8: byte 0x{exc.object[exc.start]:02x} at byte offset "
        f"{start + exc.start} of the file ({exc.reason}); save the file as UTF-8"
    )


def decoded_lines(handle: BinaryIO, name: str) -> Iterator[str]:
    """Yield the file's lines, each ending in its CRLF, CR or LF as the csv reader expects.

    Decoding strictly, CHUNK_BYTES at a time, keeps memory flat however big the file is: a wrong
    encoding is reported rather than turned into replacement characters, and the incremental
    decoder carries a character split between two chunks over to the next one. A bad byte is
    found when its chunk is decoded, so a row problem in an earlier chunk is reported first.
    """
    # Skip the byte order mark Excel writes; offsets still count from the start of the file.
    if handle.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:
        handle.seek(0)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    offset = handle.tell()  # of the next chunk in the file
    line = 1  # the line `text` starts on
    text = ""  # decoded but not yet yielded: the start of a line that may go on in the next chunk
    while True:
        chunk = handle.read(CHUNK_BYTES)
        try:
            text += decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            start = offset + len(chunk) - len(exc.object)
            raise utf8_error(exc, name, line, text, start) from None
        offset += len(chunk)
        lines = io.StringIO(text, newline="").readlines()
        # Hold back a last line without LF: it may go on, or its CR be half of a CRLF.
        text = lines.pop() if chunk and lines and not lines[-1].endswith("\n") else ""
        line += len(lines)
        yield from lines
        if not chunk:
            return


def require_content(lines: Iterator[str], path: Path) -> Iterator[str]:
    """Stop on a file of nothing but whitespace, an empty export rather than a CSV problem.

    The blank lines read on the way are handed on, so that the line numbers stay right.
    """
    blank: list[str] = []
    for line in lines:
        if not line.isspace():
            return itertools.chain(blank, [line], lines)
        blank.append(line)
    size = path.stat().st_size
    raise DataError(
        f"{path.name}: the file is empty ({f'{size} bytes, only whitespace' if size else '0 bytes'}); "
        f"expected a header line {TEXT},{LABEL}"
    )


def read_records(lines: Iterable[str], name: str) -> Iterator[Record]:
    """Yield the non-blank CSV records, each with the line it starts on as a text editor counts."""
    reader = csv.reader(lines, strict=True)
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


def clean_rows(handle: BinaryIO, path: Path) -> Iterator[Row]:
    """Validate a file as it is read, yielding each data row cleaned; DataError on a problem."""
    name = path.name
    records = read_records(require_content(decoded_lines(handle, name), path), name)
    header = next(records)
    columns = parse_header(header, name)
    extra = [column for column in columns if column not in (TEXT, LABEL)]
    if extra:
        print(f"{name}: ignoring extra columns {extra}")
    first = next(records, None)
    if first is None:
        raise DataError(
            f"{name}: no data rows: the file holds only the header (line {header.line})"
        )
    for record in itertools.chain([first], records):
        yield clean_row(record, columns, name)


def fingerprint(value: str) -> bytes:
    """16 bytes stand in for a review or row, so remembering one costs the same at any length."""
    return hashlib.blake2b(value.encode(), digest_size=16).digest()


def row_key(text: str, label: int) -> bytes:
    """Identify a (text, label) row; the label is one digit, so the prefix is unambiguous."""
    return fingerprint(f"{label}{text}")


def require_both_classes(labels: set[int], name: str) -> None:
    """A classifier cannot learn from one class, so stop before training would fail."""
    if len(labels) < 2:
        raise DataError(
            f"{name}: every data row has sentiment {min(labels)}; "
            "training needs both classes (0 and 1)"
        )


class CleanSplit(NamedTuple):
    """What streaming one file left behind: its row digests and its overlap with train."""

    rows: set[bytes]  # digests of the rows written
    shared: int  # distinct reviews also in train (0 when not compared)


def clean_split(
    source: Path,
    target: Path,
    need_both_classes: bool,
    train: set[bytes] | None = None,
    origin: str | None = None,
) -> CleanSplit:
    """Stream one file into its clean copy; DataError on the first problem found.

    Exact repeats are dropped, since they would weigh some reviews more than others. Given
    train's row digests, reviews that also occur in train are counted on the way, since they
    inflate the evaluation. `origin` is the S3 folder the file was staged from, named when it is
    missing: that is where it has to be put.
    """
    if not source.is_file():
        staged_from = f", staged from {origin}" if origin else ""
        raise DataError(f"{source.name}: file not found (expected {source}{staged_from})")
    seen: set[bytes] = set()
    shared: set[bytes] = set()
    labels: set[int] = set()
    valid = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as handle, target.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([TEXT, LABEL])
        for text, label in clean_rows(handle, source):
            valid += 1
            key = row_key(text, label)
            if key not in seen:
                seen.add(key)
                labels.add(label)
                writer.writerow((text, label))
                if train is not None and in_train(text, train):
                    shared.add(fingerprint(text))
    print(f"{source.name}: {valid} valid rows")
    print(f"{source.name}: dropped {valid - len(seen)} exact duplicate rows")
    if need_both_classes:
        require_both_classes(labels, source.name)
    return CleanSplit(seen, len(shared))


def in_train(text: str, train: set[bytes]) -> bool:
    """Look a review up in train's row digests under either label, so that train's reviews
    need no set of their own."""
    return any(row_key(text, label) in train for label in LABELS.values())


def discard(targets: Iterable[Path], new_folders: Iterable[Path]) -> None:
    """Remove what a failed run wrote, so that no half-written split passes for a result."""
    for target in targets:
        target.unlink(missing_ok=True)
    for folder in new_folders:
        if folder.is_dir():
            folder.rmdir()


def shortened(text: str, size: int) -> str:
    """`text` in at most `size` UTF-8 bytes, marked where it was cut."""
    data = text.encode()
    if len(data) <= size:
        return text
    room = max(0, size - len(CUT.encode()))
    return data[:room].decode("utf-8", errors="ignore") + CUT


def failure_message(problems: list[str], limit: int = MESSAGE_BYTES) -> str:
    """The problems one per line, each shortened as needed so that all of them fit in `limit`
    bytes: a long first problem must not push the second out of the FailureReason.

    The shortest problems are given their full length first; the rest share what is left."""
    lines = [" ".join(problem.split()) for problem in problems]
    room = limit - (len(lines) - 1)  # the newlines between them
    sizes = [len(line.encode()) for line in lines]
    budget = [0] * len(lines)
    for placed, index in enumerate(sorted(range(len(lines)), key=sizes.__getitem__)):
        budget[index] = min(sizes[index], room // (len(lines) - placed))
        room -= budget[index]
    return "\n".join(shortened(line, size) for line, size in zip(lines, budget, strict=True))


def write_message(base: Path, message: str) -> None:
    """Hand the reason to SageMaker, which shows output/message as the job's FailureReason.
    (job_failure.py does the same for the jobs that get the library folder; Preprocess needs
    nothing else from that folder, so it is not given one.)"""
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
    origin = staged_from(base, source)
    targets = {split: base / "processing" / split / f"{split}.csv" for split in SPLITS}
    new_folders = [target.parent for target in targets.values() if not target.parent.exists()]
    written: dict[str, CleanSplit] = {}
    errors: list[str] = []
    for split, target in targets.items():
        train = written["train"].rows if split == "test" and "train" in written else None
        try:
            written[split] = clean_split(
                source / f"{split}.csv", target, need_both_classes=split == "train", train=train,
                origin=origin,
            )
        except DataError as exc:
            errors.append(str(exc))
    if errors:
        discard(targets.values(), new_folders)
        fail(base, failure_message(errors))
    if written["test"].shared:
        print(f"warning: {written['test'].shared} test reviews also appear in train.csv")
    for split, result in written.items():
        print(f"wrote {len(result.rows)} rows to {targets[split]}")


def staged_from(base: Path, local: Path) -> str | None:
    """The S3 URI of the input SageMaker staged at `local`, as the job's own request names it in
    /opt/ml/config/processingjobconfig.json; None where there is no such file (the script run
    outside a Processing job) or it names no such input."""
    try:
        config = json.loads((base / "config" / "processingjobconfig.json").read_text(encoding="utf-8"))
        inputs = [item.get("S3Input") or {} for item in config.get("ProcessingInputs") or []]
        uris = [s3.get("S3Uri") for s3 in inputs if s3.get("LocalPath", "").rstrip("/") == str(local)]
    except (OSError, ValueError, AttributeError, TypeError):  # not a request SageMaker would write
        return None
    return uris[0] if uris and isinstance(uris[0], str) else None


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

"""Serving handlers for the SageMaker scikit-learn container: model_fn, and transform_fn over
read_reviews -> score -> write_answer.

The image's serving stack (sagemaker-containers) answers any exception a handler raises with 500;
only a response object a handler returns keeps its status. So the one handler it calls per request
is transform_fn, which turns a RequestError into a response with its 4xx status and
{"error": message}: a bad request is a client error on SageMaker as here, not a server error that
rollback alarms count. The toolkit refuses transform_fn beside input_fn, predict_fn or output_fn,
hence the other names of the three steps.

Training copies this file and scorer.py into the model artifact's code/, so an artifact always
carries the handlers it was built with; evaluation loads the model through them too. The model is
plain data (JSON and numpy arrays read with allow_pickle=False) scored by scorer.py: loading it
runs no code from the artifact's data, and scoring calls no scikit-learn. Clients get a
RequestError with an HTTP status and a message saying exactly what is wrong with their request.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

try:
    from . import scorer
except ImportError:  # loaded from the artifact's code/ dir, which is on sys.path
    import scorer  # type: ignore[no-redef]

JSON = "application/json"
JSONLINES = "application/jsonlines"
CSV = "text/csv"
SUPPORTED_CONTENT_TYPES = (JSON, JSONLINES, CSV)
TEXT_KEYS = ("review_text", "text")
MAX_REVIEW_CHARS = 20_000
MAX_REVIEWS = 10_000
JSON_TYPE_NAMES = {
    dict: "object",
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


class Prediction(TypedDict):
    """One answer: the predicted label and P(label 1)."""

    label: int
    score: float


class RequestError(ValueError):
    """A client error carrying the HTTP status the server should answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ModelIntegrityError(RuntimeError):
    """The artifact cannot be trusted to behave as it did when it was evaluated."""


def _sha256(path: Path) -> str:
    """Stream the file so a large model does not need to fit in memory twice."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_fn(model_dir: str) -> scorer.CompiledModel:
    """Load the plain-data model after checking every file against metadata.json's digests (a
    check against corruption: the registry's digest of model.tar.gz guards against replacement)."""
    directory = Path(model_dir)
    metadata_path = directory / "metadata.json"
    if not metadata_path.is_file():
        raise ModelIntegrityError(f"no metadata.json in {directory}; refusing an unverified model")
    metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    if metadata.get("format") != scorer.FORMAT:
        raise ModelIntegrityError(
            f"metadata.json describes a {metadata.get('format')!r} model; this code serves {scorer.FORMAT!r}"
        )
    digests = metadata.get("files") or {}
    unlisted = [name for name in scorer.DATA_FILES if name not in digests]
    if unlisted:
        raise ModelIntegrityError(f"metadata.json has no digest for {unlisted}")
    for name, expected in sorted(digests.items()):
        path = directory / name
        actual = _sha256(path) if path.is_file() else "missing"
        if actual != expected:
            raise ModelIntegrityError(
                f"sha256 of {path} is {actual} but metadata.json records {expected}; "
                "refusing to load a modified or corrupted model"
            )
    try:
        return scorer.CompiledModel.load(directory)
    except (scorer.ModelFormatError, ValueError, KeyError) as exc:
        raise ModelIntegrityError(f"the model in {directory} cannot be loaded: {exc}") from exc


def _media_type(header: str | None) -> str:
    """Reduce a Content-Type or Accept entry to its lower-case media type, without parameters."""
    return (header or "").split(";")[0].strip().lower()


def _json_type(value: object) -> str:
    """Name a parsed value in JSON's terms, which is what the client wrote."""
    return JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _decode(body: bytes | bytearray | str) -> str:
    """Decode strictly: a wrongly encoded body is a client error, not text to guess at. Text (what
    the serving toolkit hands over for JSON and CSV) loses a leading BOM as bytes do."""
    if isinstance(body, str):
        return body.removeprefix("\ufeff")
    try:
        return bytes(body).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequestError(
            400,
            f"the request body is not valid UTF-8: byte 0x{body[exc.start]:02x} at offset "
            f"{exc.start}",
        ) from None


def _place(index: int, line: int | None) -> str:
    """Where a review stands in the request, as error messages name it."""
    return f"index {index}" if line is None else f"index {index} (line {line})"


def _review(item: object, index: int, line: int | None = None) -> str:
    """Extract one review from a string or an object holding review_text (or text). Runs once
    per review of a batch, so the place is only spelled out for an error."""
    value = item
    if isinstance(item, dict):
        for key in TEXT_KEYS:
            if key in item:
                value = item[key]
                break
        else:
            raise RequestError(
                400,
                f"{_place(index, line)}: expected an object with a 'review_text' (or 'text') field, "
                f"found an object with keys {sorted(item)}",
            )
    if not isinstance(value, str):
        raise RequestError(
            400,
            f"{_place(index, line)}: expected a string or an object with a string 'review_text', "
            f"found {_json_type(value)}",
        )
    if not value or value.isspace():
        state = "empty" if not value else "blank (only whitespace)"
        raise RequestError(400, f"{_place(index, line)}: the review is {state}")
    if len(value) > MAX_REVIEW_CHARS:
        raise RequestError(
            400,
            f"{_place(index, line)}: the review has {len(value)} characters; "
            f"the limit is {MAX_REVIEW_CHARS}",
        )
    return value


def _check_count(count: int) -> None:
    """Bound the batch before any per-review work, so an oversized request fails fast."""
    if count == 0:
        raise RequestError(400, "the request holds no reviews")
    if count > MAX_REVIEWS:
        raise RequestError(
            413, f"the request holds {count} reviews; at most {MAX_REVIEWS} are allowed per request"
        )


def _json_items(document: object) -> list[object]:
    """Accept a review, a list of reviews, or {"instances": [...]} (SageMaker's convention)."""
    if isinstance(document, dict) and "instances" in document:
        instances = document["instances"]
        if not isinstance(instances, list):
            raise RequestError(400, f"'instances' must be an array, found {_json_type(instances)}")
        return instances
    if isinstance(document, list):
        return document
    if isinstance(document, (str, dict)):
        return [document]
    raise RequestError(
        400,
        "expected a string, an object with 'review_text', an array of those, or "
        f'{{"instances": [...]}}, found {_json_type(document)}',
    )


def _parse_json(text: str, where: str) -> Any:
    """json.loads with every way it can refuse input turned into a 400: syntax errors, integers
    past Python's digit limit (ValueError) and nesting too deep to parse (RecursionError)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(
            400, f"{where}invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise RequestError(400, f"{where}JSON cannot be read: {reason}") from None


def _from_json(text: str) -> list[str]:
    """Parse an application/json body."""
    document = _parse_json(text, "")
    items = _json_items(document)
    _check_count(len(items))
    return [_review(item, index) for index, item in enumerate(items)]


def _from_jsonlines(text: str) -> list[str]:
    """Parse an application/jsonlines body; blank lines are skipped."""
    # Only "\n" ends a JSON Lines record: U+2028 and friends are legal inside JSON strings.
    lines = [
        (number, line.removesuffix("\r"))
        for number, line in enumerate(text.split("\n"), 1)
        if line.strip()
    ]
    _check_count(len(lines))
    reviews: list[str] = []
    for index, (number, line) in enumerate(lines):
        reviews.append(_review(_parse_json(line, f"{_place(index, number)}: "), index, number))
    return reviews


def _csv_rows(text: str) -> list[tuple[int, list[str]]]:
    """Parse CSV rows with the line each starts on; blank lines are skipped."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    end = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return rows
        except csv.Error as exc:
            raise RequestError(
                400, f"malformed CSV in the row starting at line {end + 1}: {exc}"
            ) from None
        if row:
            rows.append((end + 1, row))
        end = reader.line_num


def _from_csv(text: str) -> list[str]:
    """Parse a text/csv body: first column, optional review_text header."""
    rows = _csv_rows(text)
    if rows and rows[0][1][0] == TEXT_KEYS[0]:
        rows = rows[1:]
    _check_count(len(rows))
    return [
        _review(row[0], index, number)
        for index, (number, row) in enumerate(rows)
    ]


def read_reviews(body: bytes | bytearray | str, content_type: str | None) -> list[str]:
    """Turn a request body into review texts, or raise RequestError saying what is wrong."""
    media = _media_type(content_type)
    parsers = {JSON: _from_json, JSONLINES: _from_jsonlines, CSV: _from_csv}
    if media not in parsers:
        raise RequestError(
            415,
            f"unsupported content type {content_type!r}; "
            f"supported: {', '.join(SUPPORTED_CONTENT_TYPES)}",
        )
    text = _decode(body)
    if not text.strip():
        raise RequestError(400, "the request body is empty")
    return parsers[media](text)


def score(texts: list[str], model: scorer.CompiledModel) -> list[Prediction]:
    """Score the whole batch at once; score is P(label 1), label 1 when it exceeds P(label 0)."""
    positive = model.predict_proba(texts)[:, 1]
    labels = (positive > 0.5).astype(int).tolist()
    scores = np.round(positive, 6).tolist()
    return [{"label": label, "score": scores[index]} for index, label in enumerate(labels)]


def _accepted(accept: str | None) -> str:
    """Pick the first supported entry of an Accept header; none or */* means JSON."""
    for entry in (accept or "").split(","):
        media = _media_type(entry)
        if media in ("", "*/*", "application/*", JSON):
            return JSON
        if media == JSONLINES:
            return JSONLINES
    raise RequestError(406, f"cannot answer in {accept!r}; supported: {JSON}, {JSONLINES}")


def write_answer(predictions: list[Prediction], accept: str | None) -> tuple[bytes, str]:
    """Serialise predictions as {"predictions": [...]} or as one JSON object per line."""
    media = _accepted(accept)
    if media == JSONLINES:
        body = "".join(json.dumps(prediction) + "\n" for prediction in predictions)
    else:
        body = json.dumps({"predictions": predictions})
    return body.encode("utf-8"), media


def transform_fn(
    model: scorer.CompiledModel, body: bytes | str, content_type: str | None, accept: str | None
) -> Any:
    """The serving toolkit's handler for this model."""
    return answer(score, model, body, content_type, accept)


def answer(
    scoring: Callable[[list[str], Any], list[Prediction]], model: Any, body: bytes | str,
    content_type: str | None, accept: str | None,
) -> Any:
    """read_reviews -> scoring -> write_answer as (body, type), or a refused request as a response
    with its status and {"error": message} (Flask's, which the image's stack sends as it is)."""
    try:
        return write_answer(scoring(read_reviews(body, content_type), model), accept)
    except RequestError as error:
        from flask import Response  # the serving stack's own; loaded by the first refusal only

        return Response(json.dumps({"error": error.message}), status=error.status, mimetype=JSON)


def features(
    texts: list[str], predictions: list[Prediction], model: scorer.CompiledModel
) -> dict[str, list[float]]:
    """Per-review numbers for drift monitoring. The baseline and the monitor both call this one
    function, from the artifact itself, so training-time and serving-time features cannot differ.
    Tokens are the TF-IDF analyzer's unigrams; out of vocabulary means not among the model's terms
    (the model can only use tokens it has seen, so their share says how foreign a review is)."""
    if len(texts) != len(predictions):
        raise ValueError(f"{len(texts)} reviews but {len(predictions)} predictions")
    counts, unknown = model.unigram_counts(texts)
    oov = np.divide(unknown, counts, out=np.zeros_like(counts), where=counts > 0)
    return {
        "prediction_score": [float(prediction["score"]) for prediction in predictions],
        "predicted_label": [float(int(prediction["label"])) for prediction in predictions],
        "review_length": [float(len(text)) for text in texts],
        "token_count": counts.tolist(),
        "oov_rate": oov.tolist(),
    }

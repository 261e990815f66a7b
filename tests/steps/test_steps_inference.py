"""inference.py: model verification, every content type, every client error, batch scoring."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from step_helpers import NEGATIVE, POSITIVE

from steps import inference
from steps.inference import RequestError


@pytest.fixture(scope="module")
def model(model_dir: Path) -> Any:
    return inference.model_fn(str(model_dir))


def test_model_fn_loads_verified_model(model: Any) -> None:
    assert [p["label"] for p in inference.score([POSITIVE[0], NEGATIVE[0]], model)] == [1, 0]


def test_model_fn_reads_no_pickle(model_dir: Path) -> None:
    """Every data file is JSON or a plain .npy array; none of them can hold a pickle."""
    for name in ("idf.npy", "coefficients.npy"):
        assert np.load(model_dir / name, allow_pickle=False).dtype == np.float64
    for name in ("model.json", "vocabulary.json", "lexicon.json", "metadata.json"):
        json.loads((model_dir / name).read_text(encoding="utf-8"))
    assert not list(model_dir.glob("*.joblib")) and not list(model_dir.glob("*.pkl"))


@pytest.mark.parametrize("name", ["coefficients.npy", "vocabulary.json", "lexicon.json", "model.json"])
def test_model_fn_refuses_digest_mismatch(tmp_path: Path, model_dir: Path, name: str) -> None:
    copy = shutil.copytree(model_dir, tmp_path / "model")
    with (copy / name).open("ab") as handle:
        handle.write(b" ")
    expected = f"sha256 of .*{name}.*refusing to load a modified"
    with pytest.raises(inference.ModelIntegrityError, match=expected):
        inference.model_fn(str(copy))


def test_model_fn_refuses_a_pickled_array(tmp_path: Path, model_dir: Path) -> None:
    """Even with a matching digest, an object array is refused instead of unpickled."""
    copy = shutil.copytree(model_dir, tmp_path / "model")
    np.save(copy / "idf.npy", np.array([object()], dtype=object), allow_pickle=True)
    metadata = json.loads((copy / "metadata.json").read_text(encoding="utf-8"))
    metadata["files"]["idf.npy"] = hashlib.sha256((copy / "idf.npy").read_bytes()).hexdigest()
    (copy / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    with pytest.raises(inference.ModelIntegrityError, match="cannot be loaded"):
        inference.model_fn(str(copy))


def test_model_fn_refuses_another_format(tmp_path: Path, model_dir: Path) -> None:
    copy = shutil.copytree(model_dir, tmp_path / "model")
    metadata = json.loads((copy / "metadata.json").read_text(encoding="utf-8"))
    metadata["format"] = "pickled-sklearn"
    (copy / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    with pytest.raises(inference.ModelIntegrityError, match="'pickled-sklearn' model"):
        inference.model_fn(str(copy))


def test_model_fn_refuses_model_without_metadata(tmp_path: Path, model_dir: Path) -> None:
    copy = shutil.copytree(model_dir, tmp_path / "model")
    (copy / "metadata.json").unlink()
    with pytest.raises(inference.ModelIntegrityError, match=r"no metadata\.json"):
        inference.model_fn(str(copy))


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        pytest.param('"nice kettle"', "application/json", ["nice kettle"], id="json-string"),
        pytest.param(
            b'{"review_text": "nice"}', "application/json", ["nice"], id="json-object-bytes"
        ),
        pytest.param('{"text": "nice"}', "application/json", ["nice"], id="json-text-key"),
        pytest.param(
            '["a", {"review_text": "b"}, {"text": "c"}]',
            "application/json",
            ["a", "b", "c"],
            id="json-list",
        ),
        pytest.param(
            '{"instances": ["a", {"review_text": "b"}]}',
            "application/json",
            ["a", "b"],
            id="json-instances",
        ),
        pytest.param(
            '\ufeff["caf\u00e9"]'.encode(),
            "Application/JSON; charset=utf-8",
            ["caf\u00e9"],
            id="json-bom-params-case",
        ),
        pytest.param(  # as the serving toolkit hands exactly application/json over: text, BOM kept
            '\ufeff["caf\u00e9"]',
            "application/json",
            ["caf\u00e9"],
            id="json-bom-as-text",
        ),
        pytest.param(
            b'"a"\n\n{"review_text": "b"}\r\n{"text": "c"}\n',
            "application/jsonlines",
            ["a", "b", "c"],
            id="jsonlines",
        ),
        pytest.param(
            'review_text\n"good, really"\n"two\nlines"\n',
            "text/csv",
            ["good, really", "two\nlines"],
            id="csv-header",
        ),
        pytest.param(
            b"first,9\nsecond\n", "text/csv; charset=utf-8", ["first", "second"], id="csv"
        ),
    ],
)
def test_input_fn_accepts(body: bytes | str, content_type: str, expected: list[str]) -> None:
    assert inference.read_reviews(body, content_type) == expected


TOO_MANY = inference.MAX_REVIEWS + 1
LONG = "x" * (inference.MAX_REVIEW_CHARS + 1)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "fragment"),
    [
        pytest.param(
            b"hi",
            "text/plain",
            415,
            "supported: application/json, application/jsonlines, text/csv",
            id="unsupported",
        ),
        pytest.param(b"x", None, 415, "unsupported content type None", id="no-content-type"),
        pytest.param(
            b'["a",', "application/json", 400, "invalid JSON at line 1 column 6", id="bad-json"
        ),
        pytest.param(
            b"[1]", "application/json", 400, "index 0: expected a string", id="number-item"
        ),
        pytest.param(
            b'["a", {"review_text": null}]',
            "application/json",
            400,
            "index 1: expected a string or an object with a string 'review_text', found null",
            id="null-text",
        ),
        pytest.param(
            b'[{"body": "x"}]',
            "application/json",
            400,
            "found an object with keys ['body']",
            id="object-without-text",
        ),
        pytest.param(b"5", "application/json", 400, "found number", id="top-level-number"),
        pytest.param(
            b'{"instances": "a"}',
            "application/json",
            400,
            "'instances' must be an array, found string",
            id="instances-not-list",
        ),
        pytest.param(b"", "application/json", 400, "the request body is empty", id="empty-body"),
        pytest.param(b" \n ", "text/csv", 400, "the request body is empty", id="blank-body"),
        pytest.param(
            b"[]", "application/json", 400, "the request holds no reviews", id="empty-list"
        ),
        pytest.param(b"review_text\n", "text/csv", 400, "holds no reviews", id="csv-header-only"),
        pytest.param(
            b'{"instances": []}', "application/json", 400, "no reviews", id="empty-instances"
        ),
        pytest.param(
            b'["ok", ""]',
            "application/json",
            400,
            "index 1: the review is empty",
            id="empty-review",
        ),
        pytest.param(
            b'["ok", " \\t "]',
            "application/json",
            400,
            "index 1: the review is blank",
            id="blank-review",
        ),
        pytest.param(
            b'ok\n" "\n', "text/csv", 400, "index 1 (line 2): the review is blank", id="csv-blank"
        ),
        pytest.param(
            b'"caf\xe9"',
            "application/json",
            400,
            "not valid UTF-8: byte 0xe9 at offset 4",
            id="not-utf8",
        ),
        pytest.param(
            json.dumps(["ok", LONG]),
            "application/json",
            400,
            "index 1: the review has 20001 characters; the limit is 20000",
            id="too-long",
        ),
        pytest.param(
            json.dumps(["a"] * TOO_MANY),
            "application/json",
            413,
            "10001 reviews",
            id="json-too-many",
        ),
        pytest.param(
            '"a"\n' * TOO_MANY, "application/jsonlines", 413, "at most 10000", id="jsonl-too-many"
        ),
        pytest.param("a\n" * TOO_MANY, "text/csv", 413, "at most 10000", id="csv-too-many"),
        pytest.param(
            b'"a"\n{"review_text": \n',
            "application/jsonlines",
            400,
            "index 1 (line 2): invalid JSON",
            id="jsonl-bad-line",
        ),
        pytest.param(
            b'"a"\n["b"]\n',
            "application/jsonlines",
            400,
            "index 1 (line 2): expected a string",
            id="jsonl-array-item",
        ),
        pytest.param(
            b'ok\n"never closed\n',
            "text/csv",
            400,
            "malformed CSV in the row starting at line 2",
            id="csv-malformed",
        ),
    ],
)
def test_input_fn_rejects(
    body: bytes | str, content_type: str | None, status: int, fragment: str
) -> None:
    with pytest.raises(RequestError) as caught:
        inference.read_reviews(body, content_type)
    assert caught.value.status == status
    assert fragment in caught.value.message
    assert isinstance(caught.value, ValueError)


def test_predict_fn_labels_and_rounded_scores(model: Any) -> None:
    texts = [POSITIVE[1], NEGATIVE[1], "fine I guess"]
    predictions = inference.score(texts, model)
    probabilities = model.predict_proba(texts)[:, 1]
    assert predictions[0]["label"] == 1 and predictions[1]["label"] == 0
    for prediction, probability in zip(predictions, probabilities, strict=True):
        assert isinstance(prediction["label"], int)
        assert prediction["label"] == int(probability > 0.5)
        assert prediction["score"] == round(float(probability), 6)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        pytest.param("I wouldn't recommend it", 0, id="negated-recommend"),
        pytest.param("not good at all, would not buy again", 0, id="negated-good"),
        pytest.param("I would recommend it to anyone", 1, id="recommend"),
    ],
)
def test_lexicon_negation_reaches_the_label(model: Any, text: str, label: int) -> None:
    """The training corpus never says "recommend": the lexicon's prior and its negation do."""
    assert inference.score([text], model)[0]["label"] == label


class CountingModel:
    """Wraps a model to count predict_proba calls."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.calls = 0

    def predict_proba(self, texts: list[str]) -> Any:
        self.calls += 1
        return self.model.predict_proba(texts)


def test_batch_of_1000_is_scored_in_one_call(model: Any) -> None:
    reviews = [f"{POSITIVE[i % 20]} number {i}" for i in range(1000)]
    body = json.dumps({"instances": [{"review_text": text} for text in reviews]})
    counting = CountingModel(model)
    predictions = inference.score(inference.read_reviews(body, "application/json"), counting)  # type: ignore[arg-type]
    assert counting.calls == 1
    assert len(predictions) == 1000
    assert {p["label"] for p in predictions} == {1}


@pytest.mark.parametrize("accept", ["application/json", "*/*", "", None, "text/html, */*"])
def test_output_fn_json(accept: str | None) -> None:
    predictions: list[inference.Prediction] = [{"label": 1, "score": 0.9}]
    body, content_type = inference.write_answer(predictions, accept)
    assert content_type == "application/json"
    assert json.loads(body) == {"predictions": [{"label": 1, "score": 0.9}]}


def test_output_fn_jsonlines() -> None:
    predictions: list[inference.Prediction] = [
        {"label": 1, "score": 0.9},
        {"label": 0, "score": 0.123457},
    ]
    body, content_type = inference.write_answer(predictions, "application/jsonlines; charset=utf-8")
    assert content_type == "application/jsonlines"
    assert [json.loads(line) for line in body.decode().splitlines()] == predictions


@pytest.mark.parametrize("accept", ["text/csv", "text/html, application/xml"])
def test_output_fn_rejects_unsupported_accept(accept: str) -> None:
    with pytest.raises(RequestError) as caught:
        inference.write_answer([{"label": 1, "score": 0.5}], accept)
    assert caught.value.status == 406
    assert "application/jsonlines" in caught.value.message


def test_full_request_cycle(model: Any) -> None:
    texts = inference.read_reviews(f"{POSITIVE[2]}\n{NEGATIVE[2]}\n".encode(), "text/csv")
    body, content_type = inference.write_answer(inference.score(texts, model), "application/json")
    labels = [p["label"] for p in json.loads(body)["predictions"]]
    assert (labels, content_type) == ([1, 0], "application/json")


def test_transform_fn_answers_a_good_request_with_the_predictions(model: Any) -> None:
    body, content_type = inference.transform_fn(model, json.dumps([POSITIVE[0]]), "application/json", None)
    assert content_type == "application/json"
    assert [p["label"] for p in json.loads(body)["predictions"]] == [1]


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status"),
    [
        ("[]", "application/json", None, 400),
        ("great", "text/plain", None, 415),
        ('["great"]', "application/json", "text/html", 406),
    ],
)
def test_transform_fn_answers_a_bad_request_with_its_status_not_an_exception(
    model: Any, body: str, content_type: str, accept: str | None, status: int
) -> None:
    """The image's serving stack answers any exception with 500, so a refusal is a response."""
    response = inference.transform_fn(model, body, content_type, accept)
    assert (response.status_code, response.mimetype) == (status, "application/json")
    assert json.loads(response.get_data())["error"]

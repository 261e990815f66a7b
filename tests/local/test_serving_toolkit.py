"""A model server as real process, holding inference code to the scikit-learn image's serving
toolkit (hosting/serving_toolkit.py): what its handlers get, its defaults, transform_fn."""

from __future__ import annotations

import http.client
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipelines.local.hosting.serving_toolkit import TRANSFORM_WITH_HANDLERS

from .test_model_server import WAIT_SECONDS, Server, post

ROW_SUMS = """
class RowSums:
    def predict(self, data):
        return data.sum(axis=1)

def model_fn(model_dir):
    return RowSums()
"""

WHAT_INPUT_FN_GETS = """
import json

def model_fn(model_dir):
    return None

def input_fn(body, content_type):
    return type(body).__name__

def predict_fn(data, model):
    return data

def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"
"""

TRANSFORM = """
import flask

def model_fn(model_dir):
    return "model"

def transform_fn(model, content, content_type, accept):
    if content == "refuse":
        return flask.Response("no", status=422, mimetype="text/plain")
    return f"{model}:{content_type}:{content}", "text/plain"
"""


def serving(tmp_path: Path, handlers: str, env: dict[str, str] | None = None) -> Server:
    code = tmp_path / "model" / "code"
    code.mkdir(parents=True)
    (code / "inference.py").write_text(handlers)
    return Server(tmp_path / "model", tmp_path / "stderr.txt", env)


@pytest.fixture
def connect() -> Iterator:
    opened: list[tuple[Server, http.client.HTTPConnection]] = []

    def connect_to(server: Server) -> http.client.HTTPConnection:
        assert server.port, f"no LISTENING line; stderr: {server.stderr()}"
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT_SECONDS)
        opened.append((server, connection))
        return connection

    yield connect_to
    for server, connection in opened:
        connection.close()
        server.stop()


def test_the_default_handlers_decode_json_and_csv_as_float32_and_encode_what_is_accepted(
    tmp_path: Path, connect
) -> None:
    conn = connect(serving(tmp_path, ROW_SUMS))

    assert post(conn, b"[[0.1, 0], [1, 2]]") == (200, "application/json", b"[0.10000000149011612, 3.0]")
    assert post(conn, b"1,2\n3,4\n", "text/csv", "text/csv") == (200, "text/csv", b"3.0\n7.0\n")
    status, content_type, body = post(conn, b"1,2\n3,4\n", "text/csv", "application/x-npy")
    assert (status, content_type) == (200, "application/x-npy")
    answer = np.load(io.BytesIO(body), allow_pickle=False)
    assert answer.dtype == np.float32 and answer.tolist() == [3.0, 7.0]
    buffer = io.BytesIO()
    np.save(buffer, np.array([[1, 2]], dtype=np.int64))  # NPY keeps its own dtype
    assert post(conn, buffer.getvalue(), "application/x-npy")[2] == b"[3]"


@pytest.mark.parametrize(
    ("content_type", "accept", "status", "refused"),
    [
        ("text/plain", "application/json", 415, "text/plain"),
        ("application/json; charset=utf-8", "application/json", 415, "application/json; charset=utf-8"),
        ("application/json", "text/plain", 406, "text/plain"),
    ],
)
def test_the_default_handlers_refuse_other_types_as_the_toolkit_does(
    tmp_path: Path, connect, content_type: str, accept: str, status: int, refused: str
) -> None:
    conn = connect(serving(tmp_path, ROW_SUMS))

    answer = post(conn, b"[[1, 2]]", content_type, accept)

    assert answer[:2] == (status, "application/json")
    error = json.loads(answer[2])
    assert error["error"] == "UnsupportedFormatError"
    assert error["error-message"].startswith(f"Content type {refused} is not supported by this framework.")


def test_the_default_accept_is_the_models_when_the_request_accepts_anything(tmp_path: Path, connect) -> None:
    conn = connect(serving(tmp_path, ROW_SUMS, {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"}))

    assert post(conn, b"[[1, 2]]", accept="*/*") == (200, "text/csv", b"3.0\n")


def test_a_handler_gets_text_for_json_and_csv_and_bytes_for_any_other_type(tmp_path: Path, connect) -> None:
    conn = connect(serving(tmp_path, WHAT_INPUT_FN_GETS))

    kinds = ("application/json", "text/csv", "application/jsonlines", "application/json; charset=utf-8")

    got = {kind: json.loads(post(conn, b"1", kind)[2]) for kind in kinds}

    assert got == {"application/json": "str", "text/csv": "str", "application/jsonlines": "bytes",
                   "application/json; charset=utf-8": "bytes"}


def test_transform_fn_alone_answers_with_its_body_type_and_status(tmp_path: Path, connect) -> None:
    conn = connect(serving(tmp_path, TRANSFORM))

    assert post(conn, b"hello", "text/csv") == (200, "text/plain", b"model:text/csv:hello")
    assert post(conn, b"refuse", "text/csv") == (422, "text/plain", b"no")


def test_transform_fn_beside_input_fn_does_not_load(tmp_path: Path) -> None:
    server = serving(tmp_path, TRANSFORM + "\ndef input_fn(body, content_type):\n    return body\n")
    try:
        assert server.first_line == ""
        assert server.process.wait(WAIT_SECONDS) == 1
        assert TRANSFORM_WITH_HANDLERS in server.stderr()
    finally:
        server.stop()

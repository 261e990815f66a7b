"""The local Lambda: stored zips, the Handler named at CreateFunction, errors as Lambda reports them."""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path

import pytest

from pipelines.local.errors import ServiceError
from pipelines.local.lambdas.functions import Functions
from pipelines.local.storage.database import Database

HANDLER = b"""
import os

def answer(event, context):
    return {"echo": event["value"], "function": os.environ["AWS_LAMBDA_FUNCTION_NAME"]}

def broken(event, context):
    raise RuntimeError("no luck")
"""


def zipped(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return raw.getvalue()


@pytest.fixture
def functions(tmp_path: Path) -> Functions:
    return Functions(Database(tmp_path / "state.db"), tmp_path / "functions", "us-east-1", "http://127.0.0.1:1")


def create(functions: Functions, name: str, handler: str, code: bytes) -> dict[str, object]:
    request = {"FunctionName": name, "Handler": handler, "Role": "r", "Runtime": "python3.12",
               "Code": {"ZipFile": base64.b64encode(code).decode()}}
    return functions.create(request, 0.0)


def test_the_handler_named_at_create_runs(functions: Functions) -> None:
    created = create(functions, "f", "app.answer", zipped({"app.py": HANDLER}))
    assert created["FunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:f"
    assert not any(str(key).startswith("_") for key in created)
    result = functions.invoke("arn:aws:lambda:us-east-1:000000000000:function:f", {"value": 7})
    assert (result.payload, result.error) == ({"echo": 7, "function": "f"}, "")


def test_an_exception_in_the_handler_is_the_invocation_error(functions: Functions) -> None:
    create(functions, "f", "app.broken", zipped({"app.py": HANDLER}))
    result = functions.invoke("f", {})
    assert result.payload is None and result.error == "RuntimeError: no luck"
    assert "Traceback" in result.log


def test_new_code_replaces_the_old(functions: Functions) -> None:
    create(functions, "f", "app.answer", zipped({"app.py": HANDLER}))
    newer = HANDLER.replace(b'"echo": event["value"]', b'"echo": -1')
    updated = functions.update_code("f", zipped({"app.py": newer}))
    assert functions.invoke("f", {"value": 7}).payload == {"echo": -1, "function": "f"}
    assert updated["CodeSize"] == len(zipped({"app.py": newer}))


@pytest.mark.parametrize(
    ("code", "message"),
    [(b"not a zip", "Could not unzip"), (zipped({"../escape.py": b"x = 1"}), "unsafe path")],
)
def test_bad_code_is_refused(functions: Functions, tmp_path: Path, code: bytes, message: str) -> None:
    with pytest.raises(ServiceError, match=message):
        create(functions, "f", "app.answer", code)
    assert not (tmp_path / "escape.py").exists()


def test_a_handler_is_required_and_names_are_unique(functions: Functions) -> None:
    request = {"FunctionName": "f", "Code": {"ZipFile": base64.b64encode(zipped({"a.py": b""})).decode()}}
    with pytest.raises(ServiceError, match="Handler is required"):
        functions.create(request, 0.0)
    create(functions, "f", "app.answer", zipped({"app.py": HANDLER}))
    with pytest.raises(ServiceError) as raised:
        create(functions, "f", "app.answer", zipped({"app.py": HANDLER}))
    assert raised.value.code == "ResourceConflictException"
    with pytest.raises(ServiceError) as missing:
        functions.invoke("ghost", {})
    assert missing.value.code == "ResourceNotFoundException"

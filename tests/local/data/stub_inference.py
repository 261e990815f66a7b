"""A tiny handler module with the same shape as steps/inference.py, served by the model server
and hosting tests (each copies it into a model directory as code/inference.py)."""

import importlib.util
import json
import os
import socket
import time
from pathlib import Path


class RequestError(ValueError):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def model_fn(model_dir):
    text = (Path(model_dir) / "model.txt").read_text().strip()
    if text == "fail":
        raise RuntimeError("model.txt says fail")
    flags = os.environ.get("TEST_FLAG_DIR")
    if flags and (Path(flags) / "hang").exists():  # tell which server is loading, then never load
        (Path(flags) / f"loading-{os.getpid()}").touch()
        time.sleep(600)
    if flags and (Path(flags) / "fail").exists():  # tell which server is loading, then fail
        (Path(flags) / f"failed-{os.getpid()}").touch()
        raise RuntimeError("the fail flag is set")
    return {"version": text}


def transform_fn(model, body, content_type, accept):
    """As steps/inference.py serves: a refusal is a response with its status, not an exception."""
    try:
        data = read(body, content_type)
    except RequestError as error:
        import flask

        return flask.Response(json.dumps({"error": error.message}), status=error.status,
                              mimetype="application/json")
    return write(predict(data, model), accept)


def read(body, content_type):
    if content_type.split(";")[0].strip() != "application/json":
        raise RequestError(415, f"cannot read {content_type}")
    return json.loads(body)


def predict(data, model):
    if data == "raise a client error":  # an exception, whatever status it carries, is a 500
        raise RequestError(400, "raised, not returned")
    if data == "crash":
        raise ZeroDivisionError("crash requested")
    if data == "exit":  # the worker process dies mid-request
        os._exit(3)
    if data == "block":  # signal that the request is in flight, then wait to be released
        flags = Path(os.environ["TEST_FLAG_DIR"])
        (flags / "started").touch()
        deadline = time.monotonic() + 30
        while not (flags / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    if isinstance(data, dict) and "allocate_mib" in data:  # hold that much memory for a while
        held = b"x" * (data["allocate_mib"] << 20)
        time.sleep(10)
        return {"version": model["version"], "echo": len(held)}
    if data == "environment":
        return {"version": model["version"], "echo": data, "environment": dict(os.environ)}
    if isinstance(data, dict) and "imports" in data:  # which of these modules this server can import
        found = {name: importlib.util.find_spec(name) is not None for name in data["imports"]}
        return {"version": model["version"], "echo": found}
    if isinstance(data, dict) and "reach" in data:  # connect to a port on this machine
        try:
            socket.create_connection(("127.0.0.1", data["reach"]), timeout=5).close()
            return {"version": model["version"], "echo": "connected"}
        except OSError as error:
            return {"version": model["version"], "echo": f"no network: {error}"}
    if data == "which worker":
        return {"version": model["version"], "echo": data, "pid": os.getpid()}
    return {"version": model["version"], "echo": data}


def write(prediction, accept):
    if accept == "text/plain":
        return f"{prediction['version']}:{prediction['echo']}"
    return json.dumps(prediction).encode(), "application/json"

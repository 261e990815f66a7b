"""The scikit-learn image's serving toolkit, as the handlers of an inference.py see it.

The image serves with sagemaker-containers: its worker reads the request, its transformer calls the
module's handlers and fills in the ones it leaves out, and its encoders turn bodies into numpy
arrays and back. What a handler gets and what the defaults do is reproduced here, so handlers that
lean on it behave as they will on SageMaker:

- `input_fn` (and `transform_fn`) gets the body as text (UTF-8) when the content type is exactly
  application/json or text/csv, and as bytes otherwise; a `body.decode()` fails on SageMaker for
  JSON, and here too.
- The default `input_fn` decodes JSON, CSV and NPY into a numpy array (float32 for JSON and CSV,
  as the scikit-learn image casts them); the default `output_fn` encodes the prediction as JSON, CSV
  or NPY. Another type is refused with the toolkit's UnsupportedFormatError: 415 for the request's,
  406 for the one it accepts. Types match exactly, as the toolkit compares them:
  `application/json; charset=utf-8` is not JSON to it.
- A module with `transform_fn` is served by it alone, and one that also defines `input_fn`,
  `predict_fn` or `output_fn` does not load.

One difference is deliberate: an NPY body is loaded without unpickling (the toolkit unpickles
object arrays, which would let any signed caller run code in the model server).
"""

from __future__ import annotations

import csv
import io
import json
import os
import traceback
from collections.abc import Callable
from types import ModuleType
from typing import Any, Protocol

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
ANY = "*/*"
UTF8_TYPES = (JSON, CSV)
DEFAULT_ACCEPT_VARIABLE = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
HANDLERS = ("input_fn", "predict_fn", "output_fn")
TRANSFORM_WITH_HANDLERS = "Cannot use transform_fn implementation with input_fn, predict_fn, and/or output_fn"


class UnsupportedFormat(Exception):
    """The toolkit's UnsupportedFormatError, with the status its transformer answers it with."""

    def __init__(self, content_type: str, status: int) -> None:
        self.status = status
        self.message = (
            f"Content type {content_type} is not supported by this framework.\n\n"
            "Please implement input_fn to to deserialize the request data or an output_fn to\n"
            "serialize the response. For more information, see the SageMaker Python SDK README."
        )
        super().__init__(self.message)


class Headers(Protocol):
    """A request's headers: http.server's message, or a plain mapping."""

    def get(self, name: str, /) -> Any: ...


class Answered(Exception):
    """A response object a handler returned with a status other than 200: sent as it is."""

    def __init__(self, status: int, body: bytes, content_type: str) -> None:
        super().__init__(f"the handler answered {status}")
        self.status = status
        self.body = body
        self.content_type = content_type


def request_content_type(headers: Headers) -> str:
    """The worker's: the ContentType header (some AWS services send it), then Content-Type, then JSON."""
    return str(headers.get("ContentType") or headers.get("Content-Type") or JSON)


def response_accept(headers: Headers) -> str:
    """The worker's: the Accept header, unless absent or */*, then the model's default accept."""
    accept = headers.get("Accept")
    if not accept or accept == ANY:
        return os.environ.get(DEFAULT_ACCEPT_VARIABLE) or JSON
    return str(accept)


def request_content(body: bytes, content_type: str) -> bytes | str:
    """What the handlers get: text for the UTF-8 types, bytes for the rest."""
    return body.decode("utf-8", "replace") if content_type in UTF8_TYPES else body


def response_parts(response: Any) -> tuple[bytes, str]:
    """A response object's body and type (Flask's Response: what the worker sends as it is);
    Answered when its status is not 200."""
    body = bytes(response.get_data())
    content_type = str(getattr(response, "mimetype", None) or JSON)
    if response.status_code != 200:
        raise Answered(int(response.status_code), body, content_type)
    return body, content_type


def error_document(error: UnsupportedFormat) -> bytes:
    """The body the toolkit's transformer answers an UnsupportedFormatError with."""
    return json.dumps({
        "error": "UnsupportedFormatError",
        "error-message": error.message,
        "stack-trace": "".join(traceback.format_exception(error)),
    }).encode()


def answer_for(error: Exception) -> tuple[int, bytes, str] | None:
    """The status, body and type the toolkit's worker answers a handler's exception with: a
    returned response as it is, the UnsupportedFormatError document; None for any other exception,
    which the worker turns into a 500."""
    if isinstance(error, Answered):
        return error.status, error.body, error.content_type
    if isinstance(error, UnsupportedFormat):
        return error.status, error_document(error), JSON
    return None


def transform_of(module: ModuleType) -> Callable[..., Any] | None:
    """The module's transform_fn, refused beside input_fn, predict_fn or output_fn as the toolkit
    refuses it when it loads the module."""
    transform = getattr(module, "transform_fn", None)
    if transform is not None and any(getattr(module, name, None) for name in HANDLERS):
        raise ValueError(TRANSFORM_WITH_HANDLERS)
    return transform


def default_input_fn(content: bytes | str, content_type: str) -> Any:
    array = _decode(content, content_type)
    import numpy as np

    return array.astype(np.float32) if content_type in UTF8_TYPES else array


def default_predict_fn(data: Any, model: Any) -> Any:
    return model.predict(data)


def default_output_fn(prediction: Any, accept: str) -> tuple[bytes | str, str]:
    if accept == JSON:
        return json.dumps(prediction, default=_listed), accept
    if accept == CSV:
        return _csv(prediction), accept
    if accept == NPY:
        import numpy as np

        buffer = io.BytesIO()
        np.save(buffer, prediction)
        return buffer.getvalue(), accept
    raise UnsupportedFormat(accept, 406)


def _decode(content: bytes | str, content_type: str) -> Any:
    import numpy as np

    if content_type == JSON:
        return np.array(json.loads(content))
    if content_type == CSV:
        text = content if isinstance(content, str) else content.decode("utf-8", "replace")
        reader = csv.reader(io.StringIO(text), delimiter=",", quotechar='"', doublequote=True, strict=True)
        array = np.array(list(reader)).squeeze()
        try:
            return array.astype(None)  # numbers where every field is one, as the toolkit's decoder
        except ValueError:
            return array
    if content_type == NPY:
        raw = content if isinstance(content, bytes) else content.encode()
        return np.load(io.BytesIO(raw), allow_pickle=False)
    raise UnsupportedFormat(content_type, 415)


def _listed(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _csv(prediction: Any) -> str:
    import numpy as np

    array = np.array(prediction)
    if array.ndim == 1:
        array = array.reshape(array.shape[0], 1)
    stream = io.StringIO()
    csv.writer(stream, lineterminator="\n", delimiter=",", quotechar='"', doublequote=True,
               strict=True).writerows(array)
    return stream.getvalue()

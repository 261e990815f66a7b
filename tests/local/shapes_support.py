"""Requests made from the service models: a valid value for any shape, valid values drawn at
random, and values that break it in one named way each; and a sender that puts a request on the
wire each protocol uses."""

from __future__ import annotations

import base64
import json
import random
import string
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from botocore.model import OperationModel, Shape

from pipelines.local.api.protocol import Dispatcher
from pipelines.local.api.reply import Reply
from pipelines.local.contract.models import operation_model
from pipelines.local.contract.shapes import validate
from pipelines.local.service.backend import MODELS, OPERATIONS

from .inprocess import HTTPHeaders

RUNTIME = "Runtime"  # InvokeEndpoint, the one SageMaker Runtime operation served
# Strings tried in turn for a member with a pattern: the first that fits is its sample.
CANDIDATES = (
    "a",
    "a1",
    "local-1",
    "s3://bucket/key",
    "arn:aws:iam::000000000000:role/local",
    "arn:aws:sagemaker:us-east-1:000000000000:pipeline/p/execution/e",
    "arn:aws:sagemaker:us-east-1:000000000000:pipeline/p",
    "arn:aws:sagemaker:us-east-1:000000000000:model-package/g/1",
    "arn:aws:lambda:us-east-1:000000000000:function:f",
    "application/json",
    "123456789012",
)
# Strings tried in turn to break a member's pattern (padded to its minimum length).
OFF_PATTERN = ("!", " ", "a b", "../x", "-a")
# Characters a random string is drawn from: those names, ARNs, paths and wildcards are made of.
NOISE = string.ascii_letters + string.digits + "-_/:.*"


def served() -> list[tuple[str, str]]:
    """(group, operation) of everything the server answers in JSON; S3's reads, which answer in XML
    and refuse in S3's own codes, have tests of their own (test_s3.py)."""
    found = [
        (group, name) for group, names in OPERATIONS.items() if group != "S3" for name in sorted(names)
    ]
    return [*found, (RUNTIME, "InvokeEndpoint")]


def model(group: str, name: str) -> OperationModel:
    return operation_model(MODELS.get(group, "sagemaker-runtime"), name)


def with_tokens(group: str, name: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """The request with its idempotency tokens filled in, as the SDKs do."""
    shape = model(group, name).input_shape
    tokens = {m: uuid.uuid4().hex for m, s in shape.members.items() if s.metadata.get("idempotencyToken")}
    return {**tokens, **request}


def sample(shape: Shape) -> Any:
    """A valid value of `shape`: required members only, minimal sizes."""
    kind = shape.type_name
    low = shape.metadata.get("min", 0)
    if kind == "structure":
        return {name: sample(shape.members[name]) for name in shape.required_members}
    if kind == "list":
        return [sample(shape.member) for _ in range(max(1, low))]
    if kind == "map":
        return {sample(shape.key): sample(shape.value)} if low else {}
    if kind in ("integer", "long"):
        return low or 1
    if kind in ("float", "double"):
        return float(low or 1)
    if kind == "boolean":
        return True
    if kind == "timestamp":
        return 1_700_000_000
    if kind == "blob":
        return base64.b64encode(b"x" * max(1, low)).decode()
    if getattr(shape, "enum", None):
        return shape.enum[0]
    found = _first_fitting(shape, CANDIDATES)
    if found is None:
        raise LookupError(f"no sample string for {shape.name} {shape.metadata}: add one to CANDIDATES")
    return found


def _first_fitting(shape: Shape, candidates: Iterable[str]) -> str | None:
    """The first candidate that fits the string shape, repeated up to its minimum length."""
    low = shape.metadata.get("min", 0)
    for candidate in candidates:
        value = candidate * max(1, -(-low // len(candidate))) if candidate else candidate
        if not validate(shape, value):
            return value
    return None


def base_request(operation: OperationModel, known: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The required members, from `known` where it names them, else sampled."""
    shape = operation.input_shape
    return {
        name: (known or {}).get(name, sample(shape.members[name])) for name in shape.required_members
    }


def random_value(
    shape: Shape, rng: random.Random, known: Mapping[str, Any], presence: float = 0.5, depth: int = 0
) -> Any:
    """A value `validate` accepts, drawn at random, or None where no string at hand fits the shape.
    Each optional member is sent with probability `presence` (to a depth of four) and left out where
    it gets no value; a structure gets none where a member it requires gets none. Lists and maps
    have random sizes, numbers sit at and between their bounds, and a member the world knows (a
    name, an ARN) mostly names its resource."""
    kind = shape.type_name
    low, high = shape.metadata.get("min", 0), shape.metadata.get("max")
    if kind == "structure":
        drawn = {
            name: _known_or_random(name, member, rng, known, presence, depth + 1)
            for name, member in shape.members.items()
            if name in shape.required_members or (depth < 4 and rng.random() < presence)
        }
        missing = [name for name in shape.required_members if drawn[name] is None]
        if missing and depth > 0:
            return None
        drawn.update({name: sample(shape.members[name]) for name in missing})  # the request's own
        return {name: value for name, value in drawn.items() if value is not None}
    if kind == "list":
        count = low if depth >= 4 else rng.randint(low, max(low, min(high or 3, 3)))
        items = [random_value(shape.member, rng, known, presence, depth + 1) for _ in range(count)]
        items = [item for item in items if item is not None]
        return items if len(items) >= low else None
    if kind == "map":
        keys = {random_value(shape.key, rng, known) for _ in range(rng.randint(low, max(low, 2)))}
        drawn = {key: random_value(shape.value, rng, known, presence, depth + 1) for key in keys - {None}}
        found = {key: value for key, value in drawn.items() if value is not None}
        return found if len(found) >= low else None
    if kind in ("integer", "long"):
        floor = low if "min" in shape.metadata else -5
        ceiling = high if high is not None else 10**6
        return rng.choice([floor, ceiling, rng.randint(floor, min(ceiling, floor + 100))])
    if kind in ("float", "double"):
        return rng.uniform(float(low), float(high if high is not None else 1e6))
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "timestamp":
        return rng.choice([0, 1_700_000_000, 1_700_000_000.5, 4_000_000_000])
    if kind == "blob":
        return base64.b64encode(rng.randbytes(rng.randint(max(1, low), 20))).decode()
    if getattr(shape, "enum", None):
        return rng.choice(shape.enum)
    return _random_string(shape, rng, [value for value in known.values() if isinstance(value, str)])


def _known_or_random(
    name: str, shape: Shape, rng: random.Random, known: Mapping[str, Any], presence: float, depth: int
) -> Any:
    if name in known and not validate(shape, known[name]) and rng.random() < 0.7:
        return known[name]
    return random_value(shape, rng, known, presence, depth)


def _random_string(shape: Shape, rng: random.Random, known: list[str]) -> str | None:
    """A known name or ARN, a sample string or random characters: the first, in a random order,
    that fits the shape (repeated up to its minimum length); None if none does."""
    low, high = shape.metadata.get("min", 0), shape.metadata.get("max", 80)
    noise = "".join(rng.choices(NOISE, k=rng.randint(max(1, low), max(1, min(high, 80)))))
    candidates = [*CANDIDATES, *known, noise]
    return _first_fitting(shape, rng.sample(candidates, k=len(candidates)))


@dataclass(frozen=True)
class Invalid:
    """A request with one thing wrong, and the member path the refusal must name."""

    why: str
    request: dict[str, Any]
    names: str


def lower(name: str) -> str:
    return name[:1].lower() + name[1:]


def _wrong_type(shape: Shape) -> Any:
    return "x" if shape.type_name != "string" else 123


def _off_pattern(shape: Shape) -> str | None:
    pattern = shape.metadata.get("pattern")
    if pattern is None:
        return None
    low = shape.metadata.get("min", 0)
    for candidate in OFF_PATTERN:
        value = candidate + "!" * max(0, low - len(candidate))
        errors = validate(shape, value)
        if errors and all("regular expression" in error for error in errors):
            return value
    return None  # the pattern accepts anything of a valid length (e.g. `.*`)


def invalid_requests(group: str, operation: OperationModel) -> Iterator[Invalid]:
    """Each way of breaking the request that the input shape defines, one at a time."""
    shape = operation.input_shape
    base = base_request(operation)
    payload = shape.serialization.get("payload")
    on_wire = {  # REST members in the URI, headers or payload are strings or bytes by construction
        name for name, member in shape.members.items() if member.serialization.get("location")
    } | {payload}
    if payload is None:  # a REST payload has no room for members the model does not define
        yield Invalid("unknown member", {**base, "NotAMember": 1}, "notAMember")
    for name, member in shape.members.items():
        if member.serialization.get("location") == "uri":
            continue  # without it, or off its pattern, the path routes nowhere
        path = lower(name)
        if name in shape.required_members and name not in on_wire:
            yield Invalid(f"{name} missing", {k: v for k, v in base.items() if k != name}, path)
        if name not in on_wire:
            yield Invalid(f"{name} of the wrong type", {**base, name: _wrong_type(member)}, path)
        low, high = member.metadata.get("min"), member.metadata.get("max")
        if member.type_name in ("integer", "long"):
            if low is not None:
                yield Invalid(f"{name} below its minimum", {**base, name: low - 1}, path)
            if high is not None:
                yield Invalid(f"{name} above its maximum", {**base, name: high + 1}, path)
        if member.type_name == "string" and not getattr(member, "enum", None):
            if high is not None and high <= 2**20:
                yield Invalid(f"{name} too long", {**base, name: "a" * (high + 1)}, path)
            if low:
                yield Invalid(f"{name} too short", {**base, name: "a" * (low - 1)}, path)
            off = _off_pattern(member)
            if off is not None:
                yield Invalid(f"{name} off its pattern", {**base, name: off}, path)
        if getattr(member, "enum", None):
            yield Invalid(f"{name} outside its enum", {**base, name: "NotInTheEnum"}, path)
        if member.type_name == "structure":
            nested = {"NotAMember": 1}
            yield Invalid(f"{name} with an unknown member", {**base, name: nested}, f"{path}.notAMember")


def send(dispatcher: Dispatcher, group: str, name: str, request: Mapping[str, Any]) -> Reply:
    """The request as its protocol carries it: a JSON 1.1 body, or (Lambda, the runtime) REST's
    URI, headers and a JSON body or raw payload, as the model places each member."""
    if group in ("SageMaker", "AWSEvents", "Logs_20140328"):
        return dispatcher.json_api(f"{group}.{name}", json.dumps(request).encode())
    operation = model(group, name)
    path = operation.http["requestUri"]
    headers: dict[str, str] = {}
    query: dict[str, str] = {}
    members = dict(request)
    payload = operation.input_shape.serialization.get("payload")
    for member_name, member in operation.input_shape.members.items():
        where = member.serialization.get("location")
        if member_name in members and where == "uri":
            path = path.replace("{" + member_name + "}", quote(str(members.pop(member_name)), safe=""))
        elif member_name in members and where == "header":
            headers[member.serialization["name"]] = str(members.pop(member_name))
        elif member_name in members and where == "querystring":
            query[member.serialization["name"]] = str(members.pop(member_name))
    if payload is not None:
        value = members.pop(payload, b"")
        body = value if isinstance(value, bytes) else base64.b64decode(value)
    else:
        body = json.dumps(members).encode() if members else b""
    target = f"{path}?{urlencode(query)}" if query else path
    return dispatcher.route(operation.http["method"], target, HTTPHeaders(headers), body)

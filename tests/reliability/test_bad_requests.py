"""Malformed requests, property-based: thousands of them against a model server of our own and
against a live local endpoint through the runtime API (`POST /endpoints/<name>/invocations`).

Every generated request carries the statuses the serving contract (docs/contracts.md,
inference.py) allows for it. What must hold for all of them:
- never a 5xx;
- a 4xx always has a JSON body with an error message; through the runtime a model's 4xx arrives as
  SageMaker's ModelError (424 with OriginalStatusCode / OriginalMessage), whose original status
  must be a 4xx the contract allows;
- the valid requests mixed in get 200 with one prediction per review;
- the server still answers afterwards.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .support import (
    ENDPOINT,
    Local,
    ModelServer,
    Response,
    parse_raw,
    raw_exchange,
    train_model,
    wait_until,
)
from .support import request as http_request

JSON = "application/json"
JSONL = "application/jsonlines"
CSV = "text/csv"
SUPPORTED = (JSON, JSONL, CSV)
TEXT_TYPES = (JSON, CSV)  # what the serving toolkit decodes to text before the handler sees it
MAX_CHARS = 20_000
MAX_REVIEWS = 10_000
MAX_PAYLOAD = 6 * 1024 * 1024
TEXT_KEYS = ("review_text", "text")
DIRECT_EXAMPLES = 900
RUNTIME_EXAMPLES = 800
BATCH_EXAMPLES = 25
BASE_SETTINGS = settings(
    deadline=None,
    database=None,  # nothing written into the repository (.hypothesis/)
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


@dataclass(frozen=True)
class Req:
    """One generated request and what the contract allows the model server to answer."""

    kind: str
    body: bytes
    content_type: str | None
    accept: str | None = None
    expect: frozenset[int] = frozenset({400})
    reviews: int = 0  # predictions in a 200 answer
    answer: str = JSON  # media type of a 200 answer
    endpoint: str = ENDPOINT  # the runtime only
    notes: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def valid(self) -> bool:
        return 200 in self.expect

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.content_type is not None:
            headers["Content-Type"] = self.content_type
        if self.accept is not None:
            headers["Accept"] = self.accept
        return headers


# --- building blocks ---------------------------------------------------------------------------

WORDS = [
    "great",
    "value",
    "broke",
    "after",
    "two",
    "days",
    "love",
    "it",
    "awful",
    "fine",
    "works",
    "perfectly",
    "refund",
    "never",
    "again",
    "Café",
    "naïve",
    "日本語",
    "größe",
]
# Unicode that has tripped up text pipelines: direction marks and overrides, NUL and other
# controls, emoji with joiners and modifiers, combining marks, BOM / zero-width characters,
# non-BMP code points, the last code points before and after the surrogate block.
SPECIAL = [
    "\u200f",  # right-to-left mark
    "\u200e",  # left-to-right mark
    "\u202e",  # right-to-left override
    "\u2066",  # left-to-right isolate
    "\u0000",  # NUL
    "\u0007",  # BEL
    "\u001b",  # ESC
    "\U0001f600",  # grinning face
    "\U0001f469\u200d\U0001f469\u200d\U0001f467",  # family: joiner sequence
    "\U0001f44d\U0001f3fd",  # thumbs up with a skin tone modifier
    "\U0001f3f3\ufe0f\u200d\U0001f308",  # rainbow flag
    "e\u0301",  # e + combining acute
    "\u0301\u0301",  # combining marks with nothing to combine with
    "Z\u0364\u0351\u0313",  # stacked combining marks
    "\ufeff",  # BOM / zero-width no-break space
    "\u200b",  # zero-width space
    "\u2060",  # word joiner
    "\u0645\u0631\u062d\u0628\u0627",  # Arabic
    "\u05e9\u05dc\u05d5\u05dd",  # Hebrew
    "\U0001d518\U0001d52b\U0001d526",  # mathematical fraktur letters
    "\U0010ffff",  # the last code point
    "\ud7ff",  # just below the surrogates
    "\ue000",  # just above them (private use)
    "\uffff",  # a noncharacter
    "\u00a0",  # no-break space
    "\ufdfa",  # one code point, a long ligature
    "\ufdfd",  # the widest glyph
]

safe_chars = st.characters(exclude_categories=["Cs"])


@st.composite
def review_texts(draw: st.DrawFn) -> str:
    """A valid review: non-blank, within the length limit, often with awkward Unicode."""
    parts = draw(
        st.lists(
            st.one_of(st.sampled_from(WORDS), st.sampled_from(SPECIAL), st.text(safe_chars, max_size=12)),
            min_size=1,
            max_size=8,
        )
    )
    text = " ".join(parts)
    if not text.strip():
        text = "ok" + text
    return text


def media(kind: str, draw: st.DrawFn) -> str:
    """The media type spelled as clients do: any case, sometimes with parameters."""
    spelled = draw(st.sampled_from([kind, kind.upper(), kind.title()]))
    suffix = draw(st.sampled_from(["", "; charset=utf-8", ";charset=UTF-8", " ; q=1"]))
    return spelled + suffix


GOOD_ACCEPTS = [
    (None, JSON),
    (JSON, JSON),
    ("*/*", JSON),
    ("application/*", JSON),
    (JSONL, JSONL),
    ("text/html, application/jsonlines", JSONL),
    ("application/json; q=0.9", JSON),
    ("Application/JSON", JSON),
    ("image/png, */*", JSON),
]


def json_item(text: str, style: int) -> Any:
    return [text, {"review_text": text}, {"text": text}][style]


def encode_json(document: Any, ascii_only: bool) -> bytes:
    return json.dumps(document, ensure_ascii=ascii_only).encode("utf-8")


def encode_csv(rows: list[str], header: bool, terminator: str, quote_all: bool = False) -> bytes:
    """One review per row. csv.writer only quotes the characters of its own line terminator, so a
    review holding a bare CR (a row break to csv readers) is always written quoted."""
    buffer = io.StringIO()
    quote_all = quote_all or any("\r" in row or "\n" in row for row in rows)
    writer = csv.writer(
        buffer, lineterminator=terminator, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL
    )
    if header:
        writer.writerow(["review_text"])
    writer.writerows([[row] for row in rows])
    return buffer.getvalue().encode("utf-8")


@st.composite
def valid_bodies(draw: st.DrawFn, kinds: tuple[str, ...] = SUPPORTED) -> tuple[str, bytes, int]:
    """(media type, body, number of reviews) of a valid request in one of kinds."""
    texts = review_texts()
    kind = draw(st.sampled_from(kinds))
    if kind == JSON:
        items = draw(st.lists(texts, min_size=1, max_size=6))
        styles = [draw(st.integers(0, 2)) for _ in items]
        wrapped = [json_item(t, s) for t, s in zip(items, styles, strict=True)]
        shape = (
            draw(st.sampled_from(["single", "list", "instances"]))
            if len(items) == 1
            else (draw(st.sampled_from(["list", "instances"])))
        )
        document = (
            wrapped[0] if shape == "single" else (wrapped if shape == "list" else {"instances": wrapped})
        )
        return kind, encode_json(document, draw(st.booleans())), len(items)
    if kind == JSONL:
        items = draw(st.lists(texts, min_size=1, max_size=6))
        # ensure_ascii: raw U+2028 and friends in a line are a known bug (see test below)
        lines = [json.dumps(json_item(t, draw(st.integers(0, 2)))) for t in items]
        separator = draw(st.sampled_from(["\n", "\r\n", "\n\n", "\n  \n"]))
        body = separator.join(lines) + draw(st.sampled_from(["", "\n", "\r\n"]))
        return kind, body.encode("utf-8"), len(items)
    items = draw(
        st.lists(
            texts.filter(lambda t: t != "review_text" and not t.startswith("\ufeff")),
            min_size=1,
            max_size=6,
        )
    )
    rows = encode_csv(items, draw(st.booleans()), draw(st.sampled_from(["\n", "\r\n"])), draw(st.booleans()))
    return kind, rows, len(items)


# --- strategies: valid, and each family of malformed request -----------------------------------


@st.composite
def valid_requests(draw: st.DrawFn) -> Req:
    kind, body, count = draw(valid_bodies())
    accept, answer = draw(st.sampled_from(GOOD_ACCEPTS))
    return Req("valid", body, media(kind, draw), accept, frozenset({200}), count, answer)


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return True
    except (ValueError, RecursionError):  # known 500s, tested on their own below
        return False
    return False


@st.composite
def bad_json(draw: st.DrawFn) -> Req:
    """Text that is not JSON: random text, or a valid document cut short or with junk inside."""
    _, good, _ = draw(valid_bodies((JSON,)))
    text = good.decode("utf-8")
    choice = draw(st.integers(0, 3))
    if choice == 0:
        broken = draw(st.text(safe_chars, min_size=1, max_size=80))
    elif choice == 1:
        broken = text[: draw(st.integers(0, max(0, len(text) - 1)))]
    elif choice == 2:
        at = draw(st.integers(0, len(text)))
        broken = text[:at] + draw(st.sampled_from(["{", "]", ",", "'", '"', "\\", ":", "}{"])) + text[at:]
    else:
        broken = draw(
            st.sampled_from(
                [
                    "{'review_text': 'single quotes'}",
                    '{"review_text": "x",}',
                    "[1, 2,]",
                    "undefined",
                    "{review_text: 1}",
                    '"\\x41"',
                    '"tab\\tok" "two"',
                    "01",
                    "--1",
                    "[",
                    '"\\ud83d',
                    "nul",
                ]
            )
        )
    broken = draw(st.just(broken).filter(_not_json))
    if draw(st.booleans()):  # the same mistakes one per line in JSON Lines
        line = draw(st.just(broken).filter(lambda b: b.strip() and len(b.splitlines()) == 1))
        return Req("bad-jsonlines", f'"fine"\n{line}\n'.encode(), media(JSONL, draw))
    return Req("bad-json", broken.encode("utf-8"), media(JSON, draw))


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**40), 10**40),
    st.floats(allow_nan=True, allow_infinity=True),
)
json_values = st.recursive(
    json_scalars | st.text(safe_chars, max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
non_strings = st.one_of(
    json_scalars,
    st.lists(json_values, max_size=3),
    st.dictionaries(st.text(max_size=6), json_values, max_size=3),
)
keys_without_text = st.text(max_size=12).filter(lambda k: k not in (*TEXT_KEYS, "instances"))
objects_without_text = st.dictionaries(keys_without_text, json_values, max_size=4)
blank = st.sampled_from(["", " ", "\t\n", "\u2003", "\u3000 \u2028", "\r\n"])


@st.composite
def bad_items(draw: st.DrawFn) -> Any:
    """One list element that is not a review."""
    return draw(
        st.one_of(
            json_scalars,
            st.lists(json_values, max_size=3),  # nested list
            objects_without_text,
            st.builds(lambda k, v: {k: v}, st.sampled_from(TEXT_KEYS), non_strings),
            st.builds(lambda k, v: {k: v}, st.sampled_from(TEXT_KEYS), blank),
            blank,
        )
    )


@st.composite
def wrong_types(draw: st.DrawFn) -> Req:
    """Valid JSON of the wrong shape: numbers, nulls, nested lists, objects without review_text,
    non-string or blank reviews, empty batches."""
    good = draw(st.lists(review_texts(), max_size=4))
    bad = draw(bad_items())
    at = draw(st.integers(0, len(good)))
    batch = [*good[:at], bad, *good[at:]]
    document = draw(
        st.one_of(
            json_scalars,
            objects_without_text,
            st.just(batch),
            st.just({"instances": batch}),
            st.builds(
                lambda v: {"instances": v}, st.one_of(json_scalars, objects_without_text, st.text(max_size=5))
            ),
            st.just([]),
            st.just({"instances": []}),
            st.builds(lambda k, v: {k: v}, st.sampled_from(TEXT_KEYS), non_strings),
            blank,
        )
    )
    if draw(st.integers(0, 3)) == 0:
        lines = [json.dumps(x) for x in good]
        lines.insert(at, json.dumps(bad))
        return Req("wrong-type-jsonlines", "\n".join(lines).encode(), media(JSONL, draw))
    return Req("wrong-type", json.dumps(document).encode(), media(JSON, draw))


@st.composite
def empty_bodies(draw: st.DrawFn) -> Req:
    body = draw(st.sampled_from([b"", b" ", b"\n\n", b"\t \r\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf \n"]))
    kind = draw(st.sampled_from(SUPPORTED))
    if kind == CSV and draw(st.booleans()):
        body = draw(st.sampled_from([b"review_text\n", b"review_text\r\n\r\n"]))  # header only
    return Req("empty", body, media(kind, draw))


UNSUPPORTED_TYPES = [
    "text/plain",
    "application/xml",
    "text/xml",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "application/octet-stream",
    "image/png",
    "text/json",
    "application/jsonl",
    "application/x-ndjson",
    "application/json-seq",
    "json",
    "text/html",
    "application/x-amz-json-1.1",
    "text/tab-separated-values",
]


@st.composite
def wrong_content_types(draw: st.DrawFn) -> Req:
    _, body, _ = draw(valid_bodies())
    content_type = draw(
        st.one_of(
            st.sampled_from(UNSUPPORTED_TYPES),
            st.from_regex(r"[a-z]{1,12}/[a-z0-9.+-]{1,20}(; ?[a-z]{1,8}=[a-z0-9-]{1,8})?", fullmatch=True),
        ).filter(lambda t: t.split(";")[0].strip().lower() not in SUPPORTED)
    )
    return Req("content-type", body, content_type, None, frozenset({415}))


BAD_ACCEPTS = [
    "text/html",
    "application/xml",
    "text/csv",
    "text/plain",
    "image/png",
    "application/x-ndjson",
    "application/json-seq",
    "text/html; q=0.9",
    "application/xml, text/plain",
    "video/*",
]


@st.composite
def wrong_accepts(draw: st.DrawFn) -> Req:
    kind, body, _ = draw(valid_bodies())
    accept = draw(
        st.one_of(
            st.sampled_from(BAD_ACCEPTS),
            st.from_regex(r"[a-z]{1,10}/[a-z0-9.+-]{1,16}", fullmatch=True),
        ).filter(
            lambda a: all(
                e.split(";")[0].strip().lower() not in ("", "*/*", "application/*", JSON, JSONL)
                for e in a.split(",")
            )
        )
    )
    return Req("accept", body, media(kind, draw), accept, frozenset({406}))


INVALID_UTF8 = [
    b"\xff",
    b"\xfe",
    b"\xc3\x28",
    b"\xa0\xa1",
    b"\xe2\x28\xa1",
    b"\xf0\x28\x8c\xbc",
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xc0\xaf",
    b"\xf8\x88\x80\x80\x80",
    b"\x80",
    b"\xf4\x90\x80\x80",
]


@st.composite
def unicode_requests(draw: st.DrawFn) -> Req:
    """Bytes that are not UTF-8 (400), raw control characters inside JSON strings (400), and
    lone surrogates written as JSON escapes (a JSON error or an answer: never a 5xx)."""
    choice = draw(st.integers(0, 2))
    if choice == 0:
        kind, body, _ = draw(valid_bodies())
        junk = draw(st.sampled_from(INVALID_UTF8))
        text = body.decode("utf-8")
        at = draw(st.integers(0, len(text)))
        spliced = text[:at].encode() + junk + text[at:].encode()
        spelled = media(kind, draw)
        if spelled in TEXT_TYPES:  # handed over as text already, invalid bytes replaced (edge cases below)
            spelled += "; charset=utf-8"
        return Req("invalid-utf8", spliced, spelled)
    if choice == 1:
        control = draw(st.sampled_from(["\x00", "\x01", "\x08", "\x0b", "\x1f", "\n", "\t"]))
        text = draw(review_texts())
        at = draw(st.integers(0, len(text)))
        body = ('{"review_text": "' + json.dumps(text)[1:-1][:at] + control + '"}').encode()
        return Req("raw-control", body, media(JSON, draw))
    escape = draw(st.sampled_from(["\\ud800", "\\udfff", "\\udc00\\ud800", "\\ud83d", "\\ude00x"]))
    text = json.dumps(draw(review_texts()))[1:-1]
    at = draw(st.integers(0, len(text)))
    while at and text[at - 1] == "\\":  # never split an escape sequence
        at -= 1
    body = ('["' + text[:at] + escape + text[at:] + '"]').encode()
    return Req("lone-surrogate", body, media(JSON, draw), None, frozenset({200, 400}), 1)


@st.composite
def too_long_reviews(draw: st.DrawFn) -> Req:
    """A review over 20,000 characters (400); exactly 20,000 is fine (200)."""
    char = draw(st.sampled_from(["a", "é", "😀", "e\u0301", "日", " x"]))
    exact = draw(st.booleans())
    length = MAX_CHARS if exact else draw(st.integers(MAX_CHARS + 1, 3 * MAX_CHARS))
    text = (char * (length // len(char) + 1))[:length]
    if not exact:
        text = text[: length - 1] + "z"  # len == length, never ending in a blank
    kind = draw(st.sampled_from(SUPPORTED))
    batch = [*draw(st.lists(review_texts(), max_size=2)), text]
    if kind == JSON:
        body = json.dumps(batch).encode()
    elif kind == JSONL:
        body = "\n".join(json.dumps(t) for t in batch).encode()
    else:
        batch = [t for t in batch if t != "review_text" and not t.startswith("\ufeff")]
        body = encode_csv(batch, True, "\n")
    expect = frozenset({200}) if exact else frozenset({400})
    return Req("too-long" if not exact else "longest", body, media(kind, draw), None, expect, len(batch))


@st.composite
def malformed_csv(draw: st.DrawFn) -> Req:
    text = draw(review_texts().filter(lambda t: '"' not in t))
    prefix = draw(st.sampled_from(["", "review_text\n", "fine\n"]))
    body = (prefix + '"' + text + draw(st.sampled_from(["", "\n", "\nmore,rows\n"]))).encode()
    return Req("malformed-csv", body, media(CSV, draw))


MALFORMED = (
    bad_json(),
    wrong_types(),
    empty_bodies(),
    wrong_content_types(),
    wrong_accepts(),
    unicode_requests(),
    too_long_reviews(),
    malformed_csv(),
)


def mixed_requests() -> st.SearchStrategy[Req]:
    """About one valid request for every eight malformed ones."""
    return st.one_of(*MALFORMED, valid_requests())


@st.composite
def unknown_endpoints(draw: st.DrawFn) -> Req:
    name = draw(
        st.from_regex(r"[a-zA-Z0-9](-?[a-zA-Z0-9]){0,40}", fullmatch=True).filter(lambda n: n != ENDPOINT)
    )
    kind, body, count = draw(valid_bodies())
    return Req("unknown-endpoint", body, kind, None, frozenset({400}), count, endpoint=name)


def runtime_requests() -> st.SearchStrategy[Req]:
    return st.one_of(*MALFORMED, valid_requests(), unknown_endpoints())


@st.composite
def huge_batches(draw: st.DrawFn) -> Req:
    count = draw(st.integers(MAX_REVIEWS + 1, MAX_REVIEWS + 2_000))
    kind = draw(st.sampled_from([JSON, "instances", JSONL, CSV]))
    texts = ["ok"] * count
    if kind == JSON:
        body = json.dumps(texts).encode()
    elif kind == "instances":
        body = json.dumps({"instances": [{"review_text": t} for t in texts]}).encode()
    elif kind == JSONL:
        body = "\n".join(json.dumps(t) for t in texts).encode()
    else:
        body = encode_csv(texts, draw(st.booleans()), "\n")
    content_type = JSON if kind == "instances" else kind
    return Req("huge-batch", body, content_type, None, frozenset({413}))


# --- checks ------------------------------------------------------------------------------------


def check_answer(req: Req, status: int, response: Response) -> None:
    """A 200 carries one prediction per review in the negotiated format."""
    assert status == 200
    assert response.headers.get("content-type", "").startswith(req.answer), response.headers
    if req.answer == JSONL:
        predictions = [json.loads(line) for line in response.body.decode().splitlines()]
    else:
        predictions = response.json()["predictions"]
    assert len(predictions) == req.reviews, (req.reviews, predictions)
    for prediction in predictions:
        assert prediction["label"] in (0, 1) and 0.0 <= prediction["score"] <= 1.0


def error_message(body: bytes, key: str) -> str:
    document = json.loads(body)
    assert isinstance(document, dict), document
    message = document.get(key)
    assert isinstance(message, str) and message.strip(), document
    return message


def check_direct(req: Req, response: Response) -> None:
    """The model server's answer to req (the container contract)."""
    assert response.status < 500, (req.kind, response.status, response.body[:500])
    assert response.status in req.expect, (req.kind, req.expect, response.status, response.body[:500])
    if response.status == 200:
        check_answer(req, 200, response)
        return
    assert response.headers.get("content-type", "").startswith(JSON), response.headers
    error_message(response.body, "error")


def check_runtime(req: Req, response: Response) -> None:
    """The runtime's answer: a model's 4xx comes back as ModelError (424) holding it."""
    assert response.status < 500, (req.kind, response.status, response.body[:500])
    if req.endpoint != ENDPOINT:
        assert response.status == 400, response.status
        error_message(response.body, "message")
        return
    if response.status == 200:
        assert 200 in req.expect, (req.kind, response.body[:300])
        check_answer(req, 200, response)
        return
    error_message(response.body, "message")
    assert response.status == 424, (req.kind, response.status, response.body[:500])
    document = json.loads(response.body)
    assert document["__type"] == "ModelError"
    original = document["OriginalStatusCode"]
    assert 400 <= original < 500, (req.kind, original, document["OriginalMessage"][:500])
    assert original in req.expect, (req.kind, req.expect, original)
    error_message(document["OriginalMessage"].encode(), "error")


def send_direct(server: ModelServer, req: Req) -> Response:
    return http_request(server.port, "POST", "/invocations", req.body, req.headers())


def send_runtime(local: Local, req: Req) -> Response:
    return local.post(f"/endpoints/{req.endpoint}/invocations", req.body, req.headers())


# --- a model server of our own ------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    root = tmp_path_factory.mktemp("model-server")
    model_dir = train_model(root / "model", root / "work")
    server = ModelServer(model_dir, root / "server.log")
    try:
        yield server
    finally:
        server.stop()


def run_property(
    strategy: st.SearchStrategy[Req], examples: int, send: Callable[[Req], None]
) -> dict[str, int]:
    """Drive `examples` generated requests through send; count them by kind."""
    counts: dict[str, int] = {}

    @settings(BASE_SETTINGS, max_examples=examples)
    @given(strategy)
    def check(req: Req) -> None:
        counts[req.kind] = counts.get(req.kind, 0) + 1
        send(req)

    check()
    print(f"requests sent by kind: {dict(sorted(counts.items()))}")
    return counts


def malformed_total(counts: dict[str, int]) -> int:
    return sum(n for kind, n in counts.items() if kind not in ("valid", "longest"))


def test_model_server_answers_malformed_requests_with_json_4xx_and_valid_ones_with_200(
    model_server: ModelServer,
) -> None:
    counts = run_property(
        mixed_requests(), DIRECT_EXAMPLES, lambda req: check_direct(req, send_direct(model_server, req))
    )
    assert malformed_total(counts) >= 600, counts
    assert counts.get("valid", 0) >= 30, counts
    assert http_request(model_server.port, "GET", "/ping").status == 200
    assert model_server.process.poll() is None


def test_model_server_refuses_huge_batches_with_413(model_server: ModelServer) -> None:
    counts = run_property(
        huge_batches(), BATCH_EXAMPLES, lambda req: check_direct(req, send_direct(model_server, req))
    )
    assert counts["huge-batch"] >= 10
    assert http_request(model_server.port, "GET", "/ping").status == 200


def test_model_server_declared_body_over_6_mb_gets_413_json(model_server: ModelServer) -> None:
    """The limit is judged from Content-Length alone, before any body is read."""
    head = (
        f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: {JSON}\r\n"
        f"Content-Length: {MAX_PAYLOAD + 1}\r\n\r\n"
    ).encode()
    response = parse_raw(raw_exchange(model_server.port, head))
    assert response.status == 413
    assert "6291456" in error_message(response.body, "error")
    assert http_request(model_server.port, "GET", "/ping").status == 200


def test_model_server_body_over_6_mb_sent_in_full_gets_413(model_server: ModelServer) -> None:
    body = b'"' + b"a" * MAX_PAYLOAD + b'"'
    try:
        response = http_request(model_server.port, "POST", "/invocations", body, {"Content-Type": JSON})
    except (ConnectionError, http.client.HTTPException) as error:
        pytest.fail(f"no 413, the connection failed: {error!r}")
    assert response.status == 413
    error_message(response.body, "error")


@pytest.mark.parametrize("length", ["abc", "-1", "1.5", ""])
def test_model_server_invalid_content_length_gets_a_json_400(model_server: ModelServer, length: str) -> None:
    raw = (
        f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: {JSON}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()
    response = parse_raw(raw_exchange(model_server.port, raw))
    assert response.status == 400
    error_message(response.body, "error")


# Inputs that once gave a 500 (or rejected a valid request) in steps/inference.py's parsing.
INFERENCE_EDGE_CASES = [
    pytest.param(
        b"1" * 5000,
        JSON,
        frozenset({400}),
        id="integer-over-4300-digits",
    ),
    pytest.param(
        b'{"review_text": "ok", "n": ' + b"9" * 5000 + b"}",
        JSON,
        frozenset({400}),
        id="integer-over-4300-digits-inside-object",
    ),
    pytest.param(
        b"[" * 100_000,
        JSON,
        frozenset({400}),
        id="deeply-nested-json",
    ),
    pytest.param(
        b'"fine"\n' + b"[" * 100_000,
        JSONL,
        frozenset({400}),
        id="deeply-nested-jsonlines",
    ),
    pytest.param(
        '{"review_text": "first\u2028second"}\n'.encode(),
        JSONL,
        frozenset({200}),
        id="jsonlines-raw-line-separator",
    ),
    # The serving toolkit hands a body typed exactly application/json or text/csv to the handler as
    # text, decoded with invalid bytes replaced (U+FFFD), as SageMaker's does: the review is scored.
    pytest.param(b'["great \xff product"]', JSON, frozenset({200}), id="invalid-utf8-exact-json"),
    pytest.param(b"great \xc3\x28 product\n", CSV, frozenset({200}), id="invalid-utf8-exact-csv"),
    pytest.param(b'["great \xff product"]', JSON + "; charset=utf-8", frozenset({400}),
                 id="invalid-utf8-json-with-parameters"),
]


@pytest.mark.parametrize(("body", "content_type", "expect"), INFERENCE_EDGE_CASES)
def test_model_server_inference_edge_cases(
    model_server: ModelServer, body: bytes, content_type: str, expect: frozenset[int]
) -> None:
    req = Req("edge", body, content_type, None, expect, 1)
    check_direct(req, send_direct(model_server, req))
    assert http_request(model_server.port, "GET", "/ping").status == 200


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("model-server"),
        pytest.param("runtime", marks=pytest.mark.e2e),
    ],
)
def test_header_too_long_gets_a_json_4xx(
    request: pytest.FixtureRequest, model_server: ModelServer, target: str
) -> None:
    if target == "runtime":
        port, path = request.getfixturevalue("local").port, f"/endpoints/{ENDPOINT}/invocations"
    else:
        port, path = model_server.port, "/invocations"
    raw = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {JSON}\r\n"
        f'X-Padding: {"a" * 70_000}\r\nContent-Length: 2\r\n\r\n""'
    ).encode()
    response = parse_raw(raw_exchange(port, raw))
    assert 400 <= response.status < 500
    assert response.headers.get("content-type", "").startswith("application/")
    json.loads(response.body)


# --- the runtime API of a live local endpoint ---------------------------------------------------


@pytest.fixture
def runtime_port(local: Local) -> int:
    wait_until(local.in_service, 120, "the endpoint to be InService")
    return local.port


def still_serving(local: Local, port: int) -> None:
    assert http_request(port, "GET", "/health").status == 200
    assert local.invoke("great value, works perfectly")["label"] == 1
    assert local.endpoint()["EndpointStatus"] == "InService"


@pytest.mark.e2e
def test_runtime_answers_malformed_requests_without_5xx_and_valid_ones_with_200(
    local: Local, runtime_port: int
) -> None:
    counts = run_property(
        runtime_requests(), RUNTIME_EXAMPLES, lambda req: check_runtime(req, send_runtime(local, req))
    )
    assert malformed_total(counts) >= 500, counts
    assert counts.get("valid", 0) >= 30, counts
    still_serving(local, runtime_port)


@pytest.mark.e2e
def test_runtime_refuses_huge_batches_as_model_error_413(local: Local, runtime_port: int) -> None:
    counts = run_property(
        huge_batches(), BATCH_EXAMPLES, lambda req: check_runtime(req, send_runtime(local, req))
    )
    assert counts["huge-batch"] >= 10
    still_serving(local, runtime_port)


@pytest.mark.e2e
def test_runtime_body_of_exactly_6_mb_reaches_the_model(local: Local, runtime_port: int) -> None:
    body = b'"' + b"a" * (MAX_PAYLOAD - 2) + b'"'
    req = Req("longest-body", body, JSON)
    response = send_runtime(local, req)
    check_runtime(req, response)
    assert "20000" in json.loads(response.body)["OriginalMessage"]
    still_serving(local, runtime_port)


@pytest.mark.e2e
def test_runtime_body_over_6_mb_gets_413(local: Local, runtime_port: int) -> None:
    body = b'"' + b"a" * MAX_PAYLOAD + b'"'
    response = send_runtime(local, Req("over-6mb", body, JSON))
    assert response.status == 413, (response.status, response.body[:300])
    error_message(response.body, "message")
    still_serving(local, runtime_port)


@pytest.mark.e2e
@pytest.mark.parametrize("length", ["abc", "-1", "1.5"])
def test_runtime_invalid_content_length_gets_a_json_400(local: Local, runtime_port: int, length: str) -> None:
    path = f"/endpoints/{ENDPOINT}/invocations"
    headers = local.signed("POST", path, b"", {"Content-Type": JSON})
    signed = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    raw = f"POST {path} HTTP/1.1\r\n{signed}Content-Length: {length}\r\n\r\n".encode()
    response = parse_raw(raw_exchange(runtime_port, raw, timeout=10))
    assert response.status == 400, (response.status, response.body[:300])
    assert "Content-Length" in error_message(response.body, "message")

"""The server's door: who may call the local SageMaker, decided before any operation sees a request.

A request is served only if
1. its Host header names this server (`127.0.0.1:PORT` or `localhost:PORT`): a page whose name a
   DNS rebinding points at 127.0.0.1 sends its own name and is refused;
2. it has no `Origin` header: browsers send one with every cross-origin request, including the
   `text/plain` POSTs they send without asking first, and no AWS SDK ever sends one;
3. it is signed with AWS Signature Version 4 by the state directory's credentials: in its
   Authorization header, or for S3 in its query string (a presigned URL, `X-Amz-Signature`...),
   which is good from its `X-Amz-Date` for `X-Amz-Expires` seconds (a week at most) and signs no
   payload, as S3 takes it. Those are long-term keys: a session token beside them is refused.

The first checks need headers only and run before the body is read; the signature covers the body,
so it is checked once the body is in memory and before anything acts on it. The canonical request is
botocore's own (`SigV4Auth`), given the headers the client says it signed, so the server computes
exactly what every SDK computes; for S3 it is botocore's `S3SigV4Auth` (the path as sent, not encoded
twice, and the payload hash the client declares in `x-amz-content-sha256`, which S3 requires). As S3
signs that declared hash rather than the body, an S3 PUT's signature is checked before its body is
read, and the body against the hash as it streams in (s3_body.py).
Refusals carry the codes and messages AWS answers with, and the code S3 answers with for S3's requests.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl

from botocore.auth import SIGV4_TIMESTAMP, UNSIGNED_PAYLOAD, S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials as BotoCredentials

from pipelines.local.api.rest import Headers
from pipelines.local.storage.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
ALLOWED_SKEW = timedelta(minutes=5)
# S3 takes a request up to 15 minutes off the server's clock (its RequestTimeTooSkewed answer names
# MaxAllowedSkewMilliseconds 900000; aws-sdk-php issue 612, versitygw issue 1514).
S3_ALLOWED_SKEW = timedelta(minutes=15)
S3_SKEWED = "The difference between the request time and the current time is too large."
# Headers S3 requires a signature over when sent: every x-amz-* one but the payload's hash, which is
# checked against the body instead ("There were headers present in the request which were not signed").
UNSIGNED_ALLOWED = frozenset({"x-amz-content-sha256"})
LOOPBACK_NAMES = ("127.0.0.1", "localhost")
UNKNOWN_KEY = "The security token included in the request is invalid."
S3_UNKNOWN_KEY = "The AWS Access Key Id you provided does not exist in our records."
S3_INVALID_TOKEN = "The provided token is malformed or otherwise invalid."
SECURITY_TOKEN = "X-Amz-Security-Token"
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS "
    "Secret Access Key and signing method. Consult the service documentation for details."
)
S3_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your key and "
    "signing method."
)
CONTENT_SHA256 = "X-Amz-Content-SHA256"
CONTENT_SHA256_MISMATCH = "The provided 'x-amz-content-sha256' header does not match what was computed."
# S3's refusal of a payload hash that is neither a SHA-256 nor one of its payload kinds (versitygw
# issue 1352 records it); the streamed kinds are refused later, by name (s3_body.py).
PAYLOAD_KINDS = (
    "UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER",
)
INVALID_PAYLOAD_HASH = f"x-amz-content-sha256 must be {', '.join(PAYLOAD_KINDS)} or a valid sha256 value."
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
V2_UNSUPPORTED = (
    "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
)
S3_BAD_REQUESTS = frozenset({
    "AuthorizationHeaderMalformed", "AuthorizationQueryParametersError", "InvalidArgument", "InvalidRequest",
    "InvalidToken", "XAmzContentSHA256Mismatch",
})
# A presigned URL's query parameters, all of which S3 requires, and the longest it may be good for.
QUERY_AUTH = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date", "X-Amz-SignedHeaders",
              "X-Amz-Expires")
MAX_EXPIRES = 7 * 24 * 3600


class Refusal(Exception):
    """A request the door turns away; `door` refusals are about where it came from, not its signature."""

    def __init__(
        self, code: str, message: str, door: bool = False, s3_code: str = "AccessDenied",
        s3_message: str | None = None, s3_fields: dict[str, str] | None = None,
        s3_headers: dict[str, str] | None = None,
    ) -> None:
        """`s3_fields` are what S3's XML error adds to its code and message (RequestTime, Region...),
        `s3_headers` what its answer carries (x-amz-bucket-region)."""
        super().__init__(message)
        self.code = code
        self.message = message
        self.door = door
        self.s3_code = s3_code
        self.s3_message = message if s3_message is None else s3_message
        self.s3_fields = s3_fields or {}
        self.s3_headers = s3_headers or {}

    def status(self, json_protocol: bool) -> int:
        """AWS's JSON 1.1 front answers signature errors with 400, the REST APIs (Lambda, the
        runtime) with 403; a request from a foreign Host or a web page is forbidden either way."""
        return 400 if json_protocol and not self.door else 403

    def s3_status(self) -> int:
        """S3 answers a malformed authorization with 400, anything else it refuses with 403."""
        return 400 if self.s3_code in S3_BAD_REQUESTS else 403


def _incomplete(message: str) -> Refusal:
    return Refusal("IncompleteSignatureException", message, s3_code="AuthorizationHeaderMalformed")


def _unrecognized(s3_code: str, s3_message: str) -> Refusal:
    """Credentials AWS does not know: one wording for the JSON and REST APIs, S3's own for S3."""
    return Refusal("UnrecognizedClientException", UNKNOWN_KEY, s3_code=s3_code, s3_message=s3_message)


def _invalid(message: str, s3_code: str = "AuthorizationHeaderMalformed") -> Refusal:
    return Refusal("InvalidSignatureException", message, s3_code=s3_code)


@dataclass(frozen=True)
class Claim:
    """What the Authorization header (or a presigned URL's query) says: who signed, when, for which
    scope, over which headers."""

    key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    timestamp: str  # the request's time in SigV4's form, 20240131T235959Z
    expires: int | None = None  # a presigned URL's X-Amz-Expires, in seconds; None when signed in headers


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Door:
    def __init__(
        self, credentials: Credentials, port: int, region: str, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        self.credentials = credentials
        self.hosts = frozenset(f"{name}:{port}" for name in LOOPBACK_NAMES)
        self.region = region  # the one region this server answers for, as an AWS endpoint does
        self.clock = clock

    def check_origin(self, headers: Message) -> None:
        """Host names this server and no browser sent the request (raises Refusal)."""
        hosts = headers.get_all("Host") or []
        if len(hosts) != 1 or hosts[0].strip().lower() not in self.hosts:
            shown = ", ".join(hosts) or "none"
            expected = " or ".join(sorted(self.hosts))
            raise Refusal("AccessDeniedException", f"Host {shown} is not this server ({expected})", True)
        origin = headers.get("Origin")
        if origin is not None:
            raise Refusal(
                "AccessDeniedException", f"requests from web pages are refused (Origin: {origin})", True
            )

    def check_headers(self, headers: Message, service: str | None, target: str = "") -> Claim:
        """Everything that can be judged before the body is read: the door, then who signed and when.
        `service` is the signing name the route belongs to (None when no route matches); `target`
        the request line's path and query, where a presigned URL carries its signature."""
        self.check_origin(headers)
        parameters = _query_parameters(target)
        query = _presigned(parameters)
        if query and headers.get("Authorization") is not None:
            raise Refusal(
                "IncompleteSignatureException",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query "
                "string parameter or the Authorization header should be specified",
                s3_code="InvalidArgument",
            )
        if not query and {"AWSAccessKeyId", "Signature"} <= parameters.keys():
            raise Refusal(  # Signature Version 2, which S3 no longer takes for a bucket made today
                "IncompleteSignatureException", V2_UNSUPPORTED, s3_code="InvalidRequest",
            )
        claim = parse_query_authorization(query) if query else parse_authorization(headers)
        if not hmac.compare_digest(claim.key_id, self.credentials.access_key_id):
            raise _unrecognized("InvalidAccessKeyId", S3_UNKNOWN_KEY)
        if headers.get(SECURITY_TOKEN) is not None or SECURITY_TOKEN in query:
            # The server's keys are long-term keys, which no session token goes with: AWS refuses a
            # token beside such a key, so a client that sends one has picked up credentials of another.
            raise _unrecognized("InvalidToken", S3_INVALID_TOKEN)
        if claim.region != self.region:
            raise self._wrong_region(claim)
        if service is not None and claim.service != service:
            raise _invalid(f"Credential should be scoped to correct service: '{service}'. ")
        if claim.expires is not None and claim.service != "s3":
            raise _incomplete("A presigned URL (query-string authentication) is served for S3 only.")
        declared = headers.get(CONTENT_SHA256)
        if claim.service == "s3" and claim.expires is None and declared is None:
            missing = "Missing required header for this request: x-amz-content-sha256"
            raise Refusal("IncompleteSignatureException", missing, s3_code="InvalidRequest")
        if claim.service == "s3" and declared is not None and not (
            SHA256_HEX.fullmatch(declared) or declared in PAYLOAD_KINDS
        ):
            raise Refusal("InvalidSignatureException", INVALID_PAYLOAD_HASH, s3_code="InvalidArgument",
                          s3_fields={"ArgumentName": "x-amz-content-sha256", "ArgumentValue": declared})
        self._check_time(claim)
        if claim.service == "s3":
            _require_signed_amz_headers(claim, headers)
        return claim

    def _wrong_region(self, claim: Claim) -> Refusal:
        """JSON APIs' refusal of a scope in another region; S3's names the region it expects (in a
        field and a header), which botocore's region redirector reads to sign for it again."""
        wrong = f"the region '{claim.region}' is wrong; expecting '{self.region}'"
        if claim.expires is None:
            code = "AuthorizationHeaderMalformed"
            s3_message = f"The authorization header is malformed; {wrong}"
        else:
            code, s3_message = "AuthorizationQueryParametersError", (
                f"Error parsing the X-Amz-Credential parameter; {wrong}")
        return Refusal(
            "InvalidSignatureException", "Credential should be scoped to a valid region. ", s3_code=code,
            s3_message=s3_message, s3_fields={"Region": self.region},
            s3_headers={"x-amz-bucket-region": self.region},
        )

    def _check_time(self, claim: Claim) -> None:
        if claim.date != claim.timestamp[:8]:
            raise _invalid(
                f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
                f"HTTP: '{claim.date}' != '{claim.timestamp[:8]}', from '{claim.timestamp}'."
            )
        signed_at = datetime.strptime(claim.timestamp, SIGV4_TIMESTAMP).replace(tzinfo=UTC)
        now = self.clock()
        minutes = int(ALLOWED_SKEW.total_seconds() // 60)
        if claim.expires is not None and now > signed_at + timedelta(seconds=claim.expires):
            expired = {"X-Amz-Expires": str(claim.expires),
                       "Expires": _iso(signed_at + timedelta(seconds=claim.expires)), "ServerTime": _iso(now)}
            raise Refusal("AccessDeniedException", "Request has expired", s3_fields=expired)
        if claim.service == "s3":
            if claim.expires is None and abs(now - signed_at) > S3_ALLOWED_SKEW:
                skewed = {"RequestTime": claim.timestamp, "ServerTime": _iso(now),
                          "MaxAllowedSkewMilliseconds": str(int(S3_ALLOWED_SKEW.total_seconds() * 1000))}
                raise Refusal("InvalidSignatureException", S3_SKEWED, s3_code="RequestTimeTooSkewed",
                              s3_fields=skewed)
            return
        if claim.expires is None and signed_at < now - ALLOWED_SKEW:
            raise _invalid(
                f"Signature expired: {claim.timestamp} is now earlier than "
                f"{_stamp(now - ALLOWED_SKEW)} ({_stamp(now)} - {minutes} min.)",
                "RequestTimeTooSkewed",
            )
        if signed_at > now + ALLOWED_SKEW:
            raise _invalid(
                f"Signature not yet current: {claim.timestamp} is still later than "
                f"{_stamp(now + ALLOWED_SKEW)} ({_stamp(now)} + {minutes} min.)",
                "RequestTimeTooSkewed",
            )

    def check_signature(self, claim: Claim, method: str, target: str, headers: Message, body: bytes) -> None:
        """The signature over method, path, query, the signed headers and the body (raises Refusal).
        `target` is the request line's path and query, exactly as sent."""
        declared = headers.get(CONTENT_SHA256)
        # S3 lets a client leave the payload out of the signature; a presigned URL always does.
        unsigned = claim.service == "s3" and (declared == UNSIGNED_PAYLOAD or claim.expires is not None)
        computed = hashlib.sha256(body).hexdigest()
        if declared is not None and not unsigned and declared != computed:
            hashes = {"ClientComputedContentSHA256": declared, "S3ComputedContentSHA256": computed}
            raise Refusal("InvalidSignatureException", CONTENT_SHA256_MISMATCH,
                          s3_code="XAmzContentSHA256Mismatch", s3_fields=hashes)
        self._check_signature(claim, method, target, headers, body)

    def check_s3_headers_signature(self, claim: Claim, method: str, target: str, headers: Message) -> None:
        """An S3 request's signature while its body is unread: S3 signs the payload hash the client
        declares, and the body is checked against it as it is read (raises Refusal)."""
        assert claim.service == "s3"
        self._check_signature(claim, method, target, headers, b"")

    def _check_signature(self, claim: Claim, method: str, target: str, headers: Message, body: bytes) -> None:
        expected = signature(self.credentials, claim, method, target, headers, body)
        if not hmac.compare_digest(expected.signature, claim.signature):
            # S3 shows what it signed, so a client can find where its own signing differs
            shown = {
                "AWSAccessKeyId": claim.key_id, "StringToSign": expected.string_to_sign,
                "SignatureProvided": claim.signature, "StringToSignBytes": _bytes(expected.string_to_sign),
                "CanonicalRequest": expected.canonical_request,
                "CanonicalRequestBytes": _bytes(expected.canonical_request),
            }
            raise Refusal("InvalidSignatureException", SIGNATURE_MISMATCH, s3_code="SignatureDoesNotMatch",
                          s3_message=S3_SIGNATURE_MISMATCH, s3_fields=shown)


@dataclass(frozen=True)
class Signed:
    """A request's signature as the server computes it, with what it signed."""

    signature: str
    canonical_request: str
    string_to_sign: str


def _bytes(text: str) -> str:
    """Text as S3's SignatureDoesNotMatch spells it out: each byte in hex, separated by spaces."""
    return " ".join(f"{byte:02x}" for byte in text.encode())


class _ClientSignedHeaders(SigV4Auth):
    """botocore's SigV4 canonicalisation over the headers the client listed in SignedHeaders, rather
    than the ones botocore itself would have chosen to sign."""

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        return request.headers


class _ClientSignedS3Headers(_ClientSignedHeaders, S3SigV4Auth):
    """The same, canonicalised as S3 does it: the payload is the hash the client declares."""

    def payload(self, request: AWSRequest) -> str:
        return str(request.context[CONTENT_SHA256])


def signature(
    credentials: Credentials, claim: Claim, method: str, target: str, headers: Message, body: bytes
) -> Signed:
    """The hex signature the holder of `credentials` computes for this request under `claim`: for a
    presigned URL, over its query without the signature, and no payload."""
    presigned = claim.expires is not None
    path, _, query = target.partition("?")
    if presigned:
        query = "&".join(pair for pair in query.split("&") if not pair.startswith("X-Amz-Signature="))
    url = f"http://{headers['Host']}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body)
    request.headers = HTTPHeaders()
    for name in claim.signed_headers:
        for value in headers.get_all(name) or []:
            request.headers[name] = value
    request.context["timestamp"] = claim.timestamp
    request.context[CONTENT_SHA256] = UNSIGNED_PAYLOAD if presigned else headers.get(CONTENT_SHA256)
    kind = _ClientSignedS3Headers if claim.service == "s3" else _ClientSignedHeaders
    signer = kind(
        BotoCredentials(credentials.access_key_id, credentials.secret_access_key),
        claim.service,
        claim.region,
    )
    canonical = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical)
    return Signed(str(signer.signature(string_to_sign, request)), canonical, string_to_sign)


def scoped_service(headers: Headers, target: str = "") -> str | None:
    """The service an Authorization header's credential scope names, or a presigned URL's
    X-Amz-Credential, unchecked; None if unsigned."""
    credential = re.search(r"Credential=([^,\s]*)", headers.get("Authorization") or "")
    if credential:
        scope = credential.group(1).split("/")
    else:
        scope = query_authorization(target).get("X-Amz-Credential", "").split("/")
    return scope[3] if len(scope) == 5 else None


def query_authorization(target: str) -> dict[str, str]:
    """A presigned URL's X-Amz-* parameters ({} for a request signed otherwise, or not at all)."""
    return _presigned(_query_parameters(target))


def _query_parameters(target: str) -> dict[str, str]:
    return dict(parse_qsl(target.partition("?")[2], keep_blank_values=True))


def _presigned(parameters: dict[str, str]) -> dict[str, str]:
    if not any(name in parameters for name in ("X-Amz-Algorithm", "X-Amz-Signature")):
        return {}
    return {name: value for name, value in parameters.items() if name.startswith("X-Amz-")}


def parse_query_authorization(query: dict[str, str]) -> Claim:
    """A presigned URL's claim, or S3's refusal of its query parameters."""
    if not all(query.get(name) for name in QUERY_AUTH):
        raise _query_error(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
            "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
        )
    if query["X-Amz-Algorithm"] != ALGORITHM:
        raise _query_error(f"X-Amz-Algorithm only supports \"{ALGORITHM}\"")
    expires = query["X-Amz-Expires"]
    if not expires.isdigit():
        raise _query_error("X-Amz-Expires should be a number")
    if int(expires) > MAX_EXPIRES:
        raise _query_error(f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_EXPIRES}")
    try:
        datetime.strptime(query["X-Amz-Date"], SIGV4_TIMESTAMP)
    except ValueError:
        raise _query_error("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"") from None
    scope = query["X-Amz-Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request" or not all(scope):
        raise _query_error(f"Error parsing the X-Amz-Credential parameter; {query['X-Amz-Credential']!r}")
    signed = tuple(query["X-Amz-SignedHeaders"].lower().split(";"))
    if "host" not in signed:
        raise _query_error("'Host' must be a 'SignedHeader' in the AWS Authorization.")
    key_id, date, region, service, _ = scope
    return Claim(
        key_id, date, region, service, signed, query["X-Amz-Signature"], query["X-Amz-Date"], int(expires)
    )


def _query_error(message: str) -> Refusal:
    return Refusal("IncompleteSignatureException", message, s3_code="AuthorizationQueryParametersError")


def parse_authorization(headers: Message) -> Claim:
    """The Authorization header's parts, or the refusal AWS gives for a missing or malformed one."""
    values = headers.get_all("Authorization") or []
    if not values:
        raise Refusal("MissingAuthenticationTokenException", "Missing Authentication Token")
    if len(values) > 1:
        raise _incomplete("Only one Authorization header may be sent.")
    value = values[0].strip()
    algorithm, _, rest = value.partition(" ")
    if algorithm != ALGORITHM:
        message = f"Unsupported AWS 'algorithm': '{algorithm}'. Only '{ALGORITHM}' is served."
        if algorithm == "AWS":  # Signature Version 2 (`AWS key:signature`), which S3 no longer takes
            raise Refusal("IncompleteSignatureException", message, s3_code="InvalidRequest",
                          s3_message=V2_UNSUPPORTED)
        raise _incomplete(message)
    fields = dict(part.strip().partition("=")[::2] for part in rest.split(",") if part.strip())
    missing = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not fields.get(name)
    ]
    timestamp = _timestamp(headers)
    if timestamp is None:
        missing.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if missing:
        raise _incomplete(" ".join([*missing, f"Authorization={algorithm}"]))
    assert timestamp is not None
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request" or not all(scope):
        raise _incomplete(
            f"Credential should be scoped to a valid region, service and 'aws4_request': "
            f"'{fields['Credential']}'."
        )
    signed = tuple(fields["SignedHeaders"].lower().split(";"))
    if "host" not in signed:
        raise _incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    key_id, date, region, service, _ = scope
    return Claim(key_id, date, region, service, signed, fields["Signature"], timestamp)


def _timestamp(headers: Message) -> str | None:
    """X-Amz-Date, or failing that the Date header, in SigV4's form; None if neither parses."""
    amz_date = headers.get("X-Amz-Date")
    if amz_date is not None:
        try:
            datetime.strptime(amz_date, SIGV4_TIMESTAMP)
        except ValueError:
            return None
        return amz_date
    date = headers.get("Date")
    if date is None:
        return None
    try:
        return _stamp(parsedate_to_datetime(date))
    except (TypeError, ValueError):
        return None


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(SIGV4_TIMESTAMP)


def _iso(moment: datetime) -> str:
    """A time as S3's errors write it: 2018-03-29T11:27:42Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _require_signed_amz_headers(claim: Claim, headers: Message) -> None:
    """S3 refuses a request carrying an x-amz-* header its signature does not cover, naming them."""
    unsigned = sorted({name.lower() for name in headers if name.lower().startswith("x-amz-")}
                      - set(claim.signed_headers) - UNSIGNED_ALLOWED)
    if unsigned:
        message = "There were headers present in the request which were not signed"
        raise Refusal("AccessDeniedException", message, s3_fields={"HeadersNotSigned": ", ".join(unsigned)})

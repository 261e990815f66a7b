"""The door's checks on requests built and signed by botocore, as any SDK signs them; and the
credentials file the server makes."""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from unittest import mock

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from pipelines.local.api.auth import Door, Refusal
from pipelines.local.layout import StateLayout
from pipelines.local.storage import credentials
from pipelines.local.storage.credentials import Credentials

PORT = 4567
KEYS = Credentials("LOCALAAAAAAAAAAAAAAA", "secret-of-forty-characters-aaaaaaaaaaaaa")
BODY = b'{"PipelineName": "p"}'
NOW = datetime(2026, 1, 31, 12, 0, 0, tzinfo=UTC)


class Sent:
    """A request as the server receives it: method, request-line target, headers, body."""

    def __init__(self, method: str, target: str, headers: Message, body: bytes) -> None:
        self.method, self.target, self.headers, self.body = method, target, headers, body


def as_received(signed: Mapping[str, str | bytes], host: str) -> Message:
    """A signed request's headers as the server receives them: the Host header, then botocore's."""
    headers = Message()
    headers["Host"] = host
    for name, value in signed.items():
        headers[name] = value.decode() if isinstance(value, bytes) else value
    return headers


def sign(
    keys: Credentials = KEYS,
    service: str = "sagemaker",
    target: str = "/",
    body: bytes = BODY,
    host: str = f"127.0.0.1:{PORT}",
    at: datetime = NOW,
    extra: dict[str, str] | None = None,
    region: str = "us-east-1",
) -> Sent:
    request = AWSRequest(
        method="POST", url=f"http://{host}{target}", data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "SageMaker.DescribePipeline"},
    )
    signer = SigV4Auth(BotoCredentials(keys.access_key_id, keys.secret_access_key), service, region)
    with mock.patch("botocore.auth.get_current_datetime", return_value=at.replace(tzinfo=None)):
        signer.add_auth(request)
    prepared = request.prepare()
    headers = as_received(prepared.headers, host)
    for name, value in (extra or {}).items():
        headers[name] = value
    return Sent("POST", prepared.url.split(host, 1)[1], headers, prepared.body or b"")


def admit(sent: Sent, service: str | None = "sagemaker", now: datetime = NOW) -> None:
    door = Door(KEYS, PORT, "us-east-1", clock=lambda: now)
    claim = door.check_headers(sent.headers, service, sent.target)
    door.check_signature(claim, sent.method, sent.target, sent.headers, sent.body)


def refusal(sent: Sent, service: str | None = "sagemaker", now: datetime = NOW) -> Refusal:
    with pytest.raises(Refusal) as raised:
        admit(sent, service, now)
    return raised.value


def test_a_request_signed_with_the_keys_is_admitted() -> None:
    admit(sign())
    admit(sign(host=f"localhost:{PORT}"))
    admit(sign(service="lambda", target="/2015-03-31/functions/deploy%3A1/code?Qualifier=a%20b"), "lambda")


def test_an_unsigned_request_is_missing_its_token() -> None:
    sent = sign()
    del sent.headers["Authorization"]
    found = refusal(sent)
    assert found.code == "MissingAuthenticationTokenException"
    assert found.message == "Missing Authentication Token"
    assert (found.status(json_protocol=True), found.status(json_protocol=False)) == (400, 403)


def test_a_wrong_secret_is_an_invalid_signature() -> None:
    found = refusal(sign(keys=Credentials(KEYS.access_key_id, "another secret")))
    assert found.code == "InvalidSignatureException"
    assert found.message.startswith("The request signature we calculated does not match")


def test_a_request_signed_for_another_region_is_refused_as_aws_refuses_it() -> None:
    for region in ("eu-west-1", "not-a-region"):
        found = refusal(sign(region=region))
        assert (found.code, found.message) == (
            "InvalidSignatureException", "Credential should be scoped to a valid region. "
        )


def test_an_unknown_key_is_unrecognized() -> None:
    found = refusal(sign(keys=Credentials("AKIAIOSFODNN7EXAMPLE", KEYS.secret_access_key)))
    assert (found.code, found.message) == (
        "UnrecognizedClientException", "The security token included in the request is invalid."
    )


@pytest.mark.parametrize("change", ["body", "target", "signed header", "content hash"])
def test_a_request_changed_after_signing_is_refused(change: str) -> None:
    sent = sign()
    if change == "body":
        sent.body = b'{"PipelineName": "q"}'
    elif change == "target":
        sent.target = "/?x=1"
    elif change == "signed header":
        sent.headers.replace_header("X-Amz-Target", "SageMaker.DeletePipeline")
    else:
        sent.headers["X-Amz-Content-SHA256"] = "0" * 64
    assert refusal(sent).code == "InvalidSignatureException"


def test_a_stale_or_future_signature_is_refused_as_aws_words_it() -> None:
    stale = refusal(sign(), now=NOW + timedelta(minutes=6))
    assert stale.code == "InvalidSignatureException"
    assert stale.message == (
        "Signature expired: 20260131T120000Z is now earlier than 20260131T120100Z (20260131T120600Z - 5 min.)"
    )
    future = refusal(sign(), now=NOW - timedelta(minutes=6))
    assert future.message.startswith("Signature not yet current: 20260131T120000Z is still later than")
    admit(sign(), now=NOW + timedelta(minutes=4))


def test_a_session_token_beside_the_long_term_keys_is_refused_as_aws_refuses_it() -> None:
    found = refusal(sign(extra={"X-Amz-Security-Token": "FwoGZXIvYXdzEXAMPLE"}))
    assert (found.code, found.message) == (
        "UnrecognizedClientException", "The security token included in the request is invalid."
    )
    assert (found.s3_code, found.s3_status(), found.s3_message) == (
        "InvalidToken", 400, "The provided token is malformed or otherwise invalid."
    )
    in_query = refusal(presign(token="FwoGZXIvYXdzEXAMPLE"), "s3")
    assert (in_query.s3_code, in_query.s3_status()) == ("InvalidToken", 400)


def presign(
    target: str = "/bucket/data/train.csv", expires: int = 60, method: str = "GET", service: str = "s3",
    keys: Credentials = KEYS, token: str | None = None, region: str = "us-east-1",
) -> Sent:
    """A presigned URL as boto3's generate_presigned_url makes one (with signature_version s3v4),
    requested as curl or a browser would: the Host header only."""
    host = f"127.0.0.1:{PORT}"
    request = AWSRequest(method=method, url=f"http://{host}{target}")
    signer = S3SigV4QueryAuth(
        BotoCredentials(keys.access_key_id, keys.secret_access_key, token), service, region,
        expires=expires,
    )
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        signer.add_auth(request)
    headers = Message()
    headers["Host"] = host
    return Sent(method, request.prepare().url.split(host, 1)[1], headers, b"")


def test_a_presigned_url_is_admitted_until_it_expires() -> None:
    sent = presign(target="/bucket/data/train.csv?response-content-type=text%2Fcsv", expires=60)
    admit(sent, "s3", now=NOW + timedelta(seconds=60))
    admit(presign(method="PUT", expires=3600), "s3", now=NOW + timedelta(minutes=59))
    expired = refusal(sent, "s3", now=NOW + timedelta(seconds=61))
    assert (expired.s3_code, expired.s3_status()) == ("AccessDenied", 403)
    assert expired.message == "Request has expired"
    assert expired.s3_fields == {  # as S3's answer names them
        "X-Amz-Expires": "60", "Expires": "2026-01-31T12:01:00Z", "ServerTime": "2026-01-31T12:01:01Z"}


@pytest.mark.parametrize("change", ["key", "query", "signature"])
def test_a_presigned_url_changed_after_signing_is_refused(change: str) -> None:
    sent = presign(target="/bucket/data/train.csv?response-content-type=text%2Fcsv")
    sent.target = {
        "key": sent.target.replace("train.csv", "test.csv"),
        "query": sent.target.replace("text%2Fcsv", "text%2Fhtml"),
        "signature": sent.target.replace("X-Amz-Signature=", "X-Amz-Signature=0"),
    }[change]
    assert (refusal(sent, "s3").s3_code, refusal(sent, "s3").s3_status()) == ("SignatureDoesNotMatch", 403)


def test_a_presigned_urls_parameters_are_checked_as_s3_checks_them() -> None:
    week = refusal(presign(expires=7 * 24 * 3600 + 1), "s3")
    assert (week.s3_code, week.s3_status()) == ("AuthorizationQueryParametersError", 400)
    assert week.message == "X-Amz-Expires must be less than a week (in seconds) that is 604800"
    unsigned = presign()
    unsigned.target = "&".join(p for p in unsigned.target.split("&") if not p.startswith("X-Amz-Signature"))
    assert refusal(unsigned, "s3").s3_code == "AuthorizationQueryParametersError"
    stranger = refusal(presign(keys=Credentials("LOCALBBBBBBBBBBBBBBB", KEYS.secret_access_key)), "s3")
    assert (stranger.s3_code, stranger.s3_status(), stranger.s3_message) == (
        "InvalidAccessKeyId", 403, "The AWS Access Key Id you provided does not exist in our records."
    )
    assert "for S3 only" in refusal(presign(service="sagemaker"), "sagemaker").message


def test_a_request_signed_twice_or_with_signature_version_2_is_refused_in_s3s_words() -> None:
    both = presign()
    both.headers["Authorization"] = sign(service="s3").headers["Authorization"]
    assert (refusal(both, "s3").s3_code, refusal(both, "s3").s3_status()) == ("InvalidArgument", 400)
    version_2 = presign()
    version_2.target = "/bucket/k?AWSAccessKeyId=LOCALAAAAAAAAAAAAAAA&Signature=abc%3D&Expires=1769864460"
    refused = refusal(version_2, "s3")
    assert (refused.s3_code, refused.s3_status()) == ("InvalidRequest", 400)
    assert refused.message == (
        "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
    )


def test_a_signature_for_another_service_is_refused() -> None:
    found = refusal(sign(service="lambda"), service="sagemaker")
    assert found.message == "Credential should be scoped to correct service: 'sagemaker'. "


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=ab",
        "AWS4-HMAC-SHA256 Credential=LOCALAAAAAAAAAAAAAAA/20260131/us-east-1/sagemaker/aws4_request",
        "AWS4-HMAC-SHA256 Credential=LOCALAAAAAAAAAAAAAAA/x, SignedHeaders=host, Signature=ab",
        "AWS4-HMAC-SHA256 Credential=LOCALAAAAAAAAAAAAAAA/20260131/us-east-1/sagemaker/aws4_request, "
        "SignedHeaders=x-amz-date, Signature=ab",
        "AWS4-ECDSA-P256-SHA256 Credential=a/b/c/d/aws4_request, SignedHeaders=host, Signature=ab",
        "Basic dXNlcjpwYXNz",
    ],
)
def test_an_incomplete_authorization_is_refused(authorization: str) -> None:
    sent = sign()
    sent.headers.replace_header("Authorization", authorization)
    assert refusal(sent).code == "IncompleteSignatureException"


@pytest.mark.parametrize("host", ["evil.example:4567", "127.0.0.1:80", "127.0.0.1", "127.0.0.2:4567"])
def test_a_foreign_host_is_refused_even_when_signed(host: str) -> None:
    found = refusal(sign(host=host))
    assert found.code == "AccessDeniedException" and found.door
    assert found.status(json_protocol=True) == 403


def test_a_browser_origin_is_refused_even_when_signed() -> None:
    found = refusal(sign(extra={"Origin": f"http://127.0.0.1:{PORT}"}))
    assert found.code == "AccessDeniedException" and "Origin" in found.message


def test_credentials_are_made_once_and_readable_by_the_owner_only(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path / "state")
    layout.create_root()
    made = credentials.load_or_create(layout.credentials)
    assert credentials.load_or_create(layout.credentials) == made
    assert made.access_key_id.startswith("LOCAL") and len(made.access_key_id) == 20
    assert len(made.secret_access_key) == 40
    assert stat.S_IMODE(layout.credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(layout.root.stat().st_mode) == 0o700
    assert credentials.generate() != made


def test_an_existing_state_directory_is_closed_to_others(tmp_path: Path) -> None:
    root = tmp_path / "open"
    root.mkdir(mode=0o755)
    StateLayout(root).create_root()
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


def sign_s3(at: datetime = NOW, region: str = "us-east-1", signed: dict[str, str] | None = None) -> Sent:
    """A GET of an object, signed in its headers as boto3's S3 client signs one (payload hash included)."""
    host = f"127.0.0.1:{PORT}"
    request = AWSRequest(method="GET", url=f"http://{host}/bucket/data/train.csv", headers=signed or {})
    signer = S3SigV4Auth(BotoCredentials(KEYS.access_key_id, KEYS.secret_access_key), "s3", region)
    with mock.patch("botocore.auth.get_current_datetime", return_value=at.replace(tzinfo=None)):
        signer.add_auth(request)
    return Sent("GET", "/bucket/data/train.csv", as_received(request.prepare().headers, host), b"")


def test_s3_takes_a_request_up_to_15_minutes_off_the_clock_and_words_its_refusal_as_s3_does() -> None:
    admit(sign_s3(), "s3", now=NOW + timedelta(minutes=14))
    admit(sign_s3(), "s3", now=NOW - timedelta(minutes=14))
    skewed = refusal(sign_s3(), "s3", now=NOW + timedelta(minutes=16))
    assert (skewed.s3_code, skewed.s3_status()) == ("RequestTimeTooSkewed", 403)
    assert skewed.s3_message == "The difference between the request time and the current time is too large."
    assert skewed.s3_fields == {"RequestTime": "20260131T120000Z", "ServerTime": "2026-01-31T12:16:00Z",
                                "MaxAllowedSkewMilliseconds": "900000"}
    assert refusal(sign_s3(), "s3", now=NOW - timedelta(minutes=16)).s3_code == "RequestTimeTooSkewed"


def test_s3_names_the_region_it_expects_so_an_sdk_can_sign_for_it_again() -> None:
    header = refusal(sign_s3(region="eu-west-1"), "s3")
    assert (header.s3_code, header.s3_status(), header.s3_message) == (
        "AuthorizationHeaderMalformed", 400,
        "The authorization header is malformed; the region 'eu-west-1' is wrong; expecting 'us-east-1'")
    assert header.s3_fields == {"Region": "us-east-1"}
    assert header.s3_headers == {"x-amz-bucket-region": "us-east-1"}
    query = refusal(presign(region="eu-west-1"), "s3")
    assert (query.s3_code, query.s3_status(), query.s3_fields) == (
        "AuthorizationQueryParametersError", 400, {"Region": "us-east-1"})
    assert query.s3_message == ("Error parsing the X-Amz-Credential parameter; "
                                "the region 'eu-west-1' is wrong; expecting 'us-east-1'")


def test_s3_refuses_an_x_amz_header_its_signature_does_not_cover() -> None:
    admit(sign_s3(signed={"x-amz-meta-owner": "ml"}), "s3")
    late = sign_s3()
    late.headers["x-amz-meta-owner"] = "ml"  # added after signing
    found = refusal(late, "s3")
    assert (found.s3_code, found.s3_status(), found.s3_message, found.s3_fields) == (
        "AccessDenied", 403, "There were headers present in the request which were not signed",
        {"HeadersNotSigned": "x-amz-meta-owner"})
    presigned = presign()
    presigned.headers["x-amz-request-payer"] = "requester"
    presigned.headers["x-amz-acl"] = "private"
    assert refusal(presigned, "s3").s3_fields == {"HeadersNotSigned": "x-amz-acl, x-amz-request-payer"}
    hashed = presign()
    hashed.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"  # checked against the body instead
    admit(hashed, "s3")


def test_s3_refuses_a_payload_hash_that_is_no_sha256_nor_a_payload_kind_in_its_words() -> None:
    sent = sign_s3()
    sent.headers.replace_header("X-Amz-Content-SHA256", "GIBBERISH")  # judged before the signature
    found = refusal(sent, "s3")
    assert (found.s3_code, found.s3_status(), found.s3_fields) == (
        "InvalidArgument", 400, {"ArgumentName": "x-amz-content-sha256", "ArgumentValue": "GIBBERISH"})
    assert found.s3_message == (
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER or a "
        "valid sha256 value.")


def test_s3_names_both_hashes_when_a_body_is_not_what_its_hash_says() -> None:
    sent = sign_s3()  # signed over an empty body
    sent.body = b"more than nothing"
    found = refusal(sent, "s3")
    assert (found.s3_code, found.s3_status()) == ("XAmzContentSHA256Mismatch", 400)
    assert found.s3_fields == {
        "ClientComputedContentSHA256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "S3ComputedContentSHA256": hashlib.sha256(b"more than nothing").hexdigest()}


def test_signature_version_2_in_the_authorization_header_is_refused_as_s3_refuses_it() -> None:
    sent = sign_s3()
    sent.headers.replace_header("Authorization", f"AWS {KEYS.access_key_id}:c2lnbmF0dXJl")
    found = refusal(sent, "s3")
    assert (found.s3_code, found.s3_status(), found.s3_message) == (
        "InvalidRequest", 400,
        "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.")


def test_s3_shows_what_it_signed_when_a_signature_does_not_match() -> None:
    sent = sign_s3()
    provided = sent.headers["Authorization"].rpartition("Signature=")[2]
    wrong = Door(Credentials(KEYS.access_key_id, "another secret"), PORT, "us-east-1", clock=lambda: NOW)
    claim = wrong.check_headers(sent.headers, "s3", sent.target)
    with pytest.raises(Refusal) as raised:
        wrong.check_signature(claim, sent.method, sent.target, sent.headers, sent.body)
    found = raised.value
    assert (found.s3_code, found.s3_status(), found.s3_message) == (
        "SignatureDoesNotMatch", 403,
        "The request signature we calculated does not match the signature you provided. Check your key and "
        "signing method.")
    fields = found.s3_fields
    assert (fields["AWSAccessKeyId"], fields["SignatureProvided"]) == (KEYS.access_key_id, provided)
    assert fields["StringToSign"].startswith(
        "AWS4-HMAC-SHA256\n20260131T120000Z\n20260131/us-east-1/s3/aws4_request\n")
    assert fields["CanonicalRequest"].startswith("GET\n/bucket/data/train.csv\n")
    for name in ("StringToSign", "CanonicalRequest"):
        assert bytes.fromhex(fields[f"{name}Bytes"].replace(" ", "")).decode() == fields[name]

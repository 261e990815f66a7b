"""Errors in AWS's shape, so boto3 raises the ClientError codes callers already handle."""

from __future__ import annotations

from collections.abc import Mapping


class ServiceError(Exception):
    def __init__(
        self, code: str, message: str, status: int = 400, fields: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """`fields`: what S3's XML errors add to the code and message (Key, BucketName...);
        `headers`: the response headers an S3 error carries (a delete marker's)."""
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.fields = dict(fields or {})
        self.headers = dict(headers or {})


def not_found(what: str, name: str, code: str = "ValidationException") -> ServiceError:
    return ServiceError(code, f'Could not find {what} "{name}".')


def invalid(message: str) -> ServiceError:
    return ServiceError("ValidationException", message)


def not_implemented(header: str, why: str = "", fields: Mapping[str, str] | None = None) -> ServiceError:
    """S3's 501 for a header asking for what is not done, naming the header; `why` says what the
    local S3 does instead, `fields` are what else S3's error carries (its additionalMessage)."""
    message = "A header you provided implies functionality that is not implemented"
    return ServiceError("NotImplemented", f"{message}: {why}" if why else message, 501,
                        {"Header": header, **(fields or {})})

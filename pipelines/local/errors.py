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

"""Errors in AWS's shape, so boto3 raises the ClientError codes callers already handle."""

from __future__ import annotations


class ServiceError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def not_found(what: str, name: str, code: str = "ValidationException") -> ServiceError:
    return ServiceError(code, f'Could not find {what} "{name}".')


def invalid(message: str) -> ServiceError:
    return ServiceError("ValidationException", message)

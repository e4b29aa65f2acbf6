"""Errors a handler raises on purpose; the server's interceptor turns them into gRPC statuses."""

from __future__ import annotations

from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request, named as in the proto (nested fields with dots)."""

    field: str
    description: str

    def __str__(self) -> str:
        return f"{self.field}: {self.description}"


class ServiceError(Exception):
    """An expected failure with the status code the client should see."""

    code = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    """The request is malformed; the message names every bad field."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("; ".join(str(v) for v in violations))
        self.violations = violations


class NotFound(ServiceError):
    """The thing asked for does not exist (Envoy answers HTTP 404)."""

    code = grpc.StatusCode.NOT_FOUND


class Unauthenticated(ServiceError):
    """No valid credentials: no token where one is needed, or a bad one (Envoy answers 401)."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ServiceError):
    """A valid caller acting outside its rights (Envoy answers 403)."""

    code = grpc.StatusCode.PERMISSION_DENIED


class Unimplemented(ServiceError):
    """The operation is switched off here (Envoy answers 501)."""

    code = grpc.StatusCode.UNIMPLEMENTED


class Unavailable(ServiceError):
    """A dependency is down; the client may retry (Envoy answers HTTP 503)."""

    code = grpc.StatusCode.UNAVAILABLE

"""Errors a handler raises on purpose; the server's interceptor turns them into gRPC statuses."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2


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

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        """Trailers to answer with besides the code and message (none unless a subclass says)."""
        return ()


class InvalidArgument(ServiceError):
    """The request is malformed; the message names every bad field."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("; ".join(str(v) for v in violations))
        self.violations = violations

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        """The violations also as a google.rpc.BadRequest in the status details (gRPC's
        `grpc-status-details-bin`), for clients that read fields rather than the message;
        Envoy's transcoder puts them in the REST body's `details`."""
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in self.violations
            ]
        )
        detail = any_pb2.Any()
        detail.Pack(bad_request)
        status = status_pb2.Status(code=self.code.value[0], message=self.message, details=[detail])
        return (("grpc-status-details-bin", status.SerializeToString()),)


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


class FailedPrecondition(ServiceError):
    """The request is well formed but the system is not in a state to do it (Envoy answers 400)."""

    code = grpc.StatusCode.FAILED_PRECONDITION

"""The public API, recsys.v1: its proto files and services, listed once.

Importing this module registers every recsys.v1 service (and the access option) in protobuf's
default descriptor pool, where the access policy and the validation interceptor look methods up;
reflection, the access and proto-rule tests and the OpenAPI check all walk API_FILES, so a new
service file added here is served, guarded and tested everywhere at once.
"""

from __future__ import annotations

from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor

from recsys.v1 import (  # noqa: F401  (access_pb2: registers the access option)
    access_pb2,
    analytics_service_pb2,
    catalogue_service_pb2,
    event_service_pb2,
    profile_service_pb2,
    recommender_service_pb2,
    session_service_pb2,
)

API_PACKAGE = "recsys.v1"

API_FILES: tuple[FileDescriptor, ...] = (
    recommender_service_pb2.DESCRIPTOR,
    event_service_pb2.DESCRIPTOR,
    profile_service_pb2.DESCRIPTOR,
    session_service_pb2.DESCRIPTOR,
    catalogue_service_pb2.DESCRIPTOR,
    analytics_service_pb2.DESCRIPTOR,
)

API_SERVICES: tuple[ServiceDescriptor, ...] = tuple(
    service for file in API_FILES for service in file.services_by_name.values()
)

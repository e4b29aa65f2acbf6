"""Channels for service-to-service calls: traced, with retries on UNAVAILABLE."""

from __future__ import annotations

import json

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from recsys.auth.credentials import CredentialsInterceptor, ServiceCredentials

# Calls between services are idempotent reads; a restarting peer is retried briefly.
_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{}],
                "timeout": "2s",
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


def channel(addr: str, credentials: ServiceCredentials) -> grpc.aio.Channel:
    """A channel to a peer service inside the mesh; every call carries this service's token."""
    return grpc.aio.insecure_channel(
        addr,
        options=[("grpc.service_config", _SERVICE_CONFIG), ("grpc.enable_retries", 1)],
        # opentelemetry-instrumentation-grpc's factories are unannotated.
        interceptors=[
            CredentialsInterceptor(credentials),
            *aio_client_interceptors(),  # type: ignore[no-untyped-call]
        ],
    )

"""The token a service sends when it calls another service of the mesh.

Production: a file the platform keeps fresh (SERVICE_TOKEN_FILE, like a Kubernetes projected
service-account token), re-read when it changes. The local stack, with the development issuer
on: the service signs its own short-lived service token and renews it at half its life.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from recsys.auth.devissuer import DevIssuer


class ServiceCredentials:
    """`authorization` metadata for outgoing calls."""

    def __init__(
        self, *, token_file: Path | None = None, issuer: DevIssuer | None = None, name: str = ""
    ) -> None:
        if token_file is None and issuer is None:
            raise ValueError("a service token needs SERVICE_TOKEN_FILE or the development issuer")
        self._file = token_file
        self._issuer = issuer
        self._name = name
        self._token = ""
        self._renew_at = 0.0
        self._mtime = -1.0

    def token(self) -> str:
        if self._file is not None:
            mtime = self._file.stat().st_mtime
            if mtime != self._mtime:
                self._token, self._mtime = self._file.read_text().strip(), mtime
            return self._token
        now = time.time()
        if now >= self._renew_at:
            assert self._issuer is not None
            self._token, exp = self._issuer.service_token(self._name)
            self._renew_at = now + (exp - now) / 2
        return self._token

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token()}"),)


class CredentialsInterceptor(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Adds the service's token to every unary call of a channel."""

    def __init__(self, credentials: ServiceCredentials) -> None:
        self.credentials = credentials

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        metadata = list(details.metadata or ())
        metadata.extend(self.credentials.metadata())
        details = grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            grpc.aio.Metadata(*metadata),
            details.credentials,
            details.wait_for_ready,
        )
        return await continuation(details, request)

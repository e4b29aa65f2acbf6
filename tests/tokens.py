"""Tokens for tests, signed by the local stack's development issuer (stack.auth).

    from tests.tokens import bearer, auth_headers, service_token, user_token
    stub.GetRecommendations(req, metadata=bearer(user_token(42)))   # gRPC
    urllib.request.Request(url, headers=auth_headers(user_token(42)))  # REST
    bearer()  /  auth_headers()    # default: a service token, which may act for any user

Tests of other things than auth call as a service (a backend acting for users); the trust
boundary tests (tests/integration/test_auth.py) use user tokens and hostile ones.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator
from functools import cache

import grpc

from recsys.auth import policy, setup
from recsys.auth.credentials import ServiceCredentials
from recsys.config import Settings
from stack.auth import token
from stack.config import StackConfig


@cache
def _cfg() -> StackConfig:
    return StackConfig.load()


@cache
def user_token(user_id: int) -> str:
    return token(_cfg(), user=user_id)


@cache
def service_token(name: str = "tests") -> str:
    return token(_cfg(), service=name)


@cache
def admin_token(name: str = "tests") -> str:
    return token(_cfg(), admin=name)


@cache
def analyst_token(name: str = "tests") -> str:
    return token(_cfg(), analyst=name)


def caller_token(method: str) -> str:
    """A token that may call `method` (`/recsys.v1.X/Y`) for any user: the service token, or
    an admin's or analyst's for the methods of those audiences."""
    audience = policy.audience_of(method)
    if audience == policy.ADMIN:
        return admin_token()
    if audience == policy.ANALYST:
        return analyst_token()
    return service_token()


def bearer(tok: str | None = None) -> tuple[tuple[str, str], ...]:
    """gRPC metadata carrying `tok` (default: the tests' service token)."""
    return (("authorization", f"Bearer {tok or service_token()}"),)


def auth_headers(tok: str | None = None) -> dict[str, str]:
    """HTTP headers carrying `tok` (default: the tests' service token)."""
    return {"authorization": f"Bearer {tok or service_token()}"}


class _Details(
    collections.namedtuple(
        "_Details", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
    ),
    grpc.ClientCallDetails,
):
    pass


class _WithToken(grpc.UnaryUnaryClientInterceptor):
    def __init__(self, tok: str | None) -> None:
        self.tok = tok

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        metadata = [*(details.metadata or ()), *bearer(self.tok)]
        return continuation(
            _Details(
                details.method,
                details.timeout,
                metadata,
                details.credentials,
                details.wait_for_ready,
                details.compression,
            ),
            request,
        )


@contextlib.contextmanager
def authed_channel(addr: str, tok: str | None = None) -> Iterator[grpc.Channel]:
    """A blocking channel whose every unary call carries `tok` (default: the service token)."""
    with grpc.insecure_channel(addr) as channel:
        yield grpc.intercept_channel(channel, _WithToken(tok))


def service_credentials(name: str = "tests") -> ServiceCredentials:
    """What an in-process servicer sends to the other services (recsys.grpcclient.channel)."""
    return setup.service_credentials(Settings.from_env(_cfg().child_env()), name)

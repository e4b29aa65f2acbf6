"""Tokens for tests, signed by the local stack's development issuer (stack.auth).

    from tests.tokens import bearer, auth_headers, service_token, user_token
    stub.GetRecommendations(req, metadata=bearer(user_token(42)))   # gRPC
    urllib.request.Request(url, headers=auth_headers(user_token(42)))  # REST
    bearer()  /  auth_headers()    # default: a service token, which may act for any user

Tests of other things than auth call as a service (a backend acting for users); the trust
boundary tests (tests/integration/test_auth.py) use user tokens and hostile ones.
"""

from __future__ import annotations

from functools import cache

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


def bearer(tok: str | None = None) -> tuple[tuple[str, str], ...]:
    """gRPC metadata carrying `tok` (default: the tests' service token)."""
    return (("authorization", f"Bearer {tok or service_token()}"),)


def auth_headers(tok: str | None = None) -> dict[str, str]:
    """HTTP headers carrying `tok` (default: the tests' service token)."""
    return {"authorization": f"Bearer {tok or service_token()}"}

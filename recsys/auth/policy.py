"""Each RPC's audience, as the protos declare it, and the check every call must pass.

The rule lives in the API contract: every recsys.v1 method carries
`option (recsys.v1.access) = {audience: ...}` (proto/recsys/v1/access.proto). Methods outside
recsys.v1 (health checks, reflection) are public; a recsys.v1 method without a rule is refused.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pool

from recsys.api import API_PACKAGE  # importing it registers every recsys.v1 service
from recsys.auth.principal import Principal
from recsys.auth.verifier import TokenVerifier
from recsys.errors import PermissionDenied, Unauthenticated
from recsys.v1 import access_pb2

Audience = int  # an access_pb2.Audience value

PUBLIC = access_pb2.AUDIENCE_PUBLIC
USER = access_pb2.AUDIENCE_USER
SERVICE = access_pb2.AUDIENCE_SERVICE
INTERNAL = access_pb2.AUDIENCE_INTERNAL
ADMIN = access_pb2.AUDIENCE_ADMIN
ANALYST = access_pb2.AUDIENCE_ANALYST
USER_OR_ADMIN = access_pb2.AUDIENCE_USER_OR_ADMIN


def audience_of(method: str) -> Audience | None:
    """The audience of a gRPC method path (`/recsys.v1.ProfileService/GetProfile`).

    PUBLIC outside recsys.v1; None for a recsys.v1 method without a rule (or unknown).
    """
    service, _, name = method.lstrip("/").rpartition("/")
    if not service.startswith(API_PACKAGE + "."):
        return PUBLIC
    try:
        svc = descriptor_pool.Default().FindServiceByName(service)
    except KeyError:
        return None
    found = svc.methods_by_name.get(name)
    if found is None:
        return None
    options = found.GetOptions()
    if not options.HasExtension(access_pb2.access):
        return None
    audience: int = options.Extensions[access_pb2.access].audience
    return audience or None


def bearer_token(value: str | bytes | None) -> str | None:
    """The token of an `authorization: Bearer <token>` value; None when absent."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authorization must be `Bearer <token>`")
    return token.strip()


class Authorizer:
    """Authenticates a call's token and checks it against the method's audience."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier

    def principal(self, authorization: str | bytes | None) -> Principal | None:
        token = bearer_token(authorization)
        return None if token is None else self.verifier.verify(token)

    def check(
        self, audience: Audience | None, authorization: str | bytes | None, request: Any
    ) -> Principal | None:
        """The caller, once allowed; Unauthenticated (no or bad token) or PermissionDenied."""
        principal = self.principal(authorization)  # a token that is sent must be valid
        if audience == PUBLIC:
            return principal
        if audience is None:
            raise PermissionDenied("this method declares no access rule")
        if principal is None:
            raise Unauthenticated("this call needs a bearer token")
        if audience in (USER, USER_OR_ADMIN):
            user_id = int(getattr(request, "user_id", 0))
            if not (principal.may_act_for(user_id) or (audience == USER_OR_ADMIN and principal.is_admin)):
                raise PermissionDenied(f"the token of {principal.subject!r} may not act for user {user_id}")
        elif audience in (SERVICE, INTERNAL):
            if not principal.is_service:
                raise PermissionDenied("this method is for services (a token with the service scope)")
        elif audience == ADMIN:
            if not principal.is_admin:
                raise PermissionDenied("this method needs the admin scope")
        elif audience == ANALYST:
            if not principal.is_analyst:
                raise PermissionDenied("this method needs the analyst or the admin scope")
        else:
            raise PermissionDenied(f"unknown audience {audience}")
        return principal

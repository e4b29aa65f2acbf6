"""The auth objects of one process, from its settings."""

from __future__ import annotations

from pathlib import Path

from recsys.auth.credentials import ServiceCredentials
from recsys.auth.devissuer import DevIssuer
from recsys.auth.policy import Authorizer
from recsys.auth.verifier import TokenVerifier
from recsys.config import MissingSettingError, Settings


def authorizer(settings: Settings) -> Authorizer:
    return Authorizer(TokenVerifier(settings.auth_jwks, settings.auth_issuer, settings.auth_audience))


def dev_issuer(settings: Settings) -> DevIssuer | None:
    """The development issuer when AUTH_DEV_ISSUER is on; None otherwise."""
    if not settings.auth_dev_issuer:
        return None
    if not settings.auth_dev_signing_key:
        raise MissingSettingError("AUTH_DEV_ISSUER is on but AUTH_DEV_SIGNING_KEY is not set")
    return DevIssuer(
        Path(settings.auth_dev_signing_key),
        settings.auth_issuer,
        settings.auth_audience,
        settings.auth_token_ttl_seconds,
    )


def service_credentials(settings: Settings, name: str) -> ServiceCredentials:
    """This service's token for calls to others: SERVICE_TOKEN_FILE, else the development issuer."""
    if settings.service_token_file:
        return ServiceCredentials(token_file=Path(settings.service_token_file))
    issuer = dev_issuer(settings)
    if issuer is None:
        raise MissingSettingError("calls to other services need SERVICE_TOKEN_FILE (or AUTH_DEV_ISSUER=true)")
    return ServiceCredentials(issuer=issuer, name=name)

"""The local stack's development keys and tokens (recsys.auth.devissuer), from the stack's settings.

`make up` makes the key pair and JWKS once, before Envoy and the services start (both read the
JWKS). `python -m stack token --user 42` prints a token for curl and grpcurl.
"""

from __future__ import annotations

from pathlib import Path

from .config import ROOT, StackConfig, StackError


def _path(cfg: StackConfig, key: str) -> Path:
    value = cfg.env.get(key, "")
    if not value:
        raise StackError(f"auth: {key} is not set (.env)")
    path = Path(value)
    return path if path.is_absolute() else ROOT / path


def dev_issuer_on(cfg: StackConfig) -> bool:
    return cfg.env.get("AUTH_DEV_ISSUER", "false").strip().lower() in ("true", "1")


def prepare(cfg: StackConfig) -> None:
    """The development key pair and its JWKS, made if missing (only where the dev issuer is on)."""
    if not dev_issuer_on(cfg):
        return
    from recsys.auth.devissuer import JWKS_FILE, ensure_keys

    key = _path(cfg, "AUTH_DEV_SIGNING_KEY")
    _, jwks = ensure_keys(key.parent)
    if "://" not in cfg.env.get("AUTH_JWKS", "") and _path(cfg, "AUTH_JWKS") != key.parent / JWKS_FILE:
        raise StackError(f"auth: AUTH_JWKS must be {jwks} (the development JWKS) while AUTH_DEV_ISSUER is on")


def token(
    cfg: StackConfig,
    *,
    user: int | None = None,
    service: str | None = None,
    admin: str | None = None,
    analyst: str | None = None,
    ttl_seconds: int | None = None,
) -> str:
    """A token signed by the development key: for a user, a service, an admin or an analyst."""
    if not dev_issuer_on(cfg):
        raise StackError("auth: AUTH_DEV_ISSUER is off: tokens come from the identity provider")
    prepare(cfg)
    from recsys.auth.setup import dev_issuer
    from recsys.config import Settings

    issuer = dev_issuer(Settings.from_env(cfg.child_env()))
    assert issuer is not None  # dev_issuer_on(cfg)
    if user is not None:
        return issuer.user_token(user, ttl_seconds)[0]
    if service is not None:
        return issuer.service_token(service, ttl_seconds)[0]
    if admin is not None:
        return issuer.admin_token(admin, ttl_seconds)[0]
    if analyst is not None:
        return issuer.analyst_token(analyst, ttl_seconds)[0]
    raise StackError("auth: a token is for a user, a service, an admin or an analyst")

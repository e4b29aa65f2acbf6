"""The development token issuer: an RSA key pair, its JWKS, and tokens signed with it.

For the local stack only (AUTH_DEV_ISSUER=true), where there is no identity provider: `make up`
makes the keys once under `$STACK_DIR/auth/` (never committed), Envoy and the services verify
against the JWKS, the SessionService signs user tokens with the private key, and the services
sign their own service tokens for calls to each other. A deployment turns it off and points
AUTH_JWKS at its identity provider.

    python -m recsys.auth.devissuer keys [DIR]             # make the key pair + JWKS if missing
    python -m recsys.auth.devissuer token --user 42        # a user token (stdout)
    python -m recsys.auth.devissuer token --service NAME   # a service token (acts for any user)
    python -m recsys.auth.devissuer token --admin NAME     # an admin token
    python -m recsys.auth.devissuer token --analyst NAME   # an analyst token (reads the analytics)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from recsys.auth.principal import (
    ADMIN_SCOPE,
    ADMIN_SUBJECT_PREFIX,
    ANALYST_SCOPE,
    ANALYST_SUBJECT_PREFIX,
    SERVICE_SCOPE,
    SERVICE_SUBJECT_PREFIX,
    USER_SCOPE,
)

PRIVATE_KEY_FILE = "signing-key.pem"
JWKS_FILE = "jwks.json"
ALGORITHM = "RS256"


def _key_id(public: rsa.RSAPublicKey) -> str:
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:12]).decode().rstrip("=")


def jwks_of(public: rsa.RSAPublicKey) -> dict[str, object]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
    jwk.update({"kid": _key_id(public), "alg": ALGORITHM, "use": "sig"})
    return {"keys": [jwk]}


def ensure_keys(directory: Path) -> tuple[Path, Path]:
    """The private key and JWKS files in `directory`, made on first call (key readable by its owner only)."""
    directory.mkdir(parents=True, exist_ok=True)
    key_path, jwks_path = directory / PRIVATE_KEY_FILE, directory / JWKS_FILE
    if not key_path.exists():
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        tmp = key_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        tmp.replace(key_path)
        jwks_path.unlink(missing_ok=True)
    if not jwks_path.exists():
        private_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(private_key, rsa.RSAPrivateKey)
        tmp = jwks_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(jwks_of(private_key.public_key()), indent=2) + "\n")
        tmp.replace(jwks_path)
    return key_path, jwks_path


class DevIssuer:
    """Signs tokens with the development key."""

    def __init__(self, key_path: Path, issuer: str, audience: str, ttl_seconds: int = 3600) -> None:
        private = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(private, rsa.RSAPrivateKey):
            raise ValueError(f"{key_path}: not an RSA private key")
        self._key = private
        self._kid = _key_id(private.public_key())
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds

    def token(self, subject: str, scopes: list[str], ttl_seconds: int | None = None) -> tuple[str, int]:
        """A signed token and its expiry (unix seconds)."""
        now = int(time.time())
        exp = now + (ttl_seconds or self.ttl_seconds)
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "scope": " ".join(scopes),
            "iat": now,
            "exp": exp,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self._kid}), exp

    def user_token(self, user_id: int, ttl_seconds: int | None = None) -> tuple[str, int]:
        return self.token(str(user_id), [USER_SCOPE], ttl_seconds)

    def service_token(self, name: str, ttl_seconds: int | None = None) -> tuple[str, int]:
        return self.token(SERVICE_SUBJECT_PREFIX + name, [SERVICE_SCOPE], ttl_seconds)

    def admin_token(self, name: str, ttl_seconds: int | None = None) -> tuple[str, int]:
        return self.token(ADMIN_SUBJECT_PREFIX + name, [ADMIN_SCOPE], ttl_seconds)

    def analyst_token(self, name: str, ttl_seconds: int | None = None) -> tuple[str, int]:
        return self.token(ANALYST_SUBJECT_PREFIX + name, [ANALYST_SCOPE], ttl_seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m recsys.auth.devissuer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    keys = sub.add_parser("keys", help="make the key pair and JWKS if missing")
    keys.add_argument("dir", type=Path, nargs="?", help="default: the folder of AUTH_DEV_SIGNING_KEY")
    tok = sub.add_parser("token", help="print a signed token")
    who = tok.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", type=int)
    who.add_argument("--service")
    who.add_argument("--admin")
    who.add_argument("--analyst")
    tok.add_argument("--ttl", type=int, default=None, help="seconds (default AUTH_TOKEN_TTL_SECONDS)")
    opts = parser.parse_args(argv)
    if opts.command == "keys":
        from recsys.config import Settings

        directory = opts.dir or Path(Settings.from_env().auth_dev_signing_key).parent
        print(ensure_keys(directory)[1])
        return
    from recsys.auth.setup import dev_issuer
    from recsys.config import Settings

    issuer = dev_issuer(Settings.from_env())
    if issuer is None:
        raise SystemExit("AUTH_DEV_ISSUER is off: tokens come from the identity provider")
    if opts.user is not None:
        token, _ = issuer.user_token(opts.user, opts.ttl)
    elif opts.service:
        token, _ = issuer.service_token(opts.service, opts.ttl)
    elif opts.analyst:
        token, _ = issuer.analyst_token(opts.analyst, opts.ttl)
    else:
        token, _ = issuer.admin_token(opts.admin, opts.ttl)
    print(token)


if __name__ == "__main__":
    main()

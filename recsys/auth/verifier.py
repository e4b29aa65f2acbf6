"""Bearer-token verification against the deployment's JWKS.

The gateway (Envoy's jwt_authn) verifies every token first; each service verifies again, so a
caller that reaches a service port directly gains nothing. The JWKS is a file (the local stack's
development keys, or keys mounted into a container) or an https URL (an identity provider's
`jwks_uri`), re-read when the file changes or, for a URL, when a token names an unknown key.

Verifying an RS256 signature costs tens of microseconds; a cache hit costs well under a
millisecond in all, so verified tokens are remembered (bounded, until they expire).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path

import jwt

from recsys.auth.principal import Principal
from recsys.errors import Unauthenticated

ALGORITHMS = ["RS256"]
# Tolerated clock difference between the issuer and this host.
LEEWAY_SECONDS = 30


class TokenVerifier:
    """Verifies tokens of one issuer and audience; thread- and task-safe for reads."""

    CACHE_SIZE = 10_000

    def __init__(self, jwks: str, issuer: str, audience: str) -> None:
        self.issuer = issuer
        self.audience = audience
        self._url_client = jwt.PyJWKClient(jwks, cache_keys=True) if "://" in jwks else None
        self._path = None if self._url_client else Path(jwks)
        self._keys: dict[str, jwt.PyJWK] = {}
        self._keys_mtime = -1.0
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; Unauthenticated (naming why) for anything else."""
        now = time.time()
        hit = self._cache.get(token)
        if hit is not None and hit[1] > now:
            return hit[0]
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in ALGORITHMS:
                raise Unauthenticated(f"token algorithm {header.get('alg')!r} is not accepted")
            key = self._key(header.get("kid"))
            claims = jwt.decode(
                token,
                key=key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except jwt.PyJWTError as err:
            raise Unauthenticated(f"invalid token: {err}") from None
        principal = Principal.from_claims(claims)
        self._cache[token] = (principal, float(claims["exp"]))
        if len(self._cache) > self.CACHE_SIZE:
            self._cache.popitem(last=False)
        return principal

    def _key(self, kid: str | None) -> jwt.PyJWK:
        if self._url_client is not None:
            try:
                return self._url_client.get_signing_key(kid or "")
            except jwt.PyJWKClientError as err:
                raise Unauthenticated(f"invalid token: {err}") from None
        assert self._path is not None
        try:
            mtime = self._path.stat().st_mtime
        except OSError:
            raise Unauthenticated(f"no JWKS at {self._path}: cannot verify tokens") from None
        if mtime != self._keys_mtime:
            keyset = jwt.PyJWKSet.from_json(self._path.read_text())
            self._keys = {k.key_id or "": k for k in keyset.keys}
            self._keys_mtime = mtime
        key = self._keys.get(kid or "")
        if key is None:
            raise Unauthenticated(f"invalid token: unknown key id {kid!r}")
        return key

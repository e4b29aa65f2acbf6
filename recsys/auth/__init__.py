"""Who is calling, and may they: JWT verification, the access rules of the protos, tokens.

- `principal`: the verified caller (user, service, admin) and what it may act for;
- `verifier`: verifies a bearer token against the deployment's JWKS (a file or a URL);
- `policy`: each RPC's audience, read from the `(recsys.v1.access)` option of the protos, and
  the check a call must pass;
- `credentials`: the token a service sends when it calls another;
- `devissuer`: the local stack's development issuer (keys, JWKS, signed tokens).
"""

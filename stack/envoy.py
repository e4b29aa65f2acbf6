"""Render envoy/envoy.tmpl.yaml into .stack/envoy/envoy.yaml (string.Template, $NAME placeholders)."""

from __future__ import annotations

import string
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from .config import ROOT, StackConfig, StackError, replica_ports

TEMPLATE = ROOT / "envoy" / "envoy.tmpl.yaml"
DESCRIPTOR = ROOT / "envoy" / "recsys.pb"
OPENAPI = ROOT / "envoy" / "openapi.yaml"  # served at /openapi.yaml


def jwks_source(jwks: str, root: Path = ROOT) -> str:
    """jwt_authn's JWKS source for AUTH_JWKS: the file (local_jwks), or an https URL (remote_jwks,
    fetched through the `jwks` cluster of jwks_cluster)."""
    if "://" in jwks:
        return (
            f"remote_jwks: {{ http_uri: {{ uri: {jwks}, cluster: jwks, timeout: 5s }}, "
            "cache_duration: 600s, async_fetch: { fast_listener: false } }"
        )
    path = Path(jwks)
    return f"local_jwks: {{ filename: {path if path.is_absolute() else root / path} }}"


def jwks_cluster(jwks: str) -> str:
    """The cluster remote_jwks fetches an https AUTH_JWKS through (TLS, SNI = its host); "" for a file."""
    if "://" not in jwks:
        return ""
    url = urlsplit(jwks)
    if url.scheme != "https" or not url.hostname:
        raise StackError(f"envoy: AUTH_JWKS must be a file or an https URL, got {jwks!r}")
    host, port = url.hostname, url.port or 443
    return "\n".join(
        [
            "  - name: jwks",
            "    type: LOGICAL_DNS",
            "    connect_timeout: 5s",
            "    load_assignment:",
            "      cluster_name: jwks",
            "      endpoints:",
            "      - lb_endpoints:",
            "        - endpoint:",
            f"            address: {{ socket_address: {{ address: {host}, port_value: {port} }} }}",
            "    transport_socket:",
            "      name: envoy.transport_sockets.tls",
            "      typed_config:",
            '        "@type": "type.googleapis.com/'
            'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"',
            f"        sni: {host}",
        ]
    )


def endpoints(host: str, ports: list[int]) -> str:
    """The lb_endpoints of a cluster: one per replica's port (compose: one name, DNS gives each)."""
    return "\n".join(
        f"        - endpoint: {{ address: {{ socket_address: {{ address: {host}, port_value: {port} }} }} }}"
        for port in ports
    )


def values(cfg: StackConfig, descriptor: Path = DESCRIPTOR, openapi: Path = OPENAPI) -> dict[str, str]:
    """Every setting of .env (after environment overrides) is a placeholder, e.g. $WEB_PORT,
    plus $RECOMMENDER_ENDPOINTS / $EVENT_ENDPOINTS (one per replica), $PROTO_DESCRIPTOR, the
    absolute path of envoy/recsys.pb, $OPENAPI_DOCUMENT, of
    envoy/openapi.yaml, and $JWKS_SOURCE / $JWKS_CLUSTER (see jwks_source)."""
    for k in ("ENVOY_PORT", "ENVOY_ADMIN_PORT", "RECOMMENDER_PORT", "EVENT_PORT", "PROFILE_PORT"):
        cfg.port(k)  # fails naming the key when one is missing
    if not cfg.env.get("AUTH_JWKS"):
        raise StackError("envoy: AUTH_JWKS is not set (.env)")
    jwks = cfg.env["AUTH_JWKS"]
    return {
        **cfg.env,
        "PROTO_DESCRIPTOR": str(descriptor),
        "OPENAPI_DOCUMENT": str(openapi),
        "JWKS_SOURCE": jwks_source(jwks),
        "JWKS_CLUSTER": jwks_cluster(jwks),
        "RECOMMENDER_ENDPOINTS": endpoints(
            cfg.env["RECOMMENDER_HOST"], replica_ports(cfg, "RECOMMENDER_PORT", "RECOMMENDER_REPLICAS")
        ),
        "EVENT_ENDPOINTS": endpoints(
            cfg.env["EVENT_HOST"], replica_ports(cfg, "EVENT_PORT", "EVENT_REPLICAS")
        ),
    }


def render_text(cfg: StackConfig, descriptor: Path = DESCRIPTOR, openapi: Path = OPENAPI) -> str:
    try:
        return string.Template(TEMPLATE.read_text()).substitute(values(cfg, descriptor, openapi))
    except (KeyError, ValueError) as e:
        raise StackError(f"envoy: bad placeholder in {TEMPLATE}: {e}") from e


def render(cfg: StackConfig, validate: bool = True) -> Path:
    if not DESCRIPTOR.exists():
        raise StackError(f"envoy: {DESCRIPTOR} is missing; run `make proto`")
    out = cfg.dir / "envoy" / "envoy.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    text = render_text(cfg)
    if out.exists() and out.read_text() == text:
        return out
    tmp = out.with_suffix(".new.yaml")
    tmp.write_text(text)
    if validate:
        res = subprocess.run(
            [str(cfg.venv / "bin" / "envoy"), "--mode", "validate", "-c", str(tmp), "--log-level", "error"],
            capture_output=True,
            text=True,
        )
        if res.returncode != 0:
            raise StackError(f"envoy: rendered config {tmp} is invalid:\n{(res.stdout + res.stderr).strip()}")
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> None:
    """`python -m stack.envoy OUT [--descriptor PATH] [--openapi PATH]`: render only, for containers
    (compose.yaml), where the descriptor and the OpenAPI document sit at other paths and Envoy
    validates the config itself at start."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m stack.envoy", description=main.__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--descriptor", type=Path, default=DESCRIPTOR)
    parser.add_argument("--openapi", type=Path, default=OPENAPI)
    opts = parser.parse_args(argv)
    opts.out.write_text(render_text(StackConfig.load(), opts.descriptor, opts.openapi))


if __name__ == "__main__":
    main()

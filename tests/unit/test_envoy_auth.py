"""The gateway's JWKS source, rendered for a file (local stack, compose) and for an identity
provider's https jwks_uri (production), each checked by Envoy itself (`envoy --mode validate`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from recsys.auth.devissuer import ensure_keys
from stack.config import StackConfig, StackError
from stack.envoy import jwks_cluster, jwks_source, render_text

ROOT = Path(__file__).resolve().parents[2]
ENVOY = StackConfig.load().venv / "bin" / "envoy"


def _validate(text: str, path: Path) -> None:
    path.write_text(text)
    res = subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(path), "--log-level", "error"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def _provider(text: str) -> dict:
    config = yaml.safe_load(text)
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    (jwt,) = [f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.jwt_authn"]
    return jwt["typed_config"]["providers"]["recsys"]


def test_a_jwks_file_is_a_local_jwks(tmp_path: Path) -> None:
    _, jwks = ensure_keys(tmp_path / "auth")
    text = render_text(StackConfig.load({"AUTH_JWKS": str(jwks)}))
    provider = _provider(text)
    assert provider["local_jwks"] == {"filename": str(jwks)}
    assert provider["forward"] is True and provider["payload_in_metadata"] == "jwt_payload"
    _validate(text, tmp_path / "envoy.yaml")


def test_an_identity_providers_jwks_uri_is_fetched_over_tls(tmp_path: Path) -> None:
    uri = "https://idp.example.com:8443/.well-known/jwks.json"
    text = render_text(StackConfig.load({"AUTH_JWKS": uri, "AUTH_DEV_ISSUER": "false"}))
    provider = _provider(text)
    assert provider["remote_jwks"]["http_uri"] == {"uri": uri, "cluster": "jwks", "timeout": "5s"}
    clusters = {c["name"]: c for c in yaml.safe_load(text)["static_resources"]["clusters"]}
    tls = clusters["jwks"]["transport_socket"]["typed_config"]
    assert tls["sni"] == "idp.example.com"
    address = clusters["jwks"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {"address": "idp.example.com", "port_value": 8443}
    _validate(text, tmp_path / "envoy.yaml")


def test_a_plain_http_jwks_uri_is_refused() -> None:
    assert jwks_cluster("/some/file.json") == "" and jwks_source("/a.json").startswith("local_jwks")
    with pytest.raises(StackError, match="https"):
        jwks_cluster("http://idp.example.com/jwks.json")

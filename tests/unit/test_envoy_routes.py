"""The production gateway config (the local stack's and compose's: both are stack.envoy's render)
routes only the product: no route exists for benchmarks or tests."""

from __future__ import annotations

from pathlib import Path

import yaml

from recsys.auth.devissuer import ensure_keys
from stack.config import StackConfig
from stack.envoy import render_text


def _routes(tmp_path: Path) -> list[dict]:
    _, jwks = ensure_keys(tmp_path / "auth")
    config = yaml.safe_load(render_text(StackConfig.load({"AUTH_JWKS": str(jwks)})))
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return [r for host in hcm["route_config"]["virtual_hosts"] for r in host["routes"]]


def test_production_config_has_no_bench_route(tmp_path: Path) -> None:
    matches = [r["match"].get("path") or r["match"].get("prefix") for r in _routes(tmp_path)]
    assert matches, "no routes rendered"
    assert not [m for m in matches if "bench" in m], matches


def test_envoy_answers_itself_only_for_api_404s_and_the_openapi_document(tmp_path: Path) -> None:
    direct = {
        (r["match"].get("path") or r["match"].get("prefix"), r["direct_response"]["status"])
        for r in _routes(tmp_path)
        if "direct_response" in r
    }
    assert direct == {("/v1/", 404), ("/recsys.", 404), ("/openapi.yaml", 200)}

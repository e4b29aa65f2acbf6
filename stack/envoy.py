"""Render envoy/envoy.tmpl.yaml into .stack/envoy/envoy.yaml (string.Template, $NAME placeholders)."""

from __future__ import annotations

import string
import subprocess
from pathlib import Path

from .config import ROOT, StackConfig, StackError

TEMPLATE = ROOT / "envoy" / "envoy.tmpl.yaml"
DESCRIPTOR = ROOT / "envoy" / "recsys.pb"
OPENAPI = ROOT / "envoy" / "openapi.yaml"  # served at /openapi.yaml


def values(cfg: StackConfig, descriptor: Path = DESCRIPTOR, openapi: Path = OPENAPI) -> dict[str, str]:
    """Every setting of .env (after environment overrides) is a placeholder, e.g. $WEB_PORT,
    plus $PROTO_DESCRIPTOR, the absolute path of envoy/recsys.pb, $OPENAPI_DOCUMENT, of
    envoy/openapi.yaml."""
    for k in ("ENVOY_PORT", "ENVOY_ADMIN_PORT", "RECOMMENDER_PORT", "EVENT_PORT", "PROFILE_PORT"):
        cfg.port(k)  # fails naming the key when one is missing
    return {**cfg.env, "PROTO_DESCRIPTOR": str(descriptor), "OPENAPI_DOCUMENT": str(openapi)}


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
    (compose.yaml), where the descriptor and the OpenAPI document sit at other paths and Envoy validates the config itself at start."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m stack.envoy", description=main.__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--descriptor", type=Path, default=DESCRIPTOR)
    parser.add_argument("--openapi", type=Path, default=OPENAPI)
    opts = parser.parse_args(argv)
    opts.out.write_text(render_text(StackConfig.load(), opts.descriptor, opts.openapi))


if __name__ == "__main__":
    main()

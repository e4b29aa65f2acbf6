"""Regenerate the Python gRPC code, Envoy's descriptor set, the OpenAPI document and the web
client's TypeScript types from proto/.

`--deps DIR` instead copies the imported third-party protos (google/api, buf/validate) into DIR,
for `buf lint` (make lint).

One command for all four, so the code the services import, the descriptor Envoy's
transcoder reads, the document of its REST surface and the types the web client reads its
answers with can never come from different protos.
`--check` regenerates into a temporary folder and fails when the committed output differs
(CI runs it).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import google.api
import grpc_tools
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from stack.config import StackConfig  # noqa: E402  (after ROOT is importable)
from stack.install import GO_TOOLS  # noqa: E402

PROTO_DIR = ROOT / "proto"
OUT_PACKAGE = Path("recsys") / "v1"
# The request rules (buf.validate options, recsys.validation enforces them) come from
# protovalidate's validate.proto at the version the protovalidate wheel (pyproject.toml)
# implements; both pins move together. The BSR is out of reach here, so it comes from
# protovalidate's Go module (its zip checked against sum.golang.org by `go mod download`), not a
# copy in this repository. Its Python code, which the generated recsys/v1 code imports as
# `buf.validate.validate_pb2` (the wheel ships only its own runtime's code), is generated here too.
PROTOVALIDATE_MODULE = "github.com/bufbuild/protovalidate"
PROTOVALIDATE_VERSION = "v1.2.2"
VALIDATE_PROTO = "buf/validate/validate.proto"
VALIDATE_PACKAGE = Path("buf") / "validate"
GOOGLE_API_PROTOS = ["google/api/annotations.proto", "google/api/http.proto"]
DESCRIPTOR = Path("envoy") / "recsys.pb"
# Types Envoy's transcoder must know besides ours: the google.rpc.BadRequest that an
# INVALID_ARGUMENT carries in its status details (recsys.errors), printed in the REST body.
# In the descriptor set only: no code of ours or the web client's is generated from them.
DESCRIPTOR_EXTRAS = ["google/rpc/error_details.proto"]
# The OpenAPI 3 document of the REST surface: gnostic's protoc-gen-openapi (a pinned Go tool,
# stack/install.py) reads the google.api.http rules, so methods without one (the internal
# GetPreferenceVector) are not in it. Options: JSON as Envoy's transcoder prints it
# (lowerCamelCase, enums by name; 64-bit integers are strings anyway); a `default` response of
# google.rpc.Status on every operation. envoy/openapi.proto adds the title and bearer auth.
OPENAPI = Path("envoy") / "openapi.yaml"
OPENAPI_DOC = Path("envoy") / "openapi.proto"
OPENAPI_OPTS = ["naming=json", "enum_type=string", "default_response=true"]
GNOSTIC_MODULE = "github.com/google/gnostic"
# The web client's TypeScript types: protobuf-es's protoc-gen-es, pinned in web/package.json (its
# devDependencies, installed by `make install`'s npm install in web/). json_types=true adds an
# `XxxJson` type for every message and enum: the proto3 JSON Envoy's transcoder speaks, which
# web/src/api.ts imports as types only. Generated from the descriptor set above, for every file
# in it but the well-known types (the generated code imports those from @bufbuild/protobuf/wkt):
# a file's code imports the code of each file it imports, google/api/annotations.proto included.
WEB_GEN = Path("web") / "src" / "gen"
WEB_PLUGIN = Path("web") / "node_modules" / ".bin" / "protoc-gen-es"
ES_OPTS = ["target=ts", "json_types=true"]


def include_dirs() -> list[Path]:
    # googleapis-common-protos ships google/api/*.proto beside its generated code, and
    # grpcio-tools ships google/protobuf/*.proto; both are pinned by pyproject.toml.
    googleapis = Path(google.api.__path__[0]).parent.parent
    wkt = Path(grpc_tools.__file__).parent / "_proto"
    return [PROTO_DIR, googleapis, validate_protos(), wkt]


def go_module(module: str, version: str) -> Path:
    """The folder of a Go module in the Go module cache, downloaded first if need be."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    res = subprocess.run(
        [go, "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        cwd=StackConfig.load().dir,
    )
    if res.returncode != 0:
        raise SystemExit(f"go mod download {module}@{version} failed:\n{res.stdout}{res.stderr}")
    return Path(json.loads(res.stdout)["Dir"])


def gnostic_protos() -> Path:
    """gnostic's openapiv3/*.proto (for envoy/openapi.proto), at the version of the pinned
    protoc-gen-openapi."""
    return go_module(GNOSTIC_MODULE, GO_TOOLS["protoc-gen-openapi"].split("@")[1])


def validate_protos() -> Path:
    """The include folder holding buf/validate/validate.proto."""
    return go_module(PROTOVALIDATE_MODULE, PROTOVALIDATE_VERSION) / "proto" / "protovalidate"


def copy_deps(dest: Path) -> None:
    """The third-party protos ours import, for `buf lint` (which has no include path)."""
    sources = {p: Path(google.api.__path__[0]).parent.parent / p for p in GOOGLE_API_PROTOS}
    sources[VALIDATE_PROTO] = validate_protos() / VALIDATE_PROTO
    for rel, src in sources.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest / rel)


def generate_openapi(out: Path, protos: list[str]) -> None:
    plugin = StackConfig.load().bin / "protoc-gen-openapi"
    if not plugin.exists():
        raise SystemExit(f"{plugin} is missing; run `make install`")
    # The plugin is a Go program: it wants a Go package for every file, which nothing uses.
    go_packages = [f"M{p}=recsys.local/{Path(p).parent}" for p in [*protos, str(OPENAPI_DOC)]]
    args = [sys.executable, "-m", "grpc_tools.protoc"]
    args += [f"-I{d}" for d in [*include_dirs(), ROOT, gnostic_protos()]]
    args += [
        f"--plugin=protoc-gen-openapi={plugin}",
        f"--openapi_out={out / OPENAPI.parent}",
        f"--openapi_opt={','.join(OPENAPI_OPTS + go_packages)}",
        *protos,
        str(OPENAPI_DOC),
    ]
    subprocess.run(args, check=True, cwd=PROTO_DIR)


def web_plugin() -> Path:
    plugin = ROOT / WEB_PLUGIN
    if not plugin.exists():
        raise SystemExit(
            f"{WEB_PLUGIN} is missing: run `make install` (it runs `npm install` in web/, "
            "whose package.json pins @bufbuild/protoc-gen-es)"
        )
    return plugin


def generate_web_types(out: Path) -> None:
    plugin = web_plugin()
    descriptors = descriptor_pb2.FileDescriptorSet.FromString((out / DESCRIPTOR).read_bytes())
    files = [
        f.name
        for f in descriptors.file
        if not f.name.startswith("google/protobuf/") and f.name not in DESCRIPTOR_EXTRAS
    ]
    (out / WEB_GEN).mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "grpc_tools.protoc", f"--descriptor_set_in={out / DESCRIPTOR}"]
    args += [
        f"--plugin=protoc-gen-es={plugin}",
        f"--es_out={out / WEB_GEN}",
        f"--es_opt={','.join(ES_OPTS)}",
        *files,
    ]
    subprocess.run(args, check=True, cwd=PROTO_DIR)


def files_under(folder: Path) -> set[Path]:
    """The files of a generated folder, without Python's bytecode caches."""
    if not folder.exists():
        return set()
    return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def generate(out: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    (out / OUT_PACKAGE).mkdir(parents=True, exist_ok=True)
    (out / DESCRIPTOR.parent).mkdir(parents=True, exist_ok=True)
    protoc = [sys.executable, "-m", "grpc_tools.protoc", *[f"-I{d}" for d in include_dirs()]]
    # mypy-protobuf's plugins sit beside this interpreter, which need not be on PATH.
    bindir = Path(sys.executable).parent
    mypy = f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}"
    args = [
        *protoc,
        mypy,
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    # protoc warns that recsys/v1/rules.proto is an unused import of the files whose options use
    # its rules inside a message literal (`string = {[recsys.v1.no_nul]: true}`): a false alarm.
    subprocess.run(args, check=True, cwd=PROTO_DIR)
    # buf.validate's messages (no services, so no gRPC stubs).
    subprocess.run(
        [*protoc, mypy, f"--python_out={out}", f"--mypy_out={out}", VALIDATE_PROTO], check=True, cwd=PROTO_DIR
    )
    # Envoy's descriptor set: ours, everything they import, and the extras.
    args = [*protoc, "--include_imports", "--include_source_info", f"--descriptor_set_out={out / DESCRIPTOR}"]
    subprocess.run([*args, *protos, *DESCRIPTOR_EXTRAS], check=True, cwd=PROTO_DIR)
    generate_openapi(out, protos)
    generate_web_types(out)
    (out / OUT_PACKAGE / "__init__.py").write_text(
        '"""Generated by scripts/gen_proto.py from proto/recsys/v1; do not edit."""\n'
    )
    for package in (VALIDATE_PACKAGE.parent, VALIDATE_PACKAGE):
        (out / package / "__init__.py").write_text(
            f'"""Generated by scripts/gen_proto.py from {VALIDATE_PROTO} '
            f'({PROTOVALIDATE_MODULE}@{PROTOVALIDATE_VERSION}); do not edit."""\n'
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the output is stale")
    parser.add_argument("--deps", type=Path, metavar="DIR", help="copy the imported protos into DIR")
    opts = parser.parse_args()
    if opts.deps:
        copy_deps(opts.deps)
        return 0
    web_plugin()  # before anything is deleted or generated
    if not opts.check:
        for folder in (OUT_PACKAGE, VALIDATE_PACKAGE.parent, WEB_GEN):
            shutil.rmtree(ROOT / folder, ignore_errors=True)
        generate(ROOT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        stale = []
        for rel in [DESCRIPTOR, OPENAPI]:
            mine, fresh = ROOT / rel, Path(tmp) / rel
            if not mine.exists() or not filecmp.cmp(mine, fresh, shallow=False):
                stale.append(str(rel))
        # Generated folders: every file must match, and none may be left over.
        for folder in (OUT_PACKAGE, VALIDATE_PACKAGE.parent, WEB_GEN):
            mine_files, fresh_files = files_under(ROOT / folder), files_under(Path(tmp) / folder)
            for rel in sorted(mine_files | fresh_files):
                mine, fresh = ROOT / folder / rel, Path(tmp) / folder / rel
                if not mine.exists() or not fresh.exists() or not filecmp.cmp(mine, fresh, shallow=False):
                    stale.append(str(folder / rel))
    if stale:
        print("generated code is stale; run `make proto`:", *stale, sep="\n  ")
        return 1
    print("generated code is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The jars our Spark jobs add to pyspark's own, in one place: which, where, and how they arrive.

Two groups:
- `streaming`: the Kafka source. pyspark here is 4.3.0, but Maven Central has
  spark-sql-kafka-0-10 only up to 4.2.0 and its token-provider dependency only up to 4.0.0, so
  `spark.jars.packages` with the runtime's own version cannot resolve. We pin the newest
  published versions (the Kafka source's API is stable across these minors; the streaming
  tests run it) and their two runtime dependencies pyspark does not ship.
- `s3a`: an `s3a://` archive store (MinIO in compose): hadoop-aws matching pyspark's bundled
  Hadoop (pyspark/jars/hadoop-client-api-3.5.0.jar) and its compile/runtime dependencies as its
  POM (and hadoop-project 3.5.0's versions) names them. The AWS SDK bundle is ~690 MB, so only
  the image and s3a users fetch this group.

They live in SPARK_JARS_DIR/<group>/ and go on `spark.jars`. They are fetched ahead of time,
never by a running job in a deployment: the image's build runs `python -m batch.common.jars`
(Dockerfile) and sets SPARK_JARS_OFFLINE, so the streaming container starts with no network
access; on the local stack, the first start of a job fetches what is missing. Each download is
checked against the SHA-1 Maven Central publishes beside it before it is kept.

    python -m batch.common.jars DIR [GROUP ...]       # default: every group
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.request
from pathlib import Path

MAVEN_REPO = "https://repo1.maven.org/maven2"

GROUPS: dict[str, tuple[str, ...]] = {
    "streaming": (
        "org.apache.spark:spark-sql-kafka-0-10_2.13:4.2.0",
        "org.apache.spark:spark-token-provider-kafka-0-10_2.13:4.0.0",
        "org.apache.kafka:kafka-clients:3.9.2",
        "org.apache.commons:commons-pool2:2.13.1",
    ),
    "s3a": (
        "org.apache.hadoop:hadoop-aws:3.5.0",
        "software.amazon.awssdk:bundle:2.35.4",
        "software.amazon.s3.analyticsaccelerator:analyticsaccelerator-s3:1.3.1",
        "org.wildfly.openssl:wildfly-openssl:2.2.5.Final",
    ),
}


class MissingJars(RuntimeError):
    """A jar is not there and may not be downloaded (SPARK_JARS_OFFLINE), or its download failed."""


def jar_name(coordinate: str) -> str:
    _group, artifact, version = coordinate.split(":")
    return f"{artifact}-{version}.jar"


def jar_url(coordinate: str, repo: str = MAVEN_REPO) -> str:
    group, artifact, version = coordinate.split(":")
    return f"{repo}/{group.replace('.', '/')}/{artifact}/{version}/{jar_name(coordinate)}"


def jars_dir(environ: dict[str, str] | None = None) -> Path:
    """SPARK_JARS_DIR, else ${STACK_DIR}/jars (the stack gives its programs an absolute STACK_DIR)."""
    env = os.environ if environ is None else environ
    return Path(env.get("SPARK_JARS_DIR") or Path(env.get("STACK_DIR") or ".stack") / "jars")


def _offline(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get("SPARK_JARS_OFFLINE", "").lower() in ("1", "true", "yes")


def download(coordinate: str, directory: Path, repo: str = MAVEN_REPO) -> Path:
    """One jar into `directory`, kept only once its SHA-1 matches the repository's."""
    url = jar_url(coordinate, repo)
    target = directory / jar_name(coordinate)
    try:
        with urllib.request.urlopen(url + ".sha1", timeout=60) as resp:
            expected = resp.read().decode().split()[0].strip().lower()
        digest = hashlib.sha1(usedforsecurity=False)
        with tempfile.NamedTemporaryFile(dir=directory, delete=False, suffix=".part") as tmp:
            with urllib.request.urlopen(url, timeout=600) as resp:
                while chunk := resp.read(1 << 20):
                    digest.update(chunk)
                    tmp.write(chunk)
    except OSError as err:
        raise MissingJars(f"cannot download {coordinate} from {url}: {err}") from None
    if digest.hexdigest() != expected:
        Path(tmp.name).unlink()
        raise MissingJars(f"{url}: SHA-1 {digest.hexdigest()} is not the published {expected}")
    os.replace(tmp.name, target)
    return target


def ensure(
    group: str, directory: Path | None = None, environ: dict[str, str] | None = None, repo: str = MAVEN_REPO
) -> list[Path]:
    """The group's jars, downloading the missing ones unless SPARK_JARS_OFFLINE is set."""
    where = (directory or jars_dir(environ)) / group
    where.mkdir(parents=True, exist_ok=True)
    paths = []
    for coordinate in GROUPS[group]:
        path = where / jar_name(coordinate)
        if not path.is_file():
            if _offline(environ):
                raise MissingJars(
                    f"{path} is missing and SPARK_JARS_OFFLINE is set: the image's build fetches it "
                    f"(`python -m batch.common.jars {where.parent} {group}`)"
                )
            download(coordinate, where, repo)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    directory, groups = Path(args[0]), args[1:] or list(GROUPS)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        print(f"unknown group(s) {unknown}; known: {list(GROUPS)}", file=sys.stderr)
        return 2
    for group in groups:
        for path in ensure(group, directory, environ={}):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

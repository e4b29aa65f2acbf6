"""The Kafka connector jars for Spark, fetched once from Maven Central into the stack dir.

pyspark here is 4.3.0, but Maven Central has spark-sql-kafka-0-10 only up to 4.2.0 and its
token-provider dependency only up to 4.0.0, so `spark.jars.packages` with the runtime's own
version cannot resolve. We pin the newest published versions (the Kafka source's API is
stable across these minors; tests/unit/test_streaming* and the stack tests run it) and put
them on `spark.jars`. Bump CONNECTOR once the matching version is published.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

CONNECTOR = [
    "org.apache.spark:spark-sql-kafka-0-10_2.13:4.2.0",
    "org.apache.spark:spark-token-provider-kafka-0-10_2.13:4.0.0",
    "org.apache.kafka:kafka-clients:3.9.2",
    "org.apache.commons:commons-pool2:2.13.1",
]


def _jar_name(coordinate: str) -> str:
    _group, artifact, version = coordinate.split(":")
    return f"{artifact}-{version}.jar"


def ensure_jars(directory: Path) -> list[Path]:
    """The connector jars in `directory`, downloading the missing ones with Maven."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for coordinate in CONNECTOR:
        path = directory / _jar_name(coordinate)
        if not path.is_file():
            mvn = shutil.which("mvn")
            if mvn is None:
                raise RuntimeError(f"{path.name} is missing and mvn is not installed to fetch {coordinate}")
            subprocess.run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "dependency:copy",
                    f"-Dartifact={coordinate}",
                    f"-DoutputDirectory={directory}",
                ],
                check=True,
            )
        paths.append(path)
    return paths

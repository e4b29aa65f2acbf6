"""batch.common.jars: fetched ahead of time, verified, and never downloaded where that is off."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from batch.common import jars

COORD = "org.example:thing_2.13:1.0"


def _repo(tmp_path: Path, content: bytes, published_sha1: str | None = None) -> str:
    """A Maven-layout repository on disk, served through file:// like Maven Central over https."""
    where = tmp_path / "repo" / "org" / "example" / "thing_2.13" / "1.0"
    where.mkdir(parents=True)
    (where / "thing_2.13-1.0.jar").write_bytes(content)
    sha1 = published_sha1 or hashlib.sha1(content, usedforsecurity=False).hexdigest()
    (where / "thing_2.13-1.0.jar.sha1").write_text(f"{sha1}  thing_2.13-1.0.jar\n")
    return (tmp_path / "repo").as_uri()


def test_jar_url_follows_the_maven_layout() -> None:
    assert jars.jar_url("org.apache.kafka:kafka-clients:3.9.2") == (
        "https://repo1.maven.org/maven2/org/apache/kafka/kafka-clients/3.9.2/kafka-clients-3.9.2.jar"
    )


def test_a_download_is_kept_only_when_its_sha1_matches(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    path = jars.download(COORD, out, _repo(tmp_path, b"the jar"))
    assert path.read_bytes() == b"the jar"

    bad = tmp_path / "bad"
    bad.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(jars.MissingJars, match="SHA-1"):
        jars.download(COORD, bad, _repo(other, b"tampered", published_sha1="0" * 40))
    assert list(bad.iterdir()) == []  # nothing half-written or unverified is left


def test_offline_names_the_missing_jar_and_the_build_step(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(jars.GROUPS, "test", (COORD,))
    env = {"SPARK_JARS_DIR": str(tmp_path), "SPARK_JARS_OFFLINE": "true"}
    with pytest.raises(jars.MissingJars) as err:
        jars.ensure("test", environ=env)
    assert "thing_2.13-1.0.jar" in str(err.value) and "python -m batch.common.jars" in str(err.value)
    (tmp_path / "test" / "thing_2.13-1.0.jar").write_bytes(b"jar")
    assert jars.ensure("test", environ=env) == [tmp_path / "test" / "thing_2.13-1.0.jar"]


def test_the_image_fetches_every_group_at_build_time_and_runs_offline() -> None:
    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    assert "python -m batch.common.jars /opt/recsys/jars streaming s3a" in dockerfile
    assert "SPARK_JARS_DIR=/opt/recsys/jars" in dockerfile
    assert "SPARK_JARS_OFFLINE=true" in dockerfile

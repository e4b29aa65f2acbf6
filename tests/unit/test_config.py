from pathlib import Path

import pytest

from recsys.config import MissingSettingError, Settings, merged_env


def test_env_file_defaults_and_references(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=5432\nURL=postgresql://h:${PORT}/db\n# comment\n\n")
    env = merged_env({}, env_file)
    assert env["URL"] == "postgresql://h:5432/db"


def test_environment_wins_and_moves_derived_urls(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=5432\nURL=postgresql://h:${PORT}/db\n")
    env = merged_env({"PORT": "6000"}, env_file)
    assert env["URL"] == "postgresql://h:6000/db"


def test_repository_defaults_load() -> None:
    settings = Settings.from_env({})
    assert settings.kafka_topic == "movie-events"
    assert settings.database_url.endswith(":5432/recsys")
    assert settings.cache_ttl_seconds == 3600


def test_missing_required_setting_names_it(tmp_path: Path) -> None:
    with pytest.raises(MissingSettingError, match="DATABASE_URL"):
        Settings.from_env({}, tmp_path / "absent.env")


def test_bad_integer_names_the_key() -> None:
    with pytest.raises(MissingSettingError, match="RECOMMENDER_PORT"):
        Settings.from_env({"RECOMMENDER_PORT": "fifty"})


def test_trace_sample_ratio_from_env_and_checked() -> None:
    assert Settings.from_env({"TRACE_SAMPLE_RATIO": "0.25"}).trace_sample_ratio == 0.25
    assert Settings.from_env({"TRACE_SAMPLE_RATIO": ""}).trace_sample_ratio == 1.0
    with pytest.raises(MissingSettingError, match="TRACE_SAMPLE_RATIO"):
        Settings.from_env({"TRACE_SAMPLE_RATIO": "2"})
    with pytest.raises(MissingSettingError, match="TRACE_SAMPLE_RATIO"):
        Settings.from_env({"TRACE_SAMPLE_RATIO": "often"})

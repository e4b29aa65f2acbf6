"""`recsys-import` against a real PostgreSQL: both MovieLens sets with exact row counts,
idempotent re-import, malformed files that import nothing, the synthetic demo data.

The tests use a database of their own (created through the stack's server and migrated with
the project's migrations), so exact counts hold whatever the shared `recsys` database holds.
`IMPORT_TEST_SERVER_URL=postgresql://user@host:port/db` points them at another server instead
of the stack (for developing without the full stack).

MovieLens is read from `MOVIELENS_DIR` (default `../shared/data/movielens` relative to the
repository). When it is missing the MovieLens tests are skipped, or fail when `CI=true`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from alembic import command

from recsys.importer.loader import LoadError, load
from recsys.importer.model import Dataset, Interaction, Movie
from recsys.migrate import alembic_config
from tests.integration.scratch import SERVER_OVERRIDE, scratch_database

pytestmark = [] if SERVER_OVERRIDE else [pytest.mark.stack]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# sha256 of the files the exact counts below belong to (../shared/data/movielens/README.md).
SHA256 = {
    "ml-100k/u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "ml-100k/u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "ml-latest-small/ratings.csv": "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
    "ml-latest-small/movies.csv": "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def import_db(server_url: str) -> Iterator[str]:
    """A migrated database of this module's own."""
    with scratch_database(server_url, f"recsys_import_test_{os.getpid()}") as url:
        command.upgrade(alembic_config(url), "head")
        yield url


@pytest.fixture
def db(import_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The module's database, emptied of what the importer writes; an empty archive of the
    test's own (ARCHIVE_URI, which the importer files history older than 48 h into)."""
    with psycopg.connect(import_db) as conn:
        conn.execute("TRUNCATE movies, rt_user_interactions, user_profiles, user_items")
    monkeypatch.setenv("ARCHIVE_URI", str(tmp_path / "archive"))
    return import_db


@pytest.fixture(scope="module")
def movielens_dir() -> Path:
    raw = os.environ.get("MOVIELENS_DIR") or "../shared/data/movielens"
    path = Path(raw) if Path(raw).is_absolute() else (ROOT / raw).resolve()
    missing = [name for name in SHA256 if not (path / name).is_file()]
    if missing:
        message = (
            f"MovieLens data not found: {', '.join(str(path / m) for m in missing)} "
            "(set MOVIELENS_DIR to the folder holding ml-100k/ and ml-latest-small/; "
            "download them from https://grouplens.org/datasets/movielens/)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI=true requires it", pytrace=False)
        pytest.skip(message)
    for name, expected in SHA256.items():
        digest = hashlib.sha256((path / name).read_bytes()).hexdigest()
        if digest != expected:
            pytest.fail(f"{path / name} is not the expected MovieLens file (sha256 {digest})", pytrace=False)
    return path


# --------------------------------------------------------------------------- helpers


def recsys_import(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, as the stack and users run it."""
    return subprocess.run(
        [str(BIN / "recsys-import"), *args, "--database-url", url],
        capture_output=True,
        text=True,
        timeout=300,
    )


EVENT_COLUMNS = ["event_id", "user_id", "movie_id", "event_type", "rating", "occurred_at"]


def archived(start: datetime | None = None) -> pd.DataFrame:
    """The rows of the test's archive (ARCHIVE_URI), read with pyarrow, not with our reader."""
    root = Path(os.environ["ARCHIVE_URI"])
    parts = sorted(root.glob("date=*/*.parquet"))
    if not parts:
        return pd.DataFrame(columns=[*EVENT_COLUMNS, "date"])
    frames = [pd.read_parquet(f).assign(date=f.parent.name.removeprefix("date=")) for f in parts]
    out = pd.concat(frames, ignore_index=True)
    out["occurred_at"] = pd.to_datetime(out["occurred_at"], utc=True)
    return out


def all_events(url: str) -> pd.DataFrame:
    """Every imported event: PostgreSQL's recent window and the archive, each event once."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"SELECT {', '.join(EVENT_COLUMNS)} FROM rt_user_interactions").fetchall()
    recent = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    recent["occurred_at"] = pd.to_datetime(recent["occurred_at"], utc=True)
    both = pd.concat([recent, archived()[EVENT_COLUMNS]], ignore_index=True)
    assert not both["event_id"].duplicated().any(), "an event is both archived and in PostgreSQL"
    return both


def counts(url: str) -> tuple[int, int, int]:
    """movies, events (PostgreSQL + archive), profiles."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM movies), (SELECT count(*) FROM user_profiles)"
        ).fetchone()
    assert row is not None
    return row[0], len(all_events(url)), row[1]


def check_window_and_archive(url: str) -> None:
    """PostgreSQL holds only the last 48 h; every archived row sits in its UTC day's partition."""
    cutoff = datetime.now(UTC) - timedelta(hours=48, minutes=5)
    with psycopg.connect(url) as conn:
        old = conn.execute("SELECT count(*) FROM rt_user_interactions WHERE occurred_at < %s", (cutoff,))
        assert old.fetchone() == (0,)
    rows = archived()
    assert (rows["occurred_at"].dt.strftime("%Y-%m-%d") == rows["date"]).all()


def check_derived_columns(url: str) -> None:
    """popularity = interactions per movie; profile counts = interactions / ratings per user,
    over the whole history (the archive too)."""
    events = all_events(url)
    check_window_and_archive(url)
    with psycopg.connect(url) as conn:
        popularity = dict(conn.execute("SELECT movie_id, popularity FROM movies").fetchall())
        profiles = {
            r[0]: (r[1], r[2])
            for r in conn.execute("SELECT user_id, interaction_count, rating_count FROM user_profiles")
        }
        movie_ids = {r[0] for r in conn.execute("SELECT movie_id FROM movies")}
    per_movie = events.groupby("movie_id").size().to_dict()
    assert popularity == {m: per_movie.get(m, 0) for m in popularity}
    per_user = events.groupby("user_id").agg(n=("event_id", "size"), r=("rating", "count"))
    assert profiles == {int(u): (int(x.n), int(x.r)) for u, x in per_user.iterrows()}
    assert set(events["movie_id"]) <= movie_ids


# --------------------------------------------------------------------------- MovieLens


def test_movielens_100k(db: str, movielens_dir: Path) -> None:
    src = movielens_dir / "ml-100k"
    started = time.monotonic()
    done = recsys_import(db, "movielens", "--format", "100k", str(src))
    first_seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert counts(db) == (1_682, 100_000, 943)
    # All of it is history (1997-98): filed into the archive, none into the 48 h window.
    assert "1682 movies (1682 new" in done.stdout
    assert "100000 interactions (0 new in the recent window, 100000 new in the archive)" in done.stdout
    assert len(archived()) == 100_000 and archived()["date"].nunique() > 200
    check_derived_columns(db)

    # Popularity and profiles against an independent count of u.data.
    rows = [line.split("\t") for line in src.joinpath("u.data").read_text().splitlines()]
    per_movie = Counter(int(r[1]) for r in rows)
    per_user = Counter(int(r[0]) for r in rows)
    with psycopg.connect(db) as conn:
        assert dict(
            conn.execute("SELECT movie_id, popularity FROM movies WHERE popularity > 0").fetchall()
        ) == (per_movie)
        assert dict(conn.execute("SELECT user_id, rating_count FROM user_profiles").fetchall()) == per_user
        movies = {r[0]: r[1:] for r in conn.execute("SELECT movie_id, title, year, genres FROM movies")}
    events = all_events(db).set_index("event_id")
    one = events.loc["ml100k:196:242"]
    event = (one.user_id, one.movie_id, one.event_type, one.rating, one.occurred_at.to_pydatetime())
    types = sorted(events["event_type"].unique())
    assert movies[1] == ("Toy Story", 1995, ["Animation", "Children's", "Comedy"])
    assert movies[543] == ("Misérables, Les", 1995, ["Drama", "Musical"])  # latin-1 in u.item
    assert movies[267] == ("unknown", None, [])
    assert movies[1412][:2] == ("Land Before Time III: The Time of the Great Giving (V)", 1995)
    assert event == (196, 242, "rate", 3.0, datetime.fromtimestamp(881250949, UTC))
    assert types == ["rate"]

    # Again, format auto-detected: nothing new, same counts.
    started = time.monotonic()
    again = recsys_import(db, "movielens", str(src))
    assert again.returncode == 0, again.stderr
    assert "(0 new, 0 updated)" in again.stdout
    assert "(0 new in the recent window, 0 new in the archive)" in again.stdout
    assert counts(db) == (1_682, 100_000, 943)
    check_derived_columns(db)
    print(f"\nml-100k: first import {first_seconds:.1f} s, re-import {time.monotonic() - started:.1f} s")


def test_movielens_latest_small(db: str, movielens_dir: Path) -> None:
    src = movielens_dir / "ml-latest-small"
    started = time.monotonic()
    done = recsys_import(db, "movielens", "--format", "latest-small", str(src))
    first_seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert counts(db) == (9_742, 100_836, 610)
    check_derived_columns(db)

    events = all_events(db)
    halves = events.groupby("rating").size().to_dict()
    span = (events["occurred_at"].min().to_pydatetime(), events["occurred_at"].max().to_pydatetime())
    with psycopg.connect(db) as conn:
        movies = {r[0]: r[1:] for r in conn.execute("SELECT movie_id, title, year, genres FROM movies")}
        no_year = conn.execute("SELECT count(*) FROM movies WHERE year IS NULL").fetchone()
        no_genre = conn.execute("SELECT count(*) FROM movies WHERE genres = '{}'").fetchone()
        crlf = conn.execute(
            "SELECT count(*) FROM movies "
            "WHERE title ~ '[\\r\\n]' OR array_to_string(genres, '|') ~ '[\\r\\n]'"
        ).fetchone()
    assert halves == {
        0.5: 1_370, 1.0: 2_811, 1.5: 1_791, 2.0: 7_551, 2.5: 5_550,
        3.0: 20_047, 3.5: 13_136, 4.0: 26_818, 4.5: 8_551, 5.0: 13_211,
    }  # fmt: skip
    assert movies[1] == ("Toy Story", 1995, ["Adventure", "Animation", "Children", "Comedy", "Fantasy"])
    assert movies[11][:2] == ("American President, The", 1995)  # quoted field with a comma
    assert movies[171749] == ("Death Note: Desu nôto", 2006, [])  # UTF-8, a year range, no genres
    assert movies[40697] == ("Babylon 5", None, ["Sci-Fi"])
    expected_no_genre = src.joinpath("movies.csv").read_text().count(",(no genres listed)\n")
    assert no_year == (12,) and no_genre == (expected_no_genre,) and expected_no_genre > 0
    assert crlf == (0,)
    assert span == (datetime.fromtimestamp(828124615, UTC), datetime.fromtimestamp(1537799250, UTC))

    started = time.monotonic()
    again = recsys_import(db, "movielens", str(src))
    assert again.returncode == 0, again.stderr
    assert counts(db) == (9_742, 100_836, 610)
    check_derived_columns(db)
    print(
        f"\nml-latest-small: first import {first_seconds:.1f} s, re-import {time.monotonic() - started:.1f} s"
    )


def test_full_size_file_malformed_on_its_last_line_imports_nothing(
    db: str, movielens_dir: Path, tmp_path: Path
) -> None:
    src = tmp_path / "ml-100k"
    shutil.copytree(movielens_dir / "ml-100k", src)
    data = src / "u.data"
    data.chmod(0o644)
    lines = data.read_text().splitlines()
    lines[-1] = lines[-1].split("\t", 1)[0] + "\t1\t7\t881250949"
    data.write_text("\n".join(lines) + "\n")
    done = recsys_import(db, "movielens", str(src))
    assert done.returncode == 1
    assert f"{data}:100000: rating must be an integer 1..5, got '7'" in done.stderr
    assert counts(db) == (0, 0, 0)


# --------------------------------------------------------------------------- malformed input


def _write_100k(d: Path, item_lines: list[str], data_lines: list[str]) -> Path:
    d.mkdir()
    genres = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
              "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
              "Thriller", "War", "Western"]  # fmt: skip
    (d / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(genres)) + "\n")
    (d / "u.item").write_bytes(("\n".join(item_lines) + "\n").encode("latin-1"))
    (d / "u.data").write_text("\n".join(data_lines) + "\n")
    return d


def _write_small(d: Path, movie_lines: list[str], rating_lines: list[str]) -> Path:
    d.mkdir()
    (d / "movies.csv").write_bytes("\r\n".join(["movieId,title,genres", *movie_lines, ""]).encode())
    (d / "ratings.csv").write_bytes(
        "\r\n".join(["userId,movieId,rating,timestamp", *rating_lines, ""]).encode()
    )
    return d


FLAGS = "|".join(["0"] * 8 + ["1"] + ["0"] * 10)  # Drama
ITEMS = [f"1|Toy Story (1995)|01-Jan-1995||http://x|{FLAGS}", f"2|Misérables, Les (1995)|||x|{FLAGS}"]
DATA = ["1\t1\t5\t874724710", "1\t2\t4\t874724711", "2\t1\t3\t874724712"]
MOVIES = ["1,Toy Story (1995),Comedy", '11,"American President, The (1995)",Comedy|Drama']
RATINGS = ["1,1,4.0,964982703", "1,11,3.5,964982704", "2,1,0.5,964982705"]


@pytest.mark.parametrize(
    ("fmt", "files", "bad_file", "line", "reason"),
    [
        ("100k", (ITEMS, [*DATA, "2\t2\t9\t874724713"]), "u.data", 4,
         "rating must be an integer 1..5, got '9'"),
        ("100k", (ITEMS, [*DATA[:1], "1\t2\t4", *DATA[2:]]), "u.data", 2,
         "expected 4 tab-separated fields (user, item, rating, timestamp), got 3"),
        ("100k", ([ITEMS[0], "2|Heat (1995)|||x|0|0"], DATA), "u.item", 2,
         "expected 24 fields separated by '|', got 7"),
        ("100k", ([ITEMS[0], ITEMS[1].replace("2|", "two|", 1)], DATA), "u.item", 2,
         "movie id must be a positive integer, got 'two'"),
        ("latest-small", (MOVIES, [*RATINGS[:2], "2,1,6.0,964982705"]), "ratings.csv", 4,
         "rating must be 0.5..5.0 in steps of 0.5, got '6.0'"),
        ("latest-small", (MOVIES, [*RATINGS, "3,1,4.0"]), "ratings.csv", 5,
         "expected 4 fields (userId, movieId, rating, timestamp), got 3"),
        ("latest-small", ([MOVIES[0], "11x,Heat (1995),Action"], RATINGS[:1]), "movies.csv", 3,
         "movieId must be a positive integer, got '11x'"),
        ("latest-small", (MOVIES, [*RATINGS, "u7,1,4.0,964982706"]), "ratings.csv", 5,
         "userId must be a positive integer, got 'u7'"),
        ("latest-small", (MOVIES, [*RATINGS, "3,99,4.0,964982706"]), "ratings.csv", 5,
         "movie 99 is not in movies.csv"),
    ],
)  # fmt: skip
def test_malformed_file_names_file_line_and_reason_and_imports_nothing(
    db: str,
    tmp_path: Path,
    fmt: str,
    files: tuple[list[str], list[str]],
    bad_file: str,
    line: int,
    reason: str,
) -> None:
    # Something is there already: a failed import must leave it exactly as it was.
    assert (
        recsys_import(db, "synthetic", "--movies", "50", "--users", "5", "--interactions", "100").returncode
        == 0
    )
    before = counts(db)
    write = _write_100k if fmt == "100k" else _write_small
    src = write(tmp_path / "bad", *files)
    done = recsys_import(db, "movielens", str(src))
    assert done.returncode == 1, done.stdout
    assert f"{src / bad_file}:{line}: {reason}" in done.stderr
    assert "nothing was imported" in done.stderr
    assert counts(db) == before

    # The same directory once fixed imports fine (the files were the only problem).
    fixed = write(tmp_path / "good", *((ITEMS, DATA) if fmt == "100k" else (MOVIES, RATINGS)))
    ok = recsys_import(db, "movielens", str(fixed))
    assert ok.returncode == 0, ok.stderr


def test_database_failure_mid_load_rolls_everything_back(db: str) -> None:
    """Movies are written before interactions; a refused interaction undoes the movies too."""
    when = datetime.now(UTC)
    dataset = Dataset(
        "broken",
        [Movie(1, "A", 2000, ("Drama",)), Movie(2, "B", None, ())],
        [
            Interaction("x:1", 1, 1, "rate", 4.0, when),
            Interaction("x:2", 1, 2, "purchase", None, when),  # not an event type the schema allows
        ],
    )
    with pytest.raises(LoadError, match="rolled back"):
        load(dataset, db)
    assert counts(db) == (0, 0, 0)


def test_unmigrated_database_is_reported(server_url: str) -> None:
    with scratch_database(server_url, f"recsys_import_empty_{os.getpid()}") as url:
        done = recsys_import(url, "synthetic", "--movies", "5", "--users", "2", "--interactions", "4")
    assert done.returncode == 1
    assert "run recsys-migrate first" in done.stderr


# --------------------------------------------------------------------------- synthetic


def test_synthetic_default_demo_data(db: str) -> None:
    started = time.monotonic()
    done = recsys_import(db, "synthetic")
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert counts(db) == (2_000, 50_000, 500)
    # ~12 s of it is the Spark session that files the 12 older days into the archive.
    assert seconds < 60, f"the default demo import took {seconds:.1f} s"
    check_derived_columns(db)
    now = datetime.now(UTC)
    events = all_events(db)
    span = (events["occurred_at"].min(), events["occurred_at"].max())
    rated = (events["rating"].notna().sum(), (events["event_type"] == "rate").sum())
    with psycopg.connect(db) as conn:
        popular = conn.execute("SELECT count(*) FROM movies WHERE popularity > 0").fetchone()
        in_window = conn.execute("SELECT count(*) FROM rt_user_interactions").fetchone()
    assert now - timedelta(days=14, minutes=5) <= span[0] and span[1] <= now
    assert set(events["event_type"]) == {"view", "click", "watch", "rate", "like", "dislike"}
    assert rated[0] == rated[1] > 0
    assert popular is not None and popular[0] > 1_000
    # 2 of the 14 days are in the window, the rest archived.
    assert in_window is not None and 0.08 * 50_000 < in_window[0] < 0.2 * 50_000

    again = recsys_import(db, "synthetic")
    assert again.returncode == 0, again.stderr
    assert counts(db) == (2_000, 50_000, 500)
    print(f"\nsynthetic default: first import {seconds:.1f} s")


def test_synthetic_custom_sizes(db: str) -> None:
    args = ["synthetic", "--movies", "300", "--users", "40", "--interactions", "2500", "--seed", "9"]
    assert recsys_import(db, *args).returncode == 0
    assert counts(db) == (300, 2_500, 40)
    assert recsys_import(db, *args).returncode == 0
    assert counts(db) == (300, 2_500, 40)
    check_derived_columns(db)

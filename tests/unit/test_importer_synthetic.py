"""The synthetic demo catalogue: exact sizes, determinism, plausible values, real taste signal."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from recsys.domain.events import EVENT_TYPES
from recsys.importer import synthetic
from recsys.importer.cli import build_parser, main

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo() -> synthetic.Dataset:
    return synthetic.generate(now=NOW)


def test_default_sizes(demo: synthetic.Dataset) -> None:
    assert len(demo.movies) == synthetic.DEFAULT_MOVIES == 2_000
    assert len(demo.interactions) == synthetic.DEFAULT_INTERACTIONS == 50_000
    assert demo.user_ids == set(range(1, synthetic.DEFAULT_USERS + 1))
    assert [m.movie_id for m in demo.movies] == list(range(1, 2_001))


@pytest.mark.parametrize(
    ("movies", "users", "interactions"), [(300, 50, 3_000), (5, 3, 9), (1, 1, 1), (40, 7, 0)]
)
def test_exact_sizes(movies: int, users: int, interactions: int) -> None:
    ds = synthetic.generate(movies=movies, users=users, interactions=interactions, seed=3, now=NOW)
    assert (len(ds.movies), len(ds.interactions)) == (movies, interactions)
    assert len({i.event_id for i in ds.interactions}) == interactions


def test_too_many_interactions_is_refused() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        synthetic.generate(movies=10, users=2, interactions=1_000, now=NOW)


def test_deterministic_per_seed() -> None:
    sizes = {"movies": 300, "users": 50, "interactions": 3_000}
    first = synthetic.generate(**sizes, now=NOW)
    again = synthetic.generate(**sizes, now=NOW)
    assert again.movies == first.movies and again.interactions == first.interactions
    other = synthetic.generate(**sizes, seed=7, now=NOW)
    assert other.movies != first.movies
    # A later run keeps the ids (so re-importing is idempotent); only the clock moves.
    later = synthetic.generate(**sizes, now=NOW + timedelta(days=1))
    assert [i.event_id for i in later.interactions] == [i.event_id for i in first.interactions]


def test_values_are_plausible(demo: synthetic.Dataset) -> None:
    assert len({m.title for m in demo.movies}) == len(demo.movies)
    assert all(1930 <= (m.year or 0) <= NOW.year for m in demo.movies)
    assert all(1 <= len(m.genres) <= 3 and set(m.genres) <= set(synthetic.GENRE_NAMES) for m in demo.movies)
    kinds = Counter(i.event_type for i in demo.interactions)
    assert set(kinds) == set(EVENT_TYPES)
    assert kinds["rate"] > len(demo.interactions) / 3
    for i in demo.interactions:
        assert (i.rating is not None) == (i.event_type == "rate")
        assert NOW - timedelta(days=14) <= i.occurred_at < NOW
        assert i.event_id == f"synth-42:{i.user_id}:{i.movie_id}"
    ratings = np.array([i.rating for i in demo.interactions if i.rating is not None])
    assert set(np.unique(ratings * 2)) <= set(range(1, 11))
    assert 3.0 < ratings.mean() < 4.0
    per_user = Counter(i.user_id for i in demo.interactions)
    assert min(per_user.values()) >= 5 and max(per_user.values()) > 3 * np.median(list(per_user.values()))


def test_tastes_follow_genres(demo: synthetic.Dataset) -> None:
    """Collaborative filtering has something to learn: what a user picks and how they rate it
    follows the genres they liked before."""
    genres = {m.movie_id: set(m.genres) for m in demo.movies}
    base = Counter(g for m in demo.movies for g in m.genres)
    lifts, gaps = [], []
    by_user: dict[int, list] = {}
    for i in demo.interactions:
        by_user.setdefault(i.user_id, []).append(i)
    for events in by_user.values():
        if len(events) < 20:
            continue
        half = len(events) // 2
        top = Counter(g for e in events[:half] for g in genres[e.movie_id]).most_common(1)[0][0]
        later = events[half:]
        share = sum(top in genres[e.movie_id] for e in later) / len(later)
        lifts.append(share / (base[top] / len(demo.movies)))
        rated = [e for e in events if e.rating is not None]
        fav = [e.rating for e in rated if top in genres[e.movie_id]]
        other = [e.rating for e in rated if top not in genres[e.movie_id]]
        if len(fav) >= 3 and len(other) >= 3:
            gaps.append(np.mean(fav) - np.mean(other))
    assert np.median(lifts) > 1.5  # users keep coming back to their genres
    assert np.mean(gaps) > 0.2  # and rate them higher


def test_cli_arguments() -> None:
    opts = build_parser().parse_args(["synthetic", "--movies", "10", "--seed", "5"])
    assert (opts.movies, opts.users, opts.interactions, opts.seed) == (10, 500, 50_000, 5)
    opts = build_parser().parse_args(
        ["movielens", "--format", "100k", "/d", "--database-url", "postgresql://x/y"]
    )
    assert (opts.format, str(opts.directory), opts.database_url) == ("100k", "/d", "postgresql://x/y")
    for bad in (["synthetic", "--movies", "0"], ["movielens", "--format", "1m", "/d"], ["movielens"], []):
        with pytest.raises(SystemExit) as info:
            build_parser().parse_args(bad)
        assert info.value.code == 2


def test_cli_reports_malformed_input_without_touching_the_database(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "movies.csv").write_bytes(b"movieId,title,genres\r\n1,A (1995),Drama\r\n")
    (tmp_path / "ratings.csv").write_bytes(b"userId,movieId,rating,timestamp\r\n1,1,9,1\r\n")
    # The URL points nowhere: validation fails before any connection is attempted.
    code = main(["movielens", str(tmp_path), "--database-url", "postgresql://nobody@127.0.0.1:1/none"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{tmp_path / 'ratings.csv'}:2: rating must be 0.5..5.0 in steps of 0.5, got '9'" in err
    assert "nothing was imported" in err


def test_cli_reports_unreachable_database(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["synthetic", "--movies", "5", "--users", "2", "--interactions", "4",
                 "--database-url", "postgresql://nobody@127.0.0.1:1/none"])  # fmt: skip
    assert code == 1
    assert "cannot connect to the database" in capsys.readouterr().err

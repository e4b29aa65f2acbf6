"""The Movie message of the API, built in one place from a row or a candidate."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from recsys.v1 import movie_pb2

# The `movies` columns a Movie message shows.
MOVIE_FIELDS = ("movie_id", "title", "year", "genres", "popularity")


def movie_message(
    movie_id: int | None,
    title: str | None,
    year: int | None,
    genres: Iterable[str] | None,
    popularity: int | None,
    retired: bool = False,
) -> movie_pb2.Movie:
    """A Movie; a NULL column (a movie missing from the catalogue, an unknown year) is the
    field's zero value."""
    return movie_pb2.Movie(
        movie_id=movie_id or 0,
        title=title or "",
        year=year or 0,
        genres=genres or (),
        popularity=popularity or 0,
        retired=retired,
    )


def movie_from_row(row: Mapping[str, Any]) -> movie_pb2.Movie:
    """A Movie from a database row holding MOVIE_FIELDS (a LEFT JOIN may leave them NULL) and,
    where the query selects it, `retired` (the serving tiers never select a retired movie)."""
    movie_id, title, year, genres, popularity = (row[f] for f in MOVIE_FIELDS)
    return movie_message(movie_id, title, year, genres, popularity, retired=bool(row.get("retired")))

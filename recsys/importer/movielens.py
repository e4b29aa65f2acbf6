"""Parsers for MovieLens 100K (`u.item`, `u.data`, `u.genre`) and latest-small (`movies.csv`,
`ratings.csv`).

Each reader validates every line before it returns, and raises `ImportFormatError`
(`file:line: reason`) at the first malformed one; nothing touches the database here.
Formats (see ../shared/data/movielens/README.md):

- 100K: `u.item` is latin-1, `|`-separated, 5 fields then one 0/1 flag per genre of
  `u.genre` (`name|index`); `u.data` is `user<TAB>item<TAB>rating<TAB>unix time`, ratings 1..5.
- latest-small: RFC 4180 CSV in UTF-8 with CRLF line ends and a header; `movies.csv` is
  `movieId,title,genres` with `|`-separated genres or "(no genres listed)"; `ratings.csv` is
  `userId,movieId,rating,timestamp` with half-star ratings 0.5..5.0.

Titles end in "(year)" (sometimes "(1995) (V)", a range "(2006-2007)" with an en dash, trailing blanks, or
no year at all); `split_title` separates the year. Ratings become `rate` events whose
event id is derived from (user, movie), so importing twice changes nothing.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from recsys.domain.events import RATE, RATING_MAX, RATING_MIN
from recsys.importer.model import Dataset, ImportFormatError, Interaction, Movie

T = TypeVar("T")

FORMATS = ("100k", "latest-small")

# The genre order of u.genre as GroupLens distributes it; used when u.genre is absent.
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
# Genre names that mean "no genre" in the catalogue.
NO_GENRE = {"unknown", "(no genres listed)"}

_TITLE_YEAR = re.compile(
    r"^(?P<name>.*?)\s*"
    r"\((?P<year>\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?)?\)"  # (1995), (2006-2007), (2006-)
    r"(?P<suffix>(?:\s*\([A-Za-z]{1,3}\))*)"  # (V), (TV) after the year
    r"\s*$"
)
_MIN_YEAR, _MAX_YEAR = 1870, 2100


def split_title(raw: str) -> tuple[str, int | None]:
    """ "Toy Story (1995)" -> ("Toy Story", 1995); a title without a year keeps it None."""
    text = raw.strip()
    m = _TITLE_YEAR.match(text)
    if not m or not m.group("name"):
        return text, None
    year = int(m.group("year"))
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        return text, None
    name = m.group("name") + m.group("suffix")
    return name.strip(), year


def detect_format(directory: Path) -> str:
    """'100k' or 'latest-small', from the files present in `directory`."""
    if (directory / "u.item").is_file() and (directory / "u.data").is_file():
        return "100k"
    if (directory / "movies.csv").is_file() and (directory / "ratings.csv").is_file():
        return "latest-small"
    if not directory.is_dir():
        raise ImportFormatError(directory, None, "no such directory")
    raise ImportFormatError(
        directory,
        None,
        "cannot tell the MovieLens format: expected u.item and u.data (100k) "
        "or movies.csv and ratings.csv (latest-small); pass --format",
    )


def read(directory: Path, fmt: str | None = None, progress: bool = False) -> Dataset:
    """Parse and validate one MovieLens directory."""
    directory = Path(directory)
    fmt = fmt or detect_format(directory)
    if fmt == "100k":
        return read_100k(directory, progress)
    if fmt == "latest-small":
        return read_latest_small(directory, progress)
    raise ValueError(f"unknown MovieLens format {fmt!r}; expected one of {', '.join(FORMATS)}")


# --------------------------------------------------------------------------- helpers


def _positive_int(text: str, what: str, path: Path, line: int) -> int:
    s = text.strip()
    if not s.isascii() or not s.isdigit() or int(s) <= 0:
        raise ImportFormatError(path, line, f"{what} must be a positive integer, got {text!r}")
    return int(s)


def _timestamp(text: str, path: Path, line: int) -> datetime:
    s = text.strip()
    if not s.isascii() or not s.isdigit():
        raise ImportFormatError(path, line, f"timestamp must be a non-negative integer, got {text!r}")
    try:
        return datetime.fromtimestamp(int(s), tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ImportFormatError(path, line, f"timestamp out of range: {text!r}") from None


def _half_star(text: str, path: Path, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not RATING_MIN <= value <= RATING_MAX or value * 2 != int(value * 2):
        raise ImportFormatError(
            path, line, f"rating must be {RATING_MIN}..{RATING_MAX} in steps of 0.5, got {text!r}"
        )
    return value


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ImportFormatError(path, None, "file not found") from None
    except OSError as exc:
        raise ImportFormatError(path, None, f"cannot read: {exc.strerror}") from None


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) without its LF / CRLF; blank lines are skipped."""
    for number, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if line.strip():
            yield number, line


def _progress(items: Iterable[T], desc: str, total: int, on: bool) -> Iterable[T]:
    if not on:
        return items
    bar: Iterable[T] = tqdm(items, desc=desc, total=total, unit=" rows", unit_scale=True, leave=False)
    return bar


def _check_ratings(
    interactions: list[Interaction], lines: list[int], movie_ids: set[int], path: Path, catalogue: str
) -> None:
    seen: dict[str, int] = {}
    for event, line in zip(interactions, lines, strict=True):
        if event.movie_id not in movie_ids:
            raise ImportFormatError(path, line, f"movie {event.movie_id} is not in {catalogue}")
        first = seen.setdefault(event.event_id, line)
        if first != line:
            raise ImportFormatError(
                path,
                line,
                f"user {event.user_id} rated movie {event.movie_id} twice (first on line {first})",
            )


# --------------------------------------------------------------------------- 100K


def _first_sighting(seen: dict[int, int], movie_id: int, label: str, path: Path, line_no: int) -> None:
    """Record where `movie_id` first appears; a second appearance is a format error."""
    if movie_id in seen:
        raise ImportFormatError(
            path, line_no, f"duplicate {label} {movie_id} (first on line {seen[movie_id]})"
        )
    seen[movie_id] = line_no


def read_100k_genres(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        return ML100K_GENRES
    names: list[str] = []
    for line_no, line in _lines(_read_bytes(path).decode("latin-1")):
        parts = line.split("|")
        if len(parts) != 2:
            raise ImportFormatError(path, line_no, f"expected 2 fields 'name|index', got {len(parts)}")
        name, index = parts[0].strip(), parts[1].strip()
        if not name:
            raise ImportFormatError(path, line_no, "empty genre name")
        if index != str(len(names)):
            raise ImportFormatError(path, line_no, f"genre index must be {len(names)}, got {parts[1]!r}")
        names.append(name)
    if not names:
        raise ImportFormatError(path, None, "no genres")
    return tuple(names)


def read_100k_items(path: Path, genres: tuple[str, ...]) -> list[Movie]:
    n_fields = 5 + len(genres)
    movies: list[Movie] = []
    seen: dict[int, int] = {}
    # u.item is latin-1 (it is not valid UTF-8); every byte decodes.
    for line_no, line in _lines(_read_bytes(path).decode("latin-1")):
        fields = line.split("|")
        if len(fields) != n_fields:
            raise ImportFormatError(
                path, line_no, f"expected {n_fields} fields separated by '|', got {len(fields)}"
            )
        movie_id = _positive_int(fields[0], "movie id", path, line_no)
        _first_sighting(seen, movie_id, "movie id", path, line_no)
        title, year = split_title(fields[1])
        if not title:
            raise ImportFormatError(path, line_no, "empty title")
        if year is None:
            # Fall back to the release date, e.g. "01-Jan-1995".
            m = re.search(r"(\d{4})\s*$", fields[2])
            year = int(m.group(1)) if m and _MIN_YEAR <= int(m.group(1)) <= _MAX_YEAR else None
        flags = fields[5:]
        names: list[str] = []
        for genre, flag in zip(genres, flags, strict=True):
            if flag not in ("0", "1"):
                raise ImportFormatError(path, line_no, f"genre flag for {genre} must be 0 or 1, got {flag!r}")
            if flag == "1" and genre not in NO_GENRE:
                names.append(genre)
        movies.append(Movie(movie_id, title, year, tuple(names)))
    if not movies:
        raise ImportFormatError(path, None, "no movies")
    return movies


def read_100k_ratings(path: Path, movie_ids: set[int], progress: bool = False) -> list[Interaction]:
    text = _read_bytes(path).decode("latin-1")
    interactions: list[Interaction] = []
    lines: list[int] = []
    rows = _progress(_lines(text), f"parse {path.name}", text.count("\n"), progress)
    for line_no, line in rows:
        fields = line.split("\t")
        if len(fields) != 4:
            raise ImportFormatError(
                path,
                line_no,
                f"expected 4 tab-separated fields (user, item, rating, timestamp), got {len(fields)}",
            )
        user = _positive_int(fields[0], "user id", path, line_no)
        item = _positive_int(fields[1], "item id", path, line_no)
        if fields[2].strip() not in ("1", "2", "3", "4", "5"):
            raise ImportFormatError(path, line_no, f"rating must be an integer 1..5, got {fields[2]!r}")
        rating = float(fields[2])
        when = _timestamp(fields[3], path, line_no)
        interactions.append(Interaction(f"ml100k:{user}:{item}", user, item, RATE, rating, when))
        lines.append(line_no)
    if not interactions:
        raise ImportFormatError(path, None, "no ratings")
    _check_ratings(interactions, lines, movie_ids, path, "u.item")
    return interactions


def read_100k(directory: Path, progress: bool = False) -> Dataset:
    genres = read_100k_genres(directory / "u.genre")
    movies = read_100k_items(directory / "u.item", genres)
    interactions = read_100k_ratings(directory / "u.data", {m.movie_id for m in movies}, progress)
    return Dataset("movielens-100k", movies, interactions)


# --------------------------------------------------------------------------- latest-small


def _csv_rows(path: Path, header: list[str]) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of a UTF-8 RFC 4180 file (CRLF or LF) after checking its header."""
    try:
        text = _read_bytes(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        line = _read_bytes(path)[: exc.start].count(b"\n") + 1
        raise ImportFormatError(path, line, f"not valid UTF-8 ({exc.reason})") from None
    reader = csv.reader(text.splitlines(keepends=True), strict=True)
    try:
        first = next(reader, None)
        if first is None:
            raise ImportFormatError(path, 1, f"empty file, expected the header {','.join(header)}")
        if [h.strip().lstrip("\ufeff") for h in first] != header:
            raise ImportFormatError(path, 1, f"expected the header {','.join(header)}, got {','.join(first)}")
        start = reader.line_num
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                start = reader.line_num
                continue
            # A quoted field may span lines; report the line the record starts on.
            yield start + 1, row
            start = reader.line_num
    except csv.Error as exc:
        raise ImportFormatError(path, reader.line_num, f"bad CSV: {exc}") from None


def read_latest_small_movies(path: Path) -> list[Movie]:
    movies: list[Movie] = []
    seen: dict[int, int] = {}
    for line_no, row in _csv_rows(path, ["movieId", "title", "genres"]):
        if len(row) != 3:
            raise ImportFormatError(
                path, line_no, f"expected 3 fields (movieId, title, genres), got {len(row)}"
            )
        movie_id = _positive_int(row[0], "movieId", path, line_no)
        _first_sighting(seen, movie_id, "movieId", path, line_no)
        title, year = split_title(row[1])
        if not title:
            raise ImportFormatError(path, line_no, "empty title")
        genres = [g.strip() for g in row[2].split("|")] if row[2].strip() else []
        if any(not g for g in genres):
            raise ImportFormatError(path, line_no, f"empty genre name in {row[2]!r}")
        movies.append(Movie(movie_id, title, year, tuple(g for g in genres if g not in NO_GENRE)))
    if not movies:
        raise ImportFormatError(path, None, "no movies")
    return movies


def read_latest_small_ratings(path: Path, movie_ids: set[int], progress: bool = False) -> list[Interaction]:
    interactions: list[Interaction] = []
    lines: list[int] = []
    total = max(0, _read_bytes(path).count(b"\n") - 1) if progress else 0
    rows = _progress(
        _csv_rows(path, ["userId", "movieId", "rating", "timestamp"]), f"parse {path.name}", total, progress
    )
    for line_no, row in rows:
        if len(row) != 4:
            raise ImportFormatError(
                path, line_no, f"expected 4 fields (userId, movieId, rating, timestamp), got {len(row)}"
            )
        user = _positive_int(row[0], "userId", path, line_no)
        movie = _positive_int(row[1], "movieId", path, line_no)
        rating = _half_star(row[2], path, line_no)
        when = _timestamp(row[3], path, line_no)
        interactions.append(Interaction(f"mlsmall:{user}:{movie}", user, movie, RATE, rating, when))
        lines.append(line_no)
    if not interactions:
        raise ImportFormatError(path, None, "no ratings")
    _check_ratings(interactions, lines, movie_ids, path, "movies.csv")
    return interactions


def read_latest_small(directory: Path, progress: bool = False) -> Dataset:
    movies = read_latest_small_movies(directory / "movies.csv")
    interactions = read_latest_small_ratings(
        directory / "ratings.csv", {m.movie_id for m in movies}, progress
    )
    return Dataset("movielens-latest-small", movies, interactions)

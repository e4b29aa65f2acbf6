"""MovieLens parsers: title/year split, latin-1, CRLF, genres, and `file:line: reason` errors.

Small hand-written files in the real formats; the full datasets are exercised by
tests/integration/test_import.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from recsys.importer import movielens as ml
from recsys.importer.model import ImportFormatError

GENRE_FILE = "".join(f"{g}|{i}\n" for i, g in enumerate(ml.ML100K_GENRES)) + "\n"


def flags(*names: str) -> str:
    return "|".join("1" if g in names else "0" for g in ml.ML100K_GENRES)


def write_100k(d: Path, items: list[str] | None = None, data: list[str] | None = None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "u.genre").write_text(GENRE_FILE)
    if items is None:
        kids = "Children's"
        items = [
            "1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|"
            + flags("Animation", kids, "Comedy"),
            f"2|Misérables, Les (1995)|01-Jan-1995||http://x|{flags('Drama', 'Musical')}",
            f"3|unknown||||{flags('unknown')}",
            f"4|Two Friends (1986) |26-Apr-1986||http://x|{flags('Drama')}",
            f"5|Nameless Thing|02-Mar-1997||http://x|{flags('Horror')}",
        ]
    if data is None:
        data = ["1\t1\t5\t874724710", "1\t2\t3\t874724711", "2\t1\t4\t893286638", "2\t3\t1\t880000000"]
    # u.item is latin-1 as distributed: "é" is the single byte 0xE9.
    (d / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    (d / "u.data").write_text("\n".join(data) + "\n")
    return d


def write_small(d: Path, movies: list[str] | None = None, ratings: list[str] | None = None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    if movies is None:
        movies = [
            "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy",
            '11,"American President, The (1995)",Comedy|Drama|Romance',
            "40697,Babylon 5,Sci-Fi",
            "171749,Death Note: Desu nôto (2006\u20132007),(no genres listed)",
            "27008,From Dusk Till Dawn 2: Texas Blood Money (1999) ,Comedy|Crime|Horror",
        ]
    if ratings is None:
        ratings = [
            "1,1,4.0,964982703",
            "1,11,0.5,964981247",
            "2,40697,5.0,1537799250",
            "2,171749,3.5,828124615",
        ]
    # CRLF line ends and a final CRLF, UTF-8, as GroupLens distributes them.
    (d / "movies.csv").write_bytes(("\r\n".join(["movieId,title,genres", *movies]) + "\r\n").encode())
    (d / "ratings.csv").write_bytes(
        ("\r\n".join(["userId,movieId,rating,timestamp", *ratings]) + "\r\n").encode()
    )
    return d


@pytest.mark.parametrize(
    ("raw", "title", "year"),
    [
        ("Toy Story (1995)", "Toy Story", 1995),
        ("Two Friends (1986) ", "Two Friends", 1986),
        ("American President, The (1995)", "American President, The", 1995),
        ("Scream of Stone (Schrei aus Stein) (1991)", "Scream of Stone (Schrei aus Stein)", 1991),
        ("Land Before Time III: The Time of the Great Giving (1995) (V)",
         "Land Before Time III: The Time of the Great Giving (V)", 1995),
        ("Death Note: Desu nôto (2006\u20132007)", "Death Note: Desu nôto", 2006),
        ("Babylon 5", "Babylon 5", None),
        ("unknown", "unknown", None),
        ("1984 (1984)", "1984", 1984),
        ("(500) Days of Summer (2009)", "(500) Days of Summer", 2009),
        ("Blade Runner 2049 (2017)", "Blade Runner 2049", 2017),
        ("(1995)", "(1995)", None),
    ],
)  # fmt: skip
def test_split_title(raw: str, title: str, year: int | None) -> None:
    assert ml.split_title(raw) == (title, year)


def test_100k_items_latin1_genres_and_years(tmp_path: Path) -> None:
    ds = ml.read(write_100k(tmp_path / "ml-100k"))
    assert ds.source == "movielens-100k"
    by_id = {m.movie_id: m for m in ds.movies}
    assert by_id[1].title == "Toy Story" and by_id[1].year == 1995
    assert by_id[1].genres == ("Animation", "Children's", "Comedy")  # u.genre order and names
    assert by_id[2].title == "Misérables, Les"  # decoded from latin-1
    assert by_id[3].title == "unknown" and by_id[3].year is None and by_id[3].genres == ()
    assert by_id[4].title == "Two Friends" and by_id[4].year == 1986
    assert by_id[5].year == 1997  # no year in the title: taken from the release date


def test_100k_ratings(tmp_path: Path) -> None:
    ds = ml.read(write_100k(tmp_path))
    first = ds.interactions[0]
    assert first.event_id == "ml100k:1:1" and first.event_type == "rate" and first.rating == 5.0
    assert first.occurred_at == datetime(1997, 9, 20, 3, 5, 10, tzinfo=UTC)
    assert ds.user_ids == {1, 2}
    assert [i.rating for i in ds.interactions] == [5.0, 3.0, 4.0, 1.0]


def test_100k_uses_u_genre_names(tmp_path: Path) -> None:
    d = write_100k(tmp_path)
    (d / "u.genre").write_text("".join(f"G{i}|{i}\n" for i in range(19)))
    ds = ml.read(d, "100k")
    assert ds.movies[0].genres == ("G3", "G4", "G5")


def test_latest_small_crlf_quoting_and_genres(tmp_path: Path) -> None:
    ds = ml.read(write_small(tmp_path / "small"))
    assert ds.source == "movielens-latest-small"
    by_id = {m.movie_id: m for m in ds.movies}
    assert by_id[1].genres == ("Adventure", "Animation", "Children", "Comedy", "Fantasy")
    assert by_id[11].title == "American President, The" and by_id[11].year == 1995
    assert by_id[40697].year is None and by_id[40697].title == "Babylon 5"
    assert by_id[171749].genres == () and by_id[171749].year == 2006
    assert by_id[171749].title == "Death Note: Desu nôto"
    assert by_id[27008].title == "From Dusk Till Dawn 2: Texas Blood Money"
    assert all("\r" not in m.title and all("\r" not in g for g in m.genres) for m in ds.movies)
    assert [i.rating for i in ds.interactions] == [4.0, 0.5, 5.0, 3.5]
    assert ds.interactions[0].event_id == "mlsmall:1:1"
    assert ds.interactions[2].occurred_at == datetime.fromtimestamp(1537799250, UTC)


def test_latest_small_accepts_lf_too(tmp_path: Path) -> None:
    d = write_small(tmp_path)
    for name in ("movies.csv", "ratings.csv"):
        (d / name).write_bytes((d / name).read_bytes().replace(b"\r\n", b"\n"))
    assert len(ml.read(d).movies) == 5


def test_detect_format(tmp_path: Path) -> None:
    assert ml.detect_format(write_100k(tmp_path / "a")) == "100k"
    assert ml.detect_format(write_small(tmp_path / "b")) == "latest-small"
    with pytest.raises(ImportFormatError, match="cannot tell the MovieLens format"):
        ml.detect_format(tmp_path)
    with pytest.raises(ImportFormatError, match="no such directory"):
        ml.detect_format(tmp_path / "missing")


def expect_error(d: Path, file: str, line: int | None, reason: str, fmt: str | None = None) -> None:
    with pytest.raises(ImportFormatError) as info:
        ml.read(d, fmt)
    err = info.value
    assert (err.path.name, err.line) == (file, line), str(err)
    assert reason in err.reason, str(err)
    where = f"{d / file}:{line}" if line is not None else f"{d / file}"
    assert str(err) == f"{where}: {err.reason}"


@pytest.mark.parametrize(
    ("items", "data", "file", "line", "reason"),
    [
        (None, ["1\t1\t5\t874724710", "1\t2\tsix\t874724711"], "u.data", 2, "rating must be an integer 1..5"),
        (None, ["1\t1\t0\t874724710"], "u.data", 1, "rating must be an integer 1..5"),
        (None, ["1\t1\t5\t874724710", "1\t2\t3"], "u.data", 2, "expected 4 tab-separated fields"),
        (None, ["x1\t1\t5\t874724710"], "u.data", 1, "user id must be a positive integer, got 'x1'"),
        (None, ["1\t1.5\t5\t874724710"], "u.data", 1, "item id must be a positive integer"),
        (None, ["1\t1\t5\tyesterday"], "u.data", 1, "timestamp must be a non-negative integer"),
        (None, ["1\t1\t5\t874724710", "1\t99\t3\t874724711"], "u.data", 2, "movie 99 is not in u.item"),
        (None, ["1\t1\t5\t1", "2\t1\t5\t1", "1\t1\t4\t2"], "u.data", 3,
         "rated movie 1 twice (first on line 1)"),
        (["1|Toy Story (1995)|01-Jan-1995||http://x|0|0"], None, "u.item", 1, "expected 24 fields"),
        ([f"1|A (1995)|||x|{flags('Drama')}", f"one|B (1995)|||x|{flags('Drama')}"], None, "u.item", 2,
         "movie id must be a positive integer, got 'one'"),
        ([f"1|A (1995)|||x|{flags('Drama')}", f"1|B (1995)|||x|{flags('Drama')}"], None, "u.item", 2,
         "duplicate movie id 1 (first on line 1)"),
        ([f"1|A (1995)|||x|{flags('Drama').replace('1', '2')}"], None, "u.item", 1,
         "genre flag for Drama must be 0 or 1, got '2'"),
        ([f"1| |||x|{flags('Drama')}"], None, "u.item", 1, "empty title"),
    ],
)  # fmt: skip
def test_100k_malformed(
    tmp_path: Path, items: list[str] | None, data: list[str] | None, file: str, line: int, reason: str
) -> None:
    expect_error(write_100k(tmp_path, items, data), file, line, reason)


def test_100k_missing_file_and_bad_genre_file(tmp_path: Path) -> None:
    d = write_100k(tmp_path)
    (d / "u.genre").write_text("unknown|0\nAction|2\n")
    expect_error(d, "u.genre", 2, "genre index must be 1")
    (d / "u.genre").unlink()
    (d / "u.data").unlink()
    expect_error(d, "u.data", None, "file not found", fmt="100k")


@pytest.mark.parametrize(
    ("movies", "ratings", "file", "line", "reason"),
    [
        (None, ["1,1,4.0,964982703", "1,11,4.2,964981247"], "ratings.csv", 3,
         "rating must be 0.5..5.0 in steps"),
        (None, ["1,1,0.0,964982703"], "ratings.csv", 2, "rating must be 0.5..5.0"),
        (None, ["1,1,5.5,964982703"], "ratings.csv", 2, "rating must be 0.5..5.0"),
        (None, ["1,1,nan,964982703"], "ratings.csv", 2, "rating must be 0.5..5.0"),
        (None, ["1,1,4.0"], "ratings.csv", 2, "expected 4 fields"),
        (None, ["1,1,4.0,964982703", "1,abc,4.0,964982703"], "ratings.csv", 3,
         "movieId must be a positive integer, got 'abc'"),
        (None, ["1,1,4.0,964982703", "1,2,4.0,964982703"], "ratings.csv", 3, "movie 2 is not in movies.csv"),
        (["1,Toy Story (1995)"], None, "movies.csv", 2, "expected 3 fields"),
        (["1,Toy Story (1995),Comedy", "-4,Heat (1995),Action"], None, "movies.csv", 3,
         "movieId must be a positive integer, got '-4'"),
        (["1,A (1995),Comedy", "1,B (1995),Action"], None, "movies.csv", 3, "duplicate movieId 1"),
        (['1,"Toy Story (1995),Comedy'], None, "movies.csv", 2, "bad CSV"),
        (["1,Toy Story (1995),Comedy||Drama"], None, "movies.csv", 2, "empty genre name"),
    ],
)  # fmt: skip
def test_latest_small_malformed(
    tmp_path: Path, movies: list[str] | None, ratings: list[str] | None, file: str, line: int, reason: str
) -> None:
    if ratings is None:
        ratings = ["1,1,4.0,964982703"]
    expect_error(write_small(tmp_path, movies, ratings), file, line, reason)


def test_latest_small_bad_header_and_encoding(tmp_path: Path) -> None:
    d = write_small(tmp_path)
    (d / "ratings.csv").write_bytes(b"user,movie,rating,timestamp\r\n1,1,4.0,964982703\r\n")
    expect_error(d, "ratings.csv", 1, "expected the header userId,movieId,rating,timestamp")
    d = write_small(tmp_path / "enc")
    (d / "movies.csv").write_bytes(
        b"movieId,title,genres\r\n1,A (1995),Comedy\r\n2,Mis\xe9rables (1995),Drama\r\n"
    )
    expect_error(d, "movies.csv", 3, "not valid UTF-8")


def test_line_numbers_count_physical_lines_of_quoted_fields(tmp_path: Path) -> None:
    # A quoted title spanning two lines: the next record starts on line 4.
    d = write_small(tmp_path, ['1,"Two\r\nLines (1995)",Drama', "x,B (1995),Drama"])
    expect_error(d, "movies.csv", 4, "movieId must be a positive integer")

"""Pure logic of the serving cascade: candidates, filters, reasons, cached values, page tokens.

Nothing here touches the network, so the unit tests cover it on plain values.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

POPULAR_REASON = "Popular now"
# Ratings at or above this count as "liked" for reasons; likes and watches always do.
LIKED_RATING = 3.5
POSITIVE_EVENTS = frozenset({"like", "watch"})


@dataclass(frozen=True)
class Candidate:
    """One movie the cascade may serve, with the movie fields a response needs."""

    movie_id: int
    score: float
    title: str
    year: int
    genres: tuple[str, ...]
    popularity: int
    reason: str = ""


def apply_filters(
    candidates: Iterable[Candidate], exclude: frozenset[int], genres: frozenset[str]
) -> list[Candidate]:
    """The candidates not excluded and, when genres are given, of at least one of them."""
    return [
        c for c in candidates if c.movie_id not in exclude and (not genres or not genres.isdisjoint(c.genres))
    ]


def is_liked(event_type: str, rating: float | None) -> bool:
    """Whether an interaction says the user liked the movie."""
    if event_type in POSITIVE_EVENTS:
        return True
    return event_type == "rate" and rating is not None and rating >= LIKED_RATING


def taste_genres(genre_lists: Iterable[Sequence[str]], top: int = 3) -> list[str]:
    """The genres a user interacts with most, most first (ties by name)."""
    counts = Counter(g for genres in genre_lists for g in genres)
    return [g for g, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]


def taste_reason(movie_genres: Sequence[str], user_genres: Sequence[str]) -> str:
    """'Matches your taste (A, B)' with the movie's genres the user likes, else its own first two."""
    shared = [g for g in user_genres if g in movie_genres][:2]
    shown = shared or list(movie_genres[:2])
    return f"Matches your taste ({', '.join(shown)})" if shown else "Matches your taste"


def explain(
    candidates: Sequence[Candidate],
    embeddings: Sequence[np.ndarray[Any, Any] | None],
    liked: Sequence[tuple[str, np.ndarray[Any, Any]]],
    user_genres: Sequence[str],
) -> list[Candidate]:
    """Give each candidate a reason: the liked movie its embedding is closest to, else genres.

    `embeddings[i]` belongs to `candidates[i]`; `liked` holds (title, embedding) of movies
    the user liked. A liked movie explains a candidate only with a positive inner product.
    """
    reasons = [taste_reason(c.genres, user_genres) for c in candidates]
    usable = [i for i, e in enumerate(embeddings) if e is not None]
    if liked and usable:
        items = np.stack([np.asarray(embeddings[i], dtype=np.float32) for i in usable])
        likes = np.stack([np.asarray(e, dtype=np.float32) for _, e in liked])
        sims = items @ likes.T
        best = sims.argmax(axis=1)
        for row, i in enumerate(usable):
            if sims[row, best[row]] > 0:
                reasons[i] = f"Because you liked {liked[best[row]][0]}"
    return [
        Candidate(c.movie_id, c.score, c.title, c.year, c.genres, c.popularity, r)
        for c, r in zip(candidates, reasons, strict=True)
    ]


@dataclass(frozen=True)
class CachedList:
    """A user's cached, unfiltered candidate list and what it was computed from.

    `model_version` and `profile_updated_at` let a reader drop an entry whose invalidation
    was missed; `exhaustive` says the list holds every candidate there was (fewer than asked),
    so filters that leave few items need not fall through to the database.
    """

    model_version: str
    profile_updated_at: float
    exhaustive: bool
    items: list[Candidate]

    def encode(self) -> bytes:
        return json.dumps(
            {
                "m": self.model_version,
                "u": self.profile_updated_at,
                "x": self.exhaustive,
                "i": [
                    [c.movie_id, round(c.score, 6), c.title, c.year, c.genres, c.popularity, c.reason]
                    for c in self.items
                ],
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> CachedList | None:
        """The cached list, or None for a value this version cannot read."""
        try:
            data = json.loads(raw)
            return cls(
                model_version=str(data["m"]),
                profile_updated_at=float(data["u"]),
                exhaustive=bool(data["x"]),
                items=[
                    Candidate(int(i[0]), float(i[1]), i[2], int(i[3]), tuple(i[4]), int(i[5]), i[6])
                    for i in data["i"]
                ],
            )
        except (ValueError, KeyError, TypeError, IndexError):
            return None


# --- ListMovies page tokens -------------------------------------------------------------
# A token is the keyset position after the last movie of a page (popularity DESC, movie_id)
# plus a fingerprint of the query it belongs to, so a token reused with other filters fails.


class BadPageToken(ValueError):
    """A page token that this service did not issue for this query."""


def filters_fingerprint(query: str, genre: str) -> str:
    return hashlib.sha256(f"{query}\x00{genre}".encode()).hexdigest()[:12]


def encode_page_token(popularity: int, movie_id: int, query: str, genre: str) -> str:
    raw = json.dumps([popularity, movie_id, filters_fingerprint(query, genre)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(token: str, query: str, genre: str) -> tuple[int, int]:
    """(popularity, movie_id) of the last movie of the previous page."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        popularity, movie_id, fingerprint = json.loads(raw)
        popularity, movie_id = int(popularity), int(movie_id)
    except (ValueError, TypeError, binascii.Error):
        raise BadPageToken("is not a page token of this service") from None
    if fingerprint != filters_fingerprint(query, genre):
        raise BadPageToken("belongs to a different query or genre")
    return popularity, movie_id


def title_patterns(query: str) -> list[str]:
    """ILIKE patterns, one per word of the query, longest word first (it drives the index)."""
    words = sorted({w.lower() for w in query.split()}, key=lambda w: (-len(w), w))
    escaped = [w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for w in words]
    return [f"%{w}%" for w in escaped]

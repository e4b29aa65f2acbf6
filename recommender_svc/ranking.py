"""Pure logic of the serving cascade: candidates, filters, reasons, cached values, page tokens.

Nothing here touches the network, so the unit tests cover it on plain values.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import struct
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from recsys.domain.movies import movie_message
from recsys.v1 import movie_pb2
from recsys.v1 import recommender_service_pb2 as pb

POPULAR_REASON = "Popular now"


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

    def movie(self) -> movie_pb2.Movie:
        return movie_message(self.movie_id, self.title, self.year, self.genres, self.popularity)


def apply_filters(
    candidates: Iterable[Candidate], exclude: frozenset[int], genres: frozenset[str]
) -> list[Candidate]:
    """The candidates not excluded and, when genres are given, of at least one of them."""
    return [
        c for c in candidates if c.movie_id not in exclude and (not genres or not genres.isdisjoint(c.genres))
    ]


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

    Stored in the binary layout of `CachedEntry` (see there), which a cache hit without
    filters serves without decoding a single item.
    """

    model_version: str
    profile_updated_at: float
    exhaustive: bool
    items: list[Candidate]

    def encode(self) -> bytes:
        # Scores are rounded to 6 decimals (what the JSON format of v1 stored), so an answer
        # from the cache is the same whichever path builds it.
        scores = [round(c.score, 6) for c in self.items]
        body = bytearray()
        ends = array("I")
        for position, (c, score) in enumerate(zip(self.items, scores, strict=True)):
            item = pb.RecommendedMovie(
                movie=c.movie(),
                score=score,
                tier=pb.TIER_CACHE,
                position=position,
                reason=c.reason,
            )
            # Encoded as field `items` (2, length-delimited) of GetRecommendationsResponse:
            # concatenating a prefix of these to the encoded response header is a valid
            # encoding of the whole response.
            encoded = item.SerializeToString()
            body += _ITEMS_TAG
            body += _varint(len(encoded))
            body += encoded
            ends.append(len(body))
        version = self.model_version.encode()
        return b"".join(
            [
                _MAGIC,
                _HEAD.pack(self.exhaustive, self.profile_updated_at, len(self.items), len(version)),
                version,
                array("q", [c.movie_id for c in self.items]).tobytes(),
                array("d", scores).tobytes(),
                ends.tobytes(),
                bytes(body),
            ]
        )

    @classmethod
    def decode(cls, raw: bytes) -> CachedList | None:
        """The cached list, or None for a value this version cannot read."""
        entry = CachedEntry.parse(raw)
        return entry.to_list() if entry is not None else None


# Layout of a cached value (little-endian, one host writes and reads it):
#   magic | exhaustive u8, profile_updated_at f64, n u16, len(model_version) u16 | model_version
#   | n movie ids i64 | n scores f64 | n end offsets u32 into body | body
# body = n encoded `GetRecommendationsResponse.items` fields (tier CACHE, position i).
# A value without the magic (the JSON of the first format) is unreadable, so it is a miss.
_MAGIC = b"\x00RB1"
_HEAD = struct.Struct("<?dHH")
_ITEMS_TAG = bytes([pb.GetRecommendationsResponse.ITEMS_FIELD_NUMBER << 3 | 2])


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


assert array("I").itemsize == 4 and array("q").itemsize == 8 and array("d").itemsize == 8


class CachedEntry:
    """A cached value as read from Redis, decoded lazily.

    A cache hit without filters takes a prefix of the pre-encoded items (`items_field`) and the
    ids and scores for the serve log, and never builds a Candidate or a message per item.
    """

    __slots__ = (
        "_body",
        "_ends",
        "_ids",
        "_raw",
        "_scores",
        "count",
        "exhaustive",
        "model_version",
        "profile_updated_at",
    )

    def __init__(self, raw: bytes) -> None:
        """Parse the header; raises ValueError (or struct.error) for a value of another layout."""
        if not raw.startswith(_MAGIC):
            raise ValueError("not a cached list")
        at = len(_MAGIC)
        exhaustive, updated_at, n, version_len = _HEAD.unpack_from(raw, at)
        at += _HEAD.size
        self.model_version = raw[at : at + version_len].decode()
        at += version_len
        self._ids, self._scores, self._ends = at, at + 8 * n, at + 16 * n
        self._body = at + 20 * n
        ends = array("I", raw[self._ends : self._body])
        if len(ends) != n or (n and self._body + ends[-1] != len(raw)):
            raise ValueError("truncated cached list")
        self._raw = raw
        self.count: int = n
        self.exhaustive: bool = exhaustive
        self.profile_updated_at: float = updated_at

    @classmethod
    def parse(cls, raw: bytes) -> CachedEntry | None:
        """The entry, or None for a value this version cannot read."""
        try:
            return cls(raw)
        except (ValueError, struct.error, UnicodeDecodeError):
            return None

    def items_field(self, k: int) -> bytes:
        """The first k items (k <= count) encoded as GetRecommendationsResponse.items."""
        if k <= 0:
            return b""
        end = int.from_bytes(self._raw[self._ends + 4 * (k - 1) : self._ends + 4 * k], "little")
        return self._raw[self._body : self._body + end]

    def movie_ids(self, k: int) -> list[int]:
        return array("q", self._raw[self._ids : self._ids + 8 * min(k, self.count)]).tolist()

    def scores(self, k: int) -> list[float]:
        return array("d", self._raw[self._scores : self._scores + 8 * min(k, self.count)]).tolist()

    def to_list(self) -> CachedList | None:
        """Every item decoded (the path with filters); None when the body does not parse."""
        try:
            msg = pb.GetRecommendationsResponse.FromString(self._raw[self._body :])
        except DecodeError:
            return None
        if len(msg.items) != self.count:
            return None
        items = [
            Candidate(
                i.movie.movie_id,
                i.score,
                i.movie.title,
                i.movie.year,
                tuple(i.movie.genres),
                i.movie.popularity,
                i.reason,
            )
            for i in msg.items
        ]
        return CachedList(self.model_version, self.profile_updated_at, self.exhaustive, items)


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

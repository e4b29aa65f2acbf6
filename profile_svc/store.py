"""Data access of the ProfileService: user_profiles, the user's history and recent interactions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import numpy as np

from recsys.domain.vectors import to_array
from recsys.tables import user_profiles

_PROFILE_SQL = """
SELECT user_id, preference_vector IS NOT NULL AS has_vector, interaction_count, rating_count,
       model_version, updated_at
FROM user_profiles WHERE user_id = $1
"""

# Counts and top genres of the user's whole history (user_items: one row per movie ever
# touched, archived or not; see recsys/tables/user_items.py), so a user the speed layer has not folded in
# yet (no profile row) still has a profile. Bounded by the catalogue, not by the history.
_ACTIVITY_SQL = """
WITH mine AS (
    SELECT movie_id, events, ratings, dislikes, last_at FROM user_items WHERE user_id = $1
)
SELECT (SELECT coalesce(sum(events), 0) FROM mine) AS interaction_count,
       (SELECT coalesce(sum(ratings), 0) FROM mine) AS rating_count,
       (SELECT max(last_at) FROM mine) AS last_at,
       (SELECT coalesce(array_agg(genre ORDER BY n DESC, genre), '{}')
          FROM (SELECT g AS genre, sum(mine.events - mine.dislikes) AS n
                  FROM mine JOIN movies m USING (movie_id), unnest(m.genres) AS g
                 WHERE mine.events > mine.dislikes
                 GROUP BY g ORDER BY n DESC, g LIMIT $2) t) AS top_genres
"""

_RECENT_SQL = """
SELECT i.event_id, i.event_type, i.rating, i.occurred_at,
       m.movie_id, m.title, m.year, m.genres, m.popularity
FROM rt_user_interactions i LEFT JOIN movies m USING (movie_id)
WHERE i.user_id = $1
ORDER BY i.occurred_at DESC, i.event_id
LIMIT $2
"""

_VECTOR_SQL = """
SELECT preference_vector, model_version, updated_at FROM user_profiles WHERE user_id = $1
"""

@dataclass(frozen=True)
class ProfileRow:
    """What the store knows about one user, before it becomes a proto."""

    user_id: int
    has_vector: bool
    interaction_count: int
    rating_count: int
    model_version: str
    updated_at: datetime | None
    top_genres: list[str]
    recent: list[asyncpg.Record]


@dataclass(frozen=True)
class PreferenceVector:
    """A user's vector and the model it belongs to."""

    vector: np.ndarray[Any, Any]
    model_version: str
    updated_at: datetime | None


class ProfileStore:
    """Reads and writes profiles on one asyncpg pool."""

    TOP_GENRES = 5

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create_user(self, display_name: str | None) -> int:
        async with self.pool.acquire() as conn:
            return await user_profiles.create_user(conn, display_name)

    async def profile(self, user_id: int, recent_limit: int) -> ProfileRow | None:
        """The profile of a user with a profile row or any interaction; None for a stranger."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(_PROFILE_SQL, user_id)
            activity = await conn.fetchrow(_ACTIVITY_SQL, user_id, self.TOP_GENRES)
            recent = await conn.fetch(_RECENT_SQL, user_id, recent_limit) if recent_limit else []
        assert activity is not None
        if row is None and activity["interaction_count"] == 0:
            return None
        if row is not None:
            # Both describe the whole history; a profile row written before user_items (or
            # by the batch layer alone) may know more.
            interactions = max(row["interaction_count"], activity["interaction_count"])
            ratings = max(row["rating_count"], activity["rating_count"])
            updated = row["updated_at"]
        else:
            interactions, ratings = activity["interaction_count"], activity["rating_count"]
            updated = activity["last_at"]
        return ProfileRow(
            user_id=user_id,
            has_vector=bool(row and row["has_vector"]),
            interaction_count=int(interactions),
            rating_count=int(ratings),
            model_version=(row["model_version"] or "") if row else "",
            updated_at=updated,
            top_genres=list(activity["top_genres"]),
            recent=list(recent),
        )

    async def preference_vector(self, user_id: int) -> PreferenceVector | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(_VECTOR_SQL, user_id)
        if row is None or row["preference_vector"] is None:
            return None
        return PreferenceVector(
            vector=to_array(row["preference_vector"]),
            model_version=row["model_version"] or "",
            updated_at=row["updated_at"],
        )

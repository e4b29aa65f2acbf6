"""user_profiles: one row per user, every write to it.

A row holds the user's display name, preference vector (+ the model it belongs to) and the
counts of their history. The vector and the counts are always recomputed, never incremented:
the vector is the fold-in over the user's whole history (`user_items`) or the trained one, the
counts are sums of `user_items`. So a replayed batch or a rerun job writes the same row again.

Writers: the ProfileService (create_user), the streaming sink (upsert_folded), publishing a
model (publish_trained, upsert_vectors, clear_vectors_of_other_models), the importer and the
history rebuild (counts). Readers: the ProfileService, the Recommender (via the ProfileService).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg
    import psycopg

_CREATE_USER = """
INSERT INTO user_profiles (user_id, display_name) VALUES (nextval('user_id_seq'), $1)
RETURNING user_id
"""

# A NULL vector or model version (no movie of the user has an embedding) keeps the old one.
_UPSERT_FOLDED = """
    INSERT INTO user_profiles
        (user_id, preference_vector, interaction_count, rating_count, model_version, updated_at)
    VALUES (%s, %s, %s, %s, %s, now())
    ON CONFLICT (user_id) DO UPDATE SET
        preference_vector = COALESCE(EXCLUDED.preference_vector, user_profiles.preference_vector),
        interaction_count = EXCLUDED.interaction_count,
        rating_count = EXCLUDED.rating_count,
        model_version = COALESCE(EXCLUDED.model_version, user_profiles.model_version),
        updated_at = now()
"""

_SET_VECTOR = """
    INSERT INTO user_profiles (user_id, preference_vector, model_version)
    VALUES (%s, %s::vector, %s)
    ON CONFLICT (user_id) DO UPDATE SET
        preference_vector = EXCLUDED.preference_vector,
        model_version = EXCLUDED.model_version,
        updated_at = now()
"""

_PUBLISH_TRAINED = """
    INSERT INTO user_profiles (user_id, preference_vector, model_version)
    SELECT user_id, preference_vector, model_version FROM model_user_factors
    WHERE model_version = %(v)s
    ON CONFLICT (user_id) DO UPDATE SET
        preference_vector = EXCLUDED.preference_vector,
        model_version = EXCLUDED.model_version,
        updated_at = now()
"""

_CLEAR_OTHER_MODELS = """
    UPDATE user_profiles SET preference_vector = NULL, model_version = %(v)s, updated_at = now()
    WHERE model_version IS DISTINCT FROM %(v)s
"""

_COUNTS = "SELECT user_id, sum(events) AS events, sum(ratings) AS ratings FROM user_items"


async def create_user(conn: asyncpg.Connection | asyncpg.Pool, display_name: str | None) -> int:
    """A new user (a profile row with no vector and no history yet); returns its id."""
    return int(await conn.fetchval(_CREATE_USER, display_name))


def upsert_folded(
    cur: psycopg.Cursor[Any], profiles: Iterable[tuple[int, Any, int, int, str | None]]
) -> None:
    """(user_id, vector or None, interaction_count, rating_count, model_version or None) rows:
    the speed layer's fold-in and the counts of the users' whole histories."""
    cur.executemany(_UPSERT_FOLDED, list(profiles))


def upsert_vectors(cur: psycopg.Cursor[Any], vectors: Sequence[tuple[int, str, str]]) -> None:
    """(user_id, vector as pgvector text, model_version) rows: vectors of one model."""
    cur.executemany(_SET_VECTOR, vectors)


def publish_trained(conn: psycopg.Connection[Any], version: str) -> None:
    """Every user vector trained by `version` (model_user_factors) becomes the user's."""
    conn.execute(_PUBLISH_TRAINED, {"v": version})


def clear_vectors_of_other_models(conn: psycopg.Connection[Any], version: str) -> None:
    """A vector from another model lives in another space: it goes (the counts stay)."""
    conn.execute(_CLEAR_OTHER_MODELS, {"v": version})


def set_counts(cur: psycopg.Cursor[Any], users_sql: str) -> None:
    """The counts of the users `users_sql` selects (a query of one user_id column), from their
    user_items; a user without a profile row gets one."""
    cur.execute(
        f"""
        INSERT INTO user_profiles AS p (user_id, interaction_count, rating_count)
        {_COUNTS} WHERE user_id IN ({users_sql}) GROUP BY user_id
        ON CONFLICT (user_id) DO UPDATE
           SET interaction_count = EXCLUDED.interaction_count,
               rating_count = EXCLUDED.rating_count, updated_at = now()
        """
    )


def recount_all(cur: psycopg.Cursor[Any]) -> int:
    """Every profile's counts from user_items (after a rebuild of it); returns the rows changed."""
    cur.execute(
        f"""
        UPDATE user_profiles p
           SET interaction_count = s.events, rating_count = s.ratings, updated_at = now()
          FROM ({_COUNTS} GROUP BY user_id) s
         WHERE p.user_id = s.user_id
           AND (p.interaction_count, p.rating_count) IS DISTINCT FROM (s.events, s.ratings)
        """
    )
    return cur.rowcount

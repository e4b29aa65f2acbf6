"""The stream's copy of the embeddings follows a change within a version by reading only the
changed movies, and ends where a full read of the database would (batch.streaming.sink).

Everything happens in one transaction that is rolled back: the stack's data is untouched.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import psycopg
import pytest

from batch.streaming.sink import embeddings_key, load_embeddings
from recsys.domain.vectors import EMBEDDING_DIM

pytestmark = pytest.mark.stack


def _same(a: Any, b: Any) -> None:
    assert a.index.keys() == b.index.keys()
    for movie_id in a.index:
        np.testing.assert_allclose(a.factors[a.index[movie_id]], b.factors[b.index[movie_id]], rtol=1e-6)
    np.testing.assert_allclose(a.gram, b.gram, rtol=1e-6)
    assert a.trained == b.trained and a.version == b.version


def test_a_reload_within_a_version_reads_only_the_changed_movies(db: psycopg.Connection[Any]) -> None:
    with db.transaction(force_rollback=True):
        # Older rows stand still so that "changed" means what this test changes.
        db.execute("UPDATE movies SET updated_at = now() - interval '1 day'")
        before = load_embeddings(db, embeddings_key(db))
        assert before.version is not None and len(before.index) > 100
        moved, dropped = list(before.index)[:2]
        vector = np.linspace(-1, 1, EMBEDDING_DIM).astype(np.float32)
        change = "UPDATE movies SET embedding = %s, updated_at = now() WHERE movie_id = %s"
        db.execute(change, (vector, moved))
        db.execute(change, (None, dropped))
        added = db.execute(
            "INSERT INTO movies (movie_id, title, genres, embedding) "
            "VALUES ((SELECT max(movie_id) + 1 FROM movies), 'Reload test', '{Drama}', %s) "
            "RETURNING movie_id",
            (-vector,),
        ).fetchone()[0]

        after = load_embeddings(db, embeddings_key(db), before, overlap=timedelta(0))

        assert after.loaded == 3, "only the three changed movies are read"
        np.testing.assert_allclose(after.factors[after.index[moved]], vector, rtol=1e-6)
        np.testing.assert_allclose(after.factors[after.index[added]], -vector, rtol=1e-6)
        assert dropped not in after.index
        _same(after, load_embeddings(db, embeddings_key(db)))
        # The copy handed out before is not changed under whoever holds it (a broadcast).
        assert dropped in before.index and added not in before.index


def test_a_new_version_reads_every_embedding(db: psycopg.Connection[Any]) -> None:
    with db.transaction(force_rollback=True):
        before = load_embeddings(db, embeddings_key(db))
        db.execute("UPDATE models SET version = version || '-next' WHERE status = 'live'")
        after = load_embeddings(db, embeddings_key(db), before)
        assert after.version == f"{before.version}-next"
        assert after.loaded == len(after.index) == len(before.index)

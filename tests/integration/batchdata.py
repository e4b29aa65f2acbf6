"""The batch tests' data (test_batch, test_dag): their own database, clustered tastes."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").exists() else sys.executable
# Publishing changes the live model, so the batch tests never touch the shared database.
TEST_DB = "recsys_batch_test"
BASE = 800_000_000
CLUSTERS, MOVIES_PER_CLUSTER, USERS_PER_CLUSTER, PER_USER = 4, 25, 20, 12


def seed(env: dict[str, str]) -> None:
    """Clustered tastes: each user interacts with movies of one cluster only."""
    rng = np.random.default_rng(7)
    now = datetime.now(UTC)
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        conn.execute("DELETE FROM rt_user_interactions")
        conn.execute("DELETE FROM movies")
        movies = [BASE + m for m in range(CLUSTERS * MOVIES_PER_CLUSTER)]
        with conn.cursor().copy("COPY movies (movie_id, title) FROM STDIN") as copy:
            for m in movies:
                copy.write_row((m, f"Test movie {m}"))
        with conn.cursor().copy(
            "COPY rt_user_interactions (event_id, user_id, movie_id, event_type, rating, occurred_at)"
            " FROM STDIN"
        ) as copy:
            for c in range(CLUSTERS):
                own = movies[c * MOVIES_PER_CLUSTER : (c + 1) * MOVIES_PER_CLUSTER]
                for u in range(USERS_PER_CLUSTER):
                    user = BASE + c * USERS_PER_CLUSTER + u
                    for i, m in enumerate(rng.choice(own, PER_USER, replace=False)):
                        when = now - timedelta(hours=1 + i)
                        copy.write_row((f"t-{user}-{m}", user, int(m), "rate", 5.0, when))

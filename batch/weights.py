"""How much each user event says about a user's taste: one table for training and fold-in.

Both the batch ALS job and the speed layer's fold-in turn events into the implicit-feedback
signal `r` of Hu, Koren & Volinsky (and Spark ALS with implicitPrefs): preference
`p = 1 if r > 0 else 0` and confidence `c = 1 + alpha * |r|`. A negative `r` (a dislike, a
low rating) is a confident "not interested". Several events of a user on one movie add up.
"""

from __future__ import annotations

# Signal per event type; `rate` depends on the rating (see rating_signal).
EVENT_SIGNAL: dict[str, float] = {
    "view": 0.5,
    "click": 1.0,
    "watch": 3.0,
    "like": 4.0,
    "dislike": -4.0,
}

# A rating of RATING_NEUTRAL says nothing; each star away from it is worth RATING_SCALE.
RATING_NEUTRAL = 2.5
RATING_SCALE = 2.0

# The ALS confidence and regularisation that training (`AlsParams`) and fold-in share; chosen
# on validation splits (bench/quality.py). The batch job stores the values it trained with in
# models.params, and fold-in reads them from there; these are the fallback.
DEFAULT_ALPHA = 1.0
DEFAULT_REG_PARAM = 0.4


def rating_signal(rating: float) -> float:
    """5 stars -> +5, 3 -> +1, 2 -> -1, 0.5 -> -4."""
    return (rating - RATING_NEUTRAL) * RATING_SCALE


def event_signal(event_type: str, rating: float | None = None) -> float:
    """The signal `r` of one event; a rate event without a rating says nothing (0)."""
    if event_type == "rate":
        return 0.0 if rating is None else rating_signal(rating)
    return EVENT_SIGNAL.get(event_type, 0.0)


def signal_sql(event_type: str = "event_type", rating: str = "rating") -> str:
    """`event_signal` as a SQL expression over two columns, for set-based writes in PostgreSQL.

    Rendered from the same table as `event_signal`, so a weight changes in one place only
    (see `batch.history`, and the migration that backfills `user_items`).
    """
    branches = " ".join(f"WHEN '{name}' THEN {value!r}" for name, value in EVENT_SIGNAL.items())
    rate = f"COALESCE(({rating}::float8 - {RATING_NEUTRAL!r}) * {RATING_SCALE!r}, 0.0)"
    return f"(CASE {event_type} WHEN 'rate' THEN {rate} {branches} ELSE 0.0 END)::float8"

"""The event vocabulary and the rules over it, as one table.

An event kind has a proto enum value (`recsys.v1.EventType`, the API), a lower-case name (the
Kafka record, `rt_user_interactions.event_type`, the importer's files) and a signal `r`: how
much it says about the user's taste, for ALS training and fold-in (Hu, Koren & Volinsky;
Spark ALS with implicitPrefs): preference `p = 1 if r > 0 else 0`, confidence
`c = 1 + alpha * |r|`. A negative `r` (a dislike, a low rating) is a confident "not
interested"; several events of a user on one movie add up.
"""

from __future__ import annotations

from dataclasses import dataclass

from buf.validate import validate_pb2
from recsys.v1 import event_service_pb2 as pb


@dataclass(frozen=True)
class EventKind:
    """One kind of user event."""

    name: str
    proto: pb.EventType.ValueType
    # The signal `r`; None for `rate`, whose signal is its rating's (rating_signal).
    signal: float | None
    # Answers a served list, so it counts as feedback on it (a view is not a choice).
    feedback: bool
    # Says the user liked the movie whatever else (a rating must reach LIKED_RATING).
    liked: bool


EVENT_KINDS: tuple[EventKind, ...] = (
    EventKind("view", pb.EVENT_TYPE_VIEW, 0.5, feedback=False, liked=False),
    EventKind("click", pb.EVENT_TYPE_CLICK, 1.0, feedback=True, liked=False),
    EventKind("watch", pb.EVENT_TYPE_WATCH, 3.0, feedback=True, liked=True),
    EventKind("rate", pb.EVENT_TYPE_RATE, None, feedback=True, liked=False),
    EventKind("like", pb.EVENT_TYPE_LIKE, 4.0, feedback=True, liked=True),
    EventKind("dislike", pb.EVENT_TYPE_DISLIKE, -4.0, feedback=True, liked=False),
)
RATE = "rate"
DISLIKE = "dislike"

EVENT_TYPES: tuple[str, ...] = tuple(k.name for k in EVENT_KINDS)
# The proto enum as the stored names, and back.
EVENT_TYPE_NAMES: dict[pb.EventType.ValueType, str] = {k.proto: k.name for k in EVENT_KINDS}
EVENT_TYPE_VALUES: dict[str, pb.EventType.ValueType] = {k.name: k.proto for k in EVENT_KINDS}
FEEDBACK_TYPES: tuple[str, ...] = tuple(k.name for k in EVENT_KINDS if k.feedback)
# Feedback that counts as a click on a served item (CTR): acting on it in any positive way; a
# dislike answers the list too but is not a click.
CLICK_TYPES: tuple[str, ...] = tuple(
    k.name for k in EVENT_KINDS if k.feedback and (k.signal is None or k.signal > 0)
)
EVENT_SIGNAL: dict[str, float] = {k.name: k.signal for k in EVENT_KINDS if k.signal is not None}

# The Kafka record (event_svc.events.Event); readers drop any other version.
SCHEMA_VERSION = 1


def _rules(field: str) -> validate_pb2.FieldRules:
    """The buf.validate rules of a PostEventRequest field: the API contract states them, and
    the code that checks stored or imported events (Spark, the importer) reads them from it."""
    return pb.PostEventRequest.DESCRIPTOR.fields_by_name[field].GetOptions().Extensions[validate_pb2.field]


RATING_MIN, RATING_MAX = _rules("rating").float.gte, _rules("rating").float.lte
MAX_EVENT_ID_LEN = _rules("event_id").string.max_len

# A rating of RATING_NEUTRAL says nothing; each star away from it is worth RATING_SCALE.
RATING_NEUTRAL = 2.5
RATING_SCALE = 2.0

# The ALS confidence and regularisation that training (`AlsParams`) and fold-in share, chosen on
# validation splits (bench/quality.py). A model stores the values it trained with in its params
# and fold-in reads them from there; these are the fallback for a model that stored none.
DEFAULT_ALPHA = 1.0
DEFAULT_REG_PARAM = 0.4

# Rendle et al. 2021's user step (batch.foldin.UserStep) is a per-deployment setting chosen on
# validation (bench/quality.py); its penalty when a stored model names none. The default step is
# Spark's own (`AlsParams.unobserved_weight` None): Rendle's ranks more accurately on MovieLens
# but leans a handful of ratings less towards their genre (README, Model quality).
DEFAULT_USER_REG = 0.01
# How a summed signal reads in that step: SIGNED weighs a pair by its stars from neutral and
# takes a negative sum as "not for me"; IMPLICIT takes every pair the user touched as an equal
# positive (the reading of implicit-feedback benchmarks).
SIGNED, IMPLICIT = "signed", "implicit"
SIGNAL_READINGS = (SIGNED, IMPLICIT)
DEFAULT_SIGNAL_READING = SIGNED

# Ratings at or above this count as "liked" (the reasons quote liked movies).
LIKED_RATING = 3.5
LIKED_TYPES = frozenset(k.name for k in EVENT_KINDS if k.liked)


def rating_signal(rating: float) -> float:
    """5 stars -> +5, 3 -> +1, 2 -> -1, 0.5 -> -4."""
    return (rating - RATING_NEUTRAL) * RATING_SCALE


def event_signal(event_type: str, rating: float | None = None) -> float:
    """The signal `r` of one event; a rate event without a rating says nothing (0)."""
    if event_type == RATE:
        return 0.0 if rating is None else rating_signal(rating)
    return EVENT_SIGNAL.get(event_type, 0.0)


def is_liked(event_type: str, rating: float | None) -> bool:
    """Whether an interaction says the user liked the movie."""
    if event_type in LIKED_TYPES:
        return True
    return event_type == RATE and rating is not None and rating >= LIKED_RATING


def _names(names: frozenset[str] | tuple[str, ...]) -> str:
    return ", ".join(f"'{n}'" for n in sorted(names))


def click_types_sql() -> str:
    """CLICK_TYPES as a SQL list: `('click', 'like', ...)`."""
    return f"({_names(CLICK_TYPES)})"


def signal_sql(event_type: str = "event_type", rating: str = "rating") -> str:
    """`event_signal` as a SQL expression over two columns, for set-based writes in PostgreSQL."""
    branches = " ".join(f"WHEN '{name}' THEN {value!r}" for name, value in EVENT_SIGNAL.items())
    rate = f"COALESCE(({rating}::float8 - {RATING_NEUTRAL!r}) * {RATING_SCALE!r}, 0.0)"
    return f"(CASE {event_type} WHEN '{RATE}' THEN {rate} {branches} ELSE 0.0 END)::float8"


def liked_sql(event_type: str = "event_type", rating: str = "rating") -> str:
    """`is_liked` as a SQL condition over two columns."""
    return (
        f"({event_type} IN ({_names(LIKED_TYPES)}) "
        f"OR ({event_type} = '{RATE}' AND {rating} >= {LIKED_RATING!r}))"
    )

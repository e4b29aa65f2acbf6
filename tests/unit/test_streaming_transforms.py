"""Pure transforms of the streaming job, on tiny inline frames."""

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from batch.foldin import UserStep, aggregate_signals, fold_in, gram
from batch.streaming.sink import ModelEmbeddings, compute_profiles
from batch.streaming.transforms import decode_events, feedback_rows, split_batch
from recsys.domain.events import event_signal
from recsys.domain.vectors import EMBEDDING_DIM

pytestmark = pytest.mark.spark

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _value(**fields: object) -> bytes:
    event = {
        "schema": 1,
        "event_id": "e1",
        "user_id": 7,
        "movie_id": 11,
        "event_type": "click",
        "rating": None,
        "request_id": None,
        "occurred_at_ms": T0,
    }
    event.update(fields)
    return json.dumps(event).encode()


def _raw(spark, values: list[bytes | None]):
    rows = [
        (b"7", v, "movie-events", 0, i, [("traceparent", b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01")])
        for i, v in enumerate(values)
    ]
    schema = (
        "key binary, value binary, topic string, partition int, offset long, "
        "headers array<struct<key:string,value:binary>>"
    )
    return spark.createDataFrame(rows, schema)


def _parse(spark, values: list[bytes | None]) -> tuple[list[dict], int]:
    """What the job does with a micro-batch before the sink (job.BatchProcessor)."""
    return split_batch(decode_events(_raw(spark, values)).collect())


def test_parse_valid_events(spark) -> None:
    events, malformed = _parse(
        spark, [_value(), _value(event_id="e2", event_type="rate", rating=4.5, request_id="r9")]
    )
    rows = {r["event_id"]: r for r in events}
    assert set(rows) == {"e1", "e2"} and malformed == 0
    assert rows["e1"]["request_id"] is None and rows["e1"]["rating"] is None
    assert rows["e2"]["rating"] == 4.5 and rows["e2"]["request_id"] == "r9"
    assert rows["e1"]["occurred_at"].astimezone(UTC) == datetime(2026, 1, 1, tzinfo=UTC)
    assert rows["e1"]["traceparent"].startswith("00-aaaa")


def test_replayed_event_id_appears_once(spark) -> None:
    events, malformed = _parse(spark, [_value(), _value(), _value(event_id="e2")])
    assert sorted(r["event_id"] for r in events) == ["e1", "e2"] and malformed == 0


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"not json",
        _value(schema=2),
        _value(event_id=None),
        _value(event_id="x" * 65),
        _value(user_id=0),
        _value(movie_id=-1),
        _value(event_type="purchase"),
        _value(event_type="rate"),  # no rating
        _value(event_type="rate", rating=9.0),
        _value(event_type="click", rating=3.0),
        _value(occurred_at_ms=None),
    ],
)
def test_malformed_records_are_left_out(spark, value) -> None:
    events, malformed = _parse(spark, [value, _value(event_id="ok")])
    assert [r["event_id"] for r in events] == ["ok"]
    assert malformed == 1


def test_feedback_needs_request_id_and_a_choice(spark) -> None:
    events, _ = _parse(
        spark,
        [
            _value(event_id="a", request_id="r1"),
            _value(event_id="b", event_type="view", request_id="r1"),
            _value(event_id="c"),
            _value(event_id="d", event_type="watch", request_id=""),
        ],
    )
    (row,) = feedback_rows(events)
    assert row["event_id"] == "a" and row["request_id"] == "r1"
    assert set(row) == {"event_id", "request_id", "user_id", "movie_id", "event_type", "occurred_at"}


def _model(factors: np.ndarray) -> ModelEmbeddings:
    return ModelEmbeddings(
        key=(),
        version="m1",
        index={100 + i: i for i in range(len(factors))},
        factors=factors,
        gram=gram(factors),
        step=UserStep(alpha=1.0, reg_param=0.1),
    )


def test_compute_profiles_counts_and_vectors() -> None:
    rng = np.random.default_rng(0)
    d = np.zeros(EMBEDDING_DIM)
    d[0] = 1.0
    factors = np.vstack(
        [d + 0.05 * rng.standard_normal((5, EMBEDDING_DIM)), 0.3 * rng.standard_normal((20, EMBEDDING_DIM))]
    )
    # user_items rows (user_id, movie_id, summed signal, events, ratings): user 1 rated 5
    # movies 5 stars (+5 each) and also clicked movie 100 (+1).
    rows = [(1, 100, 6.0, 2, 1)] + [(1, 100 + i, 5.0, 1, 1) for i in range(1, 5)] + [(2, 999, 0.5, 1, 0)]
    profiles = {p.user_id: p for p in compute_profiles(rows, _model(factors))}
    assert profiles[1].interaction_count == 6 and profiles[1].rating_count == 5
    assert profiles[1].vector is not None and float(profiles[1].vector @ d) > 0
    # Movie 999 has no embedding: counts, but no vector.
    assert profiles[2].vector is None and profiles[2].interaction_count == 1


def test_compute_profiles_equals_fold_in_over_every_event() -> None:
    """Summed signals per movie give the vector of folding in the raw events one by one."""
    rng = np.random.default_rng(1)
    factors = 0.3 * rng.standard_normal((30, EMBEDDING_DIM))
    model = _model(factors)
    events = [
        (int(m), t, r)
        for m, t, r in zip(
            rng.integers(100, 130, 80),
            rng.choice(["view", "click", "watch", "like", "dislike", "rate"], 80),
            rng.choice([0.5, 2.5, 3.0, 4.5, 5.0], 80),
            strict=True,
        )
    ]
    signals = [event_signal(t, float(r) if t == "rate" else None) for _, t, r in events]
    items, totals = aggregate_signals([m for m, _, _ in events], signals)
    expected = fold_in(factors[items - 100], totals, model.gram, alpha=1.0, reg_param=0.1)
    rows = [(7, int(m), float(s), 1, 0) for m, s in zip(items, totals, strict=True)]
    (profile,) = compute_profiles(rows, model)
    assert profile.vector is not None
    np.testing.assert_allclose(profile.vector, expected, rtol=1e-5, atol=1e-6)


def test_a_partition_without_valid_events_writes_nothing_and_counts_its_malformed(spark) -> None:
    """The task function on a partition of only malformed records: no sink is touched (its
    URLs lead nowhere), one row of counts comes back."""
    from batch.streaming.tasks import TASK_RESULT_DDL, PartitionWriter, total

    class Nothing:
        @property
        def value(self) -> None:
            raise AssertionError("no valid event: the model is not needed")

    writer = PartitionWriter("postgresql://nowhere.invalid/x", "redis://nowhere.invalid:1/0", Nothing())
    raw = _raw(spark, [b"not json", _value(user_id=-1)])
    rows = decode_events(raw.coalesce(1)).mapInArrow(writer, TASK_RESULT_DDL).collect()
    counts, links, untrained = total(rows)
    assert counts["malformed"] == 2 and counts["events"] == 0 and links == [] and untrained == set()
    assert len(rows) == 1

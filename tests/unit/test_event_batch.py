"""PostEvents on fakes (results per event, who may post what, dedupe, durability), the pending-list
entries, and the request-time fold-in against the stream's own (issue #16)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import numpy as np
import pytest

from batch.foldin import UserStep, gram
from batch.streaming.sink import ModelEmbeddings, compute_profiles
from event_svc.events import Event
from event_svc.servicer import EventServicer
from recommender_svc.freshness import FoldInModel, fold_rows
from recsys.auth.principal import Principal
from recsys.domain.events import event_signal
from recsys.errors import InvalidArgument, Unavailable
from recsys.grpcserver import principal_var
from recsys.pending import PendingEvent, decode_all
from recsys.v1 import event_service_pb2 as pb
from recsys.validation import check

STEP = UserStep(alpha=2.0, reg_param=0.05, unobserved=0.5, user_reg=0.02)


class Catalogue:
    async def exists(self, movie_id: int) -> bool:
        return movie_id < 1000


class Producer:
    def __init__(self, fail: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        self.fail = fail
        self.sent: list[dict[str, Any]] = []

    async def send_many(self, messages: list[tuple[bytes, bytes, Any]]) -> list[Unavailable | None]:
        out: list[Unavailable | None] = []
        for _key, value, _headers in messages:
            record = json.loads(value)
            self.sent.append(record)
            out.append(Unavailable("event log unavailable") if record["movie_id"] in self.fail else None)
        return out


class Pending:
    def __init__(self) -> None:
        self.pushed: list[Event] = []

    async def push(self, events: Any) -> bool:
        self.pushed.extend(events)
        return True


def _servicer(producer: Producer, pending: Pending) -> EventServicer:
    return EventServicer(Catalogue(), producer, pending=pending)  # type: ignore[arg-type]


def _ev(**fields: Any) -> pb.PostEventRequest:
    return pb.PostEventRequest(**{"movie_id": 7, "type": pb.EVENT_TYPE_CLICK, **fields})


def test_the_kafka_value_is_what_asdict_wrote() -> None:
    event = Event("e-1", 42, 7, "rate", 4.5, None, 1_700_000_000_000)
    assert event.value() == json.dumps(asdict(event), separators=(",", ":")).encode()


async def test_each_event_gets_its_own_result_and_only_valid_ones_are_produced() -> None:
    producer, pending = Producer(fail={9}), Pending()
    request = pb.PostEventsRequest(
        user_id=42,
        events=[
            _ev(event_id="a"),
            _ev(type=pb.EVENT_TYPE_RATE),  # rating missing
            _ev(movie_id=5000),  # not in the catalogue
            _ev(event_id="a"),  # the same event again
            _ev(movie_id=9, event_id="b"),  # Kafka refuses it
            _ev(user_id=43),  # another user, as the user 42
        ],
    )
    token = principal_var.set(Principal(subject="42", scopes=frozenset({"user"}), user_id=42))
    try:
        reply = await _servicer(producer, pending).PostEvents(request, None)  # type: ignore[arg-type]
    finally:
        principal_var.reset(token)
    codes = [r.code for r in reply.results]
    assert codes == [0, 3, 3, 0, 14, 7]
    assert (reply.accepted, reply.rejected) == (2, 4)
    assert reply.results[1].violations[0].field == "rating"
    assert reply.results[1].message.startswith("rating:")
    assert reply.results[2].violations[0].field == "movie_id"
    assert [r["event_id"] for r in producer.sent] == ["a", "b"]  # "a" once
    assert all(r["user_id"] == 42 for r in producer.sent)  # user 0 took the request's
    assert [e.event_id for e in pending.pushed] == ["a"]  # only what Kafka has


async def test_a_service_token_posts_for_anyone() -> None:
    producer = Producer()
    token = principal_var.set(Principal(subject="svc", scopes=frozenset({"service"})))
    try:
        reply = await _servicer(producer, Pending()).PostEvents(
            pb.PostEventsRequest(events=[_ev(user_id=1), _ev(user_id=2)]),
            None,  # type: ignore[arg-type]
        )
    finally:
        principal_var.reset(token)
    assert reply.accepted == 2 and [r["user_id"] for r in producer.sent] == [1, 2]


@pytest.mark.parametrize(("n", "refused"), [(0, True), (1, False), (500, False), (501, True)])
def test_the_batch_is_bounded_as_a_whole(n: int, refused: bool) -> None:
    """1 to 500 events (event_service.proto), checked by the interceptor before PostEvents runs."""
    request = pb.PostEventsRequest(user_id=1, events=[_ev()] * n)
    if refused:
        with pytest.raises(InvalidArgument, match=r"^events:"):
            check(request)
    else:
        check(request)


def test_pending_entries_round_trip_and_count_an_event_once() -> None:
    a = PendingEvent("a-1", 7, "rate", 4.5, 1_700_000_000_000)
    b = PendingEvent("b:2", 8, "like", None, 1_700_000_000_001)
    assert PendingEvent.decode(a.encode()) == a
    assert PendingEvent.decode(b.encode().encode()) == b
    assert decode_all([a.encode(), b.encode(), a.encode(), b"garbage"]) == [a, b]


def test_request_time_fold_in_is_the_streams() -> None:
    rng = np.random.default_rng(7)
    factors = rng.standard_normal((50, 64))
    model = ModelEmbeddings(
        key=(), version="v", index={m: m for m in range(50)}, factors=factors, gram=gram(factors),
        step=STEP,
    )  # fmt: skip
    # The user's whole history as the stream keeps it: user_items rows, one per movie.
    stored = {3: event_signal("rate", 5.0) + event_signal("view"), 4: event_signal("like")}
    items = [(1, m, signal, 1, 0) for m, signal in stored.items()]
    (before,) = compute_profiles(items, model)
    # Pending: a dislike of a new movie and another view of a stored one.
    pending = {9: event_signal("dislike"), 3: event_signal("view")}
    after = {m: stored.get(m, 0.0) + pending.get(m, 0.0) for m in stored.keys() | pending.keys()}
    (stream,) = compute_profiles([(1, m, s, 1, 0) for m, s in after.items()], model)
    mine = fold_rows(
        [(m, s, factors[m]) for m, s in after.items()],
        FoldInModel(key=(), gram=model.gram, n_items=len(factors), step=STEP),
    )
    assert before.vector is not None and not np.allclose(before.vector, stream.vector)
    assert stream.vector is not None and mine is not None
    np.testing.assert_allclose(mine, stream.vector)


async def test_redis_away_costs_request_time_freshness_only() -> None:
    """Nothing listens on port 1: the push reports failure at once (the event is durable
    anyway), and the Recommender reads no entry and no pending event instead of failing."""
    from event_svc.pending import PendingWriter
    from recommender_svc.cache import RecommendationCache
    from recsys.cache import create_client

    client = create_client("redis://127.0.0.1:1/0", timeout_seconds=0.1)
    try:
        event = Event("e-1", 42, 7, "like", None, None, 1_700_000_000_000)
        assert await PendingWriter(client).push([event]) is False
        assert await RecommendationCache(client, 60).get_with_pending(42) == (None, [], None)
    finally:
        await client.aclose()

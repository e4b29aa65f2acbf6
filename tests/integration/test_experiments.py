"""An online A/B experiment end to end, through the gateway.

A candidate version is staged by the test (a models row and its precomputed lists, the least
popular movies, so its answers are recognisable); an admin starts an experiment splitting users
between it and the live model; fresh users are served through Envoy, each in the variant the
split (recsys.domain.experiments) gives it, the candidate's users from the candidate's lists;
the serve logs carry the variant; clicks posted through the gateway show up per variant, with a
confidence interval, in the AnalyticsService. The split's ±3 % over 10,000 users is
tests/unit/test_experiments.py's.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from recsys.domain.experiments import CANDIDATE, CONTROL, variant
from stack.client import new_user_id, post_event, recommendations, wait_for
from tests.integration.test_analytics_service import dashboard, logged
from tests.tokens import admin_token, analyst_token

pytestmark = pytest.mark.stack

USERS = 40
LIST = 10


def admin(stack: Any, path: str, body: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        f"{stack.envoy_url}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json", "authorization": f"Bearer {token or admin_token()}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


@pytest.fixture
def candidate(db: psycopg.Connection[Any]) -> Iterator[tuple[str, list[int], dict[int, list[int]]]]:
    """A staged candidate version: (version, its users, each user's list)."""
    version = f"test-cand-{uuid.uuid4().hex[:8]}"
    users = [new_user_id() for _ in range(USERS)]
    rare = [r[0] for r in db.execute("SELECT movie_id FROM movies ORDER BY popularity, movie_id LIMIT 50")]
    lists = {u: rare[i % 40 : i % 40 + LIST] for i, u in enumerate(users)}
    db.execute("INSERT INTO models (version, status) VALUES (%s, 'candidate')", (version,))
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO batch_recommendations (model_version, user_id, rank, movie_id, score)"
            " VALUES (%s, %s, %s, %s, %s)",
            [(version, u, r + 1, m, 1.0 - r / 100) for u, ms in lists.items() for r, m in enumerate(ms)],
        )
    try:
        yield version, users, lists
    finally:
        db.execute("UPDATE experiments SET status = 'stopped' WHERE candidate_version = %s", (version,))
        db.execute("DELETE FROM experiments WHERE candidate_version = %s", (version,))
        db.execute("DELETE FROM batch_recommendations WHERE model_version = %s", (version,))
        db.execute("DELETE FROM models WHERE version = %s", (version,))


def test_an_experiment_splits_users_serves_the_candidate_and_measures_ctr_per_variant(
    stack: Any, db: psycopg.Connection[Any], trigger_seconds: float, candidate: Any
) -> None:
    version, users, lists = candidate
    name = f"t-{uuid.uuid4().hex[:12]}"
    live = db.execute("SELECT version FROM models WHERE status = 'live'").fetchone()[0]

    # Who may start one, and what it refuses.
    body = {"name": name, "candidateVersion": version, "candidateShare": 0.5}
    assert admin(stack, "/v1/experiments", body, analyst_token())[0] == 403
    status, answer = admin(stack, "/v1/experiments", {**body, "candidateVersion": "no-such-model"})
    assert status == 404 and "candidate_version" in answer["message"], answer
    status, answer = admin(stack, "/v1/experiments", {**body, "candidateVersion": live})
    assert status == 400 and "live model" in answer["message"], answer
    status, answer = admin(stack, "/v1/experiments", body)
    assert status == 200, answer
    started = answer["experiment"]
    assert (started["status"], started["controlVersion"], started["candidateShare"]) == ("running", live, 0.5)
    status, answer = admin(stack, "/v1/experiments", {**body, "name": name + "-2"})
    assert status == 400 and "another experiment is running" in answer["message"], answer

    # Every replica picks the experiment up within its re-read interval; the probe's first serve
    # in the experiment is one of its serves.
    probe = new_user_id()
    deadline = time.monotonic() + 10
    while (first := recommendations(stack.envoy_url, probe, LIST))["experiment"] != name:
        assert time.monotonic() < deadline, "the recommender did not pick the experiment up"
        time.sleep(0.2)

    served = {u: recommendations(stack.envoy_url, u, LIST) for u in users}
    arms = {u: variant(u, name, 0.5) for u in users}
    assert set(arms.values()) == {CONTROL, CANDIDATE}
    for u, r in served.items():
        assert (r["experiment"], r["variant"]) == (name, arms[u]), u
        ids = [int(i["movie"]["movieId"]) for i in r["items"]]
        if arms[u] == CANDIDATE:
            assert (r["modelVersion"], r["tier"]) == (version, "TIER_BATCH")
            assert ids == lists[u]
        else:
            assert r["modelVersion"] != version and ids != lists[u]

    # A click on each user's first served movie, through the gateway; two clicks more on one
    # candidate list.
    extra = next(u for u in users if arms[u] == CANDIDATE)
    clicks = [(u, served[u]["items"][0]) for u in users] + [(extra, it) for it in served[extra]["items"][1:3]]
    event_ids = []
    for u, item in clicks:
        event_ids.append(f"x-{uuid.uuid4().hex}")
        status, answer = post_event(
            stack.envoy_url,
            eventId=event_ids[-1],
            userId=u,
            movieId=item["movie"]["movieId"],
            type="EVENT_TYPE_CLICK",
            requestId=served[u]["requestId"],
        )
        assert status == 200, answer
    request_ids = [served[u]["requestId"] for u in users]
    assert wait_for(
        lambda: logged(db, request_ids) == USERS
        and db.execute(
            "SELECT count(*) FROM recommendation_feedback WHERE event_id = ANY(%s) AND position IS NOT NULL",
            (event_ids,),
        ).fetchone()[0]
        == len(event_ids),
        3 * trigger_seconds + 15,
    ), "the serves and clicks were not written"
    rows = db.execute(
        "SELECT user_id, experiment, variant FROM recommendation_logs WHERE request_id = ANY(%s)",
        (request_ids,),
    ).fetchall()
    assert {r[0]: (r[1], r[2]) for r in rows} == {u: (name, arms[u]) for u in users}

    status, body = dashboard(stack, analyst_token())
    assert status == 200, body
    per_variant = {v["variant"]: v for v in body["experimentCtr"] if v["experiment"] == name}
    everyone = {**served, probe: first}
    arms[probe] = variant(probe, name, 0.5)
    assert first["variant"] == arms[probe]
    for arm in (CONTROL, CANDIDATE):
        v = per_variant[arm]
        n = sum(a == arm for a in arms.values())
        assert (int(v["users"]), int(v["serves"])) == (n, n), (arm, v)
        clicked = sum(arms[u] == arm for u in users) + (2 if arm == CANDIDATE else 0)
        assert int(v["clicks"]) == clicked, (arm, v)
        impressions = sum(len(r["items"]) for u, r in everyone.items() if arms[u] == arm)
        assert int(v["impressions"]) == impressions
        assert v["ctr"] == pytest.approx(int(v["clicks"]) / impressions)
        assert 0 <= v["ctrLow"] < v["ctr"] < v["ctrHigh"] <= 1

    # Stopped: everyone gets the live model again.
    status, answer = admin(stack, "/v1/experiments:stop", {"name": name})
    assert status == 200 and answer["experiment"]["status"] == "stopped", answer
    assert admin(stack, "/v1/experiments:stop", {"name": name})[0] == 404
    after = wait_for(lambda: recommendations(stack.envoy_url, extra, LIST)["experiment"] == "", 10)
    assert after, "the recommender still serves the stopped experiment"


@pytest.fixture
def live_copy(stack: Any, db: psycopg.Connection[Any]) -> Iterator[tuple[str, str]]:
    """(original live version, a staged copy of it as a candidate); the original is live again after."""
    from batch.als import publish

    live = db.execute("SELECT version FROM models WHERE status = 'live'").fetchone()[0]
    copy = f"test-copy-{uuid.uuid4().hex[:8]}"
    db.execute(
        "INSERT INTO models (version, status, params)"
        " SELECT %s, 'candidate', params FROM models WHERE version = %s",
        (copy, live),
    )
    for table, columns in (
        ("model_item_factors", "movie_id, embedding, popularity"),
        ("model_user_factors", "user_id, preference_vector"),
        ("batch_recommendations", "user_id, rank, movie_id, score"),
    ):
        db.execute(
            f"INSERT INTO {table} (model_version, {columns}) SELECT %s, {columns} FROM {table}"
            " WHERE model_version = %s",
            (copy, live),
        )
    try:
        yield live, copy
    finally:
        with publish.connect(stack.database_url) as conn:
            if conn.execute("SELECT status FROM models WHERE version = %s", (copy,)).fetchone() == ("live",):
                publish.switch(conn, live)
        publish.invalidate_cache(stack.redis_url)
        db.execute("UPDATE experiments SET status = 'stopped' WHERE candidate_version = %s", (copy,))
        db.execute("DELETE FROM experiments WHERE candidate_version = %s", (copy,))
        for table in publish.VERSION_TABLES:
            db.execute(f"DELETE FROM {table} WHERE model_version = %s", (copy,))
        db.execute("DELETE FROM models WHERE version = %s", (copy,))


def test_promoting_publishes_the_candidate_and_ends_the_experiment(
    stack: Any, db: psycopg.Connection[Any], live_copy: tuple[str, str]
) -> None:
    live, copy = live_copy
    name = f"p-{uuid.uuid4().hex[:12]}"
    body = {"name": name, "candidateVersion": copy, "candidateShare": 0.2}
    status, answer = admin(stack, "/v1/experiments", body)
    assert status == 200, answer
    assert admin(stack, "/v1/experiments:promote", {"name": name}, analyst_token())[0] == 403

    status, answer = admin(stack, "/v1/experiments:promote", {"name": name})
    assert status == 200, answer
    assert answer["experiment"]["status"] == "promoted" and answer["previousVersion"] == live, answer
    statuses = dict(db.execute("SELECT version, status FROM models WHERE version = ANY(%s)", ([live, copy],)))
    assert statuses == {copy: "live", live: "retired"}
    assert db.execute("SELECT count(*) FROM movies WHERE model_version = %s", (copy,)).fetchone()[0] > 0
    status, answer = admin(stack, "/v1/experiments:promote", {"name": name})
    assert status == 400 and "promoted already" in answer["message"], answer

    # The recommender serves the promoted model, outside any experiment, once it re-reads them.
    user = db.execute(
        "SELECT user_id FROM user_profiles"
        " WHERE model_version = %s AND preference_vector IS NOT NULL LIMIT 1",
        (copy,),
    ).fetchone()[0]
    served = wait_for(
        lambda: (r := recommendations(stack.envoy_url, user, 5))["modelVersion"] == copy and r, 15
    )
    assert served and served["experiment"] == "", served

"""The system over simulated days (issue #13): does it stay right as data ages?

    .venv/bin/python bench/lifecycle.py [--days 14] [--start 1998-03-27] [--out bench/lifecycle.md]

Replays MovieLens 100K with its own timestamps through the real pipeline, on a stack of its own
(STACK_DIR=.stack-lifecycle, ports 4xxxx, started fresh and stopped at the end):

- bootstrap: the catalogue and every rating before `--start` go in through the importer (older
  than the window into the Parquet archive, as `recsys-import` files them), then night 0 runs;
- each simulated day: the day's ratings in time order through Envoy (`POST /v1/events:batch`,
  a service token: a backfill keeps each event's own time), the streaming job applies them;
  then, at the end of the day, for every user active the NEXT day, their list through the
  gateway (`GET /v1/users/{id}/recommendations?limit=10`, the user's own token), scored against
  the movies they rate the next day (prequential NDCG@10 and recall@10); the share of served
  movies the user had rated at any time before (must be 0); each day's users' profile counts
  against the true totals;
- each simulated night: `recsys_daily` triggered through the stack's Airflow REST API with the
  night as its logical date (the archive task's clock): archive, train, evaluate, publish,
  invalidate, as at 02:00; then the recent window's row count against the events of the 48 h
  before that night.

The simulated clock: the dataset's times are shifted by a whole number of days so the replay
ends yesterday (day boundaries and the order of events are kept). Nothing in the pipeline reads
the wall clock for what this measures: the archive takes the DAG run's logical date, training
ends at the newest event, and the Event service lets a service backfill events of any age.

The oracle, in the same run: on each day, a model trained on everything up to the end of that
day, by the nightly job's own code (`batch.als`: the same strengths, 80/20 split, Spark ALS and
parameters), with every user folded in from their whole history and the top 10 excluding what
they rated, served the same way (users with no history get the most popular movies). The
pipeline's answer on day d comes from the model of night d-1 plus the speed layer's fold-in of
day d; the oracle's is a full retrain at the end of day d: their gap is what the lambda
architecture costs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batch.als import metrics  # noqa: E402
from batch.als.evaluate import fold_in_users  # noqa: E402
from batch.als.model import AlsParams, top_n_excluding_seen  # noqa: E402
from recsys import windows  # noqa: E402
from recsys.importer import movielens  # noqa: E402
from recsys.importer.history import Archive  # noqa: E402
from recsys.importer.loader import load  # noqa: E402
from recsys.importer.model import Dataset, Interaction  # noqa: E402
from stack import airflow, core  # noqa: E402
from stack.auth import token  # noqa: E402
from stack.config import StackConfig  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "movielens" / "ml-100k"
DAG = "recsys_daily"
K = 10
POST_BATCH = 500  # the most events a PostEvents call may carry (event_service.proto)
NIGHT_TIMEOUT_S = 45 * 60
APPLY_TIMEOUT_S = 180
# A stack of its own: nothing of the developer's stack is read or changed. Its ports sit below the
# ephemeral range, as the stack requires (stack.config.check_ports).
STACK_ENV = {
    "STACK_DIR": ".stack-lifecycle",
    "STACK_DISABLE": "demo-data,first-model",
    "POSTGRES_PORT": "25432",
    "REDIS_PORT": "26379",
    "KAFKA_PORT": "29092",
    "KAFKA_CONTROLLER_PORT": "29093",
    "ENVOY_PORT": "28080",
    "ENVOY_ADMIN_PORT": "29901",
    "RECOMMENDER_PORT": "25051",
    "EVENT_PORT": "25052",
    "PROFILE_PORT": "25053",
    "RECOMMENDER_METRICS_PORT": "29151",
    "EVENT_METRICS_PORT": "29152",
    "PROFILE_METRICS_PORT": "29153",
    "WEB_PORT": "23000",
    "JAEGER_OTLP_PORT": "24317",
    "JAEGER_QUERY_PORT": "26686",
    "JAEGER_ADMIN_PORT": "24270",
    "AIRFLOW_PORT": "28280",
    "ENVOY_METRICS_PORT": "29902",
    "STREAMING_METRICS_PORT": "29154",
    "SPARK_MASTER_PORT": "27077",
    "SPARK_MASTER_WEBUI_PORT": "28090",
}
# What a fresh stack directory may keep from the developer's: built tools and downloaded jars.
REUSED = ("bin", "jars", "build", "kafka/libs")
TYPES = {"rate": "EVENT_TYPE_RATE"}
# The evaluate task's verdict, as the night's outcome (a candidate is published).
PUBLISHED = {"candidate": "published", "rejected": "rejected by the gate", "none": "nothing to train"}


# --- the stack --------------------------------------------------------------------------------


def fresh_stack(keep_data: bool) -> StackConfig:
    # The process environment, not only the config: STACK_DISABLE is read from it, and the
    # importer and Spark sessions started here must see the bench stack's ports.
    os.environ.update(STACK_ENV)
    cfg = StackConfig.load()
    core.down(cfg)
    if not keep_data and cfg.dir.exists():
        keep = {cfg.dir / name for name in REUSED}
        for path in sorted(cfg.dir.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if any(path == k or k in path.parents or path in k.parents for k in keep):
                continue
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    cfg.dir.mkdir(exist_ok=True)
    for name in REUSED:
        if (ROOT / ".stack" / name).exists() and not (cfg.dir / name).exists():
            (cfg.dir / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(ROOT / ".stack" / name, cfg.dir / name, symlinks=True)
    core.up(cfg)
    return cfg


@dataclass
class Gateway:
    """Envoy's REST API, as the services' clients and the users' browsers call it."""

    cfg: StackConfig
    service: str = ""
    _users: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.service = token(self.cfg, service="lifecycle-bench")

    def user_token(self, user: int) -> str:
        if user not in self._users:
            self._users[user] = token(self.cfg, user=user)
        return self._users[user]

    def call(self, method: str, path: str, tok: str, body: Any = None) -> Any:
        req = urllib.request.Request(
            self.cfg.envoy_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"content-type": "application/json", "authorization": f"Bearer {tok}"},
        )
        for attempt in range(5):
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    return json.loads(resp.read())
            except urllib.error.HTTPError as err:
                if err.code != 429 or attempt == 4:
                    raise RuntimeError(f"{method} {path} -> {err.code}: {err.read()[:300]!r}") from None
                time.sleep(1.0)
        raise AssertionError("unreachable")

    def post_events(self, events: pd.DataFrame) -> None:
        for start in range(0, len(events), POST_BATCH):
            chunk = events.iloc[start : start + POST_BATCH]
            body = {
                "events": [
                    {
                        "eventId": r.event_id,
                        "userId": str(r.user_id),
                        "movieId": str(r.movie_id),
                        "type": TYPES[r.event_type],
                        "rating": r.rating,
                        "occurredAt": r.occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    }
                    for r in chunk.itertuples()
                ]
            }
            answer = self.call("POST", "/v1/events:batch", self.service, body)
            refused = [r for r in answer.get("results", []) if r.get("code", 0) != 0]
            if refused:
                raise RuntimeError(f"{len(refused)} events refused, e.g. {refused[0]}")

    def recommendations(self, user: int) -> tuple[list[int], str]:
        answer = self.call("GET", f"/v1/users/{user}/recommendations?limit={K}", self.user_token(user))
        items = [int(i["movie"]["movieId"]) for i in answer.get("items", [])]
        return items, answer.get("tier", "")

    def profile_counts(self, user: int) -> tuple[int, int]:
        profile = self.call("GET", f"/v1/users/{user}/profile", self.service)["profile"]
        return int(profile.get("interactionCount", 0)), int(profile.get("ratingCount", 0))


# --- the dataset ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Replay:
    dataset: Dataset
    events: pd.DataFrame  # event_id, user_id, movie_id, event_type, rating, occurred_at (shifted)
    start: datetime  # midnight UTC opening simulated day 0 (shifted)
    days: int
    shift: timedelta

    def day(self, d: int) -> pd.DataFrame:
        lo = self.start + timedelta(days=d)
        e = self.events
        return e[(e.occurred_at >= lo) & (e.occurred_at < lo + timedelta(days=1))]

    def before(self, moment: datetime) -> pd.DataFrame:
        return self.events[self.events.occurred_at < moment]


def read_replay(directory: Path, start: date | None, days: int) -> Replay:
    dataset = movielens.read(directory)
    events = pd.DataFrame(
        [
            (i.event_id, i.user_id, i.movie_id, i.event_type, i.rating, i.occurred_at)
            for i in dataset.interactions
        ],
        columns=["event_id", "user_id", "movie_id", "event_type", "rating", "occurred_at"],
    )
    events["occurred_at"] = pd.to_datetime(events["occurred_at"], utc=True)
    last = events.occurred_at.max().normalize()
    first = pd.Timestamp(start, tz="UTC") if start else last - pd.Timedelta(days=days)
    # Day `days` is the last one's "next day"; the replay ends at yesterday's midnight.
    today = pd.Timestamp(datetime.now(UTC).date(), tz="UTC")
    shift = (today - pd.Timedelta(days=1)) - (first + pd.Timedelta(days=days))
    events["occurred_at"] = events["occurred_at"] + shift
    events = events.sort_values(["occurred_at", "event_id"], kind="mergesort").reset_index(drop=True)
    return Replay(dataset, events, (first + shift).to_pydatetime(), days, shift.to_pytimedelta())


def bootstrap(cfg: StackConfig, replay: Replay) -> int:
    """The catalogue and the history before day 0, filed as `recsys-import` would have."""
    history = replay.before(replay.start)
    interactions = [
        Interaction(r.event_id, r.user_id, r.movie_id, r.event_type, r.rating, r.occurred_at.to_pydatetime())
        for r in history.itertuples()
    ]
    dataset = Dataset(replay.dataset.source, replay.dataset.movies, interactions)
    archive = Archive.from_env(cfg.child_env())
    load(dataset, cfg.database_url, archive=Archive(archive.uri, windows.recent_cutoff(replay.start)))
    return len(interactions)


# --- the oracle -------------------------------------------------------------------------------


class Oracle:
    """A full retrain with the nightly job's code on everything up to a moment."""

    def __init__(self) -> None:
        from batch.common.spark import build_session

        self.spark = build_session("recsys-lifecycle-oracle")
        self.params = AlsParams()

    def recommend(self, events: pd.DataFrame, users: list[int]) -> dict[int, list[int]]:
        from batch.als.data import EVENT_SCHEMA, split_holdout
        from batch.als.model import collect_factors, fit_implicit, interaction_strengths, to_pandas
        from batch.als.train import HOLDOUT_PERCENT

        frame = events.assign(occurred_at=events.occurred_at.dt.tz_convert(None))
        sdf = self.spark.createDataFrame(frame[[f.name for f in EVENT_SCHEMA.fields]], EVENT_SCHEMA)
        strengths = interaction_strengths(sdf).cache()
        train, _ = split_holdout(strengths, HOLDOUT_PERCENT)
        factors = collect_factors(fit_implicit(train, self.params))
        pairs = to_pandas(strengths)
        folded = fold_in_users(
            factors.item_ids,
            factors.item_factors,
            pairs,
            self.params.user_step,
            users=np.asarray(users),
        )
        top = top_n_excluding_seen(folded, pairs[["user_id", "movie_id"]], K)
        strengths.unpersist()
        lists = {
            int(u): g.sort_values("rank")["movie_id"].astype(int).tolist() for u, g in top.groupby("user_id")
        }
        popular = (
            pairs[pairs.strength > 0]
            .groupby("movie_id")
            .size()
            .sort_values(ascending=False, kind="mergesort")
        )
        seen = pairs.groupby("user_id")["movie_id"].apply(set).to_dict()
        for u in users:
            if u not in lists:
                mine = seen.get(u, set())
                lists[u] = [int(m) for m in popular.index if m not in mine][:K]
        return lists

    def stop(self) -> None:
        self.spark.stop()


# --- measuring ----------------------------------------------------------------------------------


def scores(lists: dict[int, list[int]], truth: pd.DataFrame) -> tuple[float, float]:
    """Prequential NDCG@10 and recall@10 over the users of `truth` (batch.als.metrics' formulas)."""
    pred = pd.DataFrame(
        [(u, m, -i) for u, ms in lists.items() for i, m in enumerate(ms)],
        columns=["user_id", "movie_id", "score"],
    )
    truth = truth[["user_id", "movie_id"]].drop_duplicates().assign(rating=1.0)
    return metrics.ndcg_at_k(truth, pred, K), metrics.recall_at_k(truth, pred, K)


def counts(db: psycopg.Connection[Any], sql: str, *args: Any) -> int:
    row = db.execute(sql, args).fetchone()
    return int(row[0]) if row else 0


def wait_applied(db: psycopg.Connection[Any], ids: list[str]) -> float:
    """Seconds until the streaming job has stored every one of `ids`."""
    started = time.monotonic()
    while True:
        n = counts(db, "SELECT count(*) FROM rt_user_interactions WHERE event_id = ANY(%s)", ids)
        if n == len(ids):
            return time.monotonic() - started
        if time.monotonic() - started > APPLY_TIMEOUT_S:
            raise RuntimeError(f"the stream stored {n} of {len(ids)} events in {APPLY_TIMEOUT_S}s")
        time.sleep(0.5)


@dataclass
class Night:
    version: str
    status: str
    seconds: float
    trained_events: int | None
    window_rows: int
    window_expected: int


def quiet_the_schedule(api: airflow.Api) -> list[str]:
    """Fail the DAG's own scheduled run of today (a fresh stack runs the latest 02:00 at once):
    its archive would use today's date as "now" in the middle of the replay, and with
    max_active_runs=1 it would hold the simulated nights back. Returns the runs it stopped."""
    deadline = time.monotonic() + 300
    while True:
        try:
            dag = api.get(f"/api/v2/dags/{DAG}")
        except Exception:  # not parsed yet
            dag = {}
        due = dag.get("next_dagrun_logical_date")
        # The scheduler has created today's run once the next one is due after today's 02:00.
        if due and datetime.fromisoformat(due.replace("Z", "+00:00")) > datetime.now(UTC):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{DAG} was not scheduled within 300 s: {dag}")
        time.sleep(2)
    stopped = []
    for run in api.get(f"/api/v2/dags/{DAG}/dagRuns")["dag_runs"]:
        if not run["dag_run_id"].startswith("lifecycle__") and run["state"] in ("queued", "running"):
            api.patch(f"/api/v2/dags/{DAG}/dagRuns/{run['dag_run_id']}", {"state": "failed"})
            stopped.append(run["dag_run_id"])
    return stopped


def run_night(
    cfg: StackConfig, api: airflow.Api, db: psycopg.Connection[Any], replay: Replay, at: datetime
) -> Night:
    run_id = f"lifecycle__{at:%Y%m%d}__{int(time.time())}"
    started = time.monotonic()
    api.trigger(DAG, run_id, at)
    state = api.wait(DAG, run_id, NIGHT_TIMEOUT_S)
    seconds = time.monotonic() - started
    if state != "success":
        raise RuntimeError(f"{DAG} run {run_id} is {state}: {api.task_states(DAG, run_id)}")
    version = str(api.xcom(DAG, run_id, "train") or "")
    status = str(api.xcom(DAG, run_id, "evaluate") or "")
    trained = None
    if version:
        row = db.execute("SELECT trained_on FROM models WHERE version = %s", (version,)).fetchone()
        trained = int(row[0]["events"]) if row and row[0] else None
    e = replay.events
    expected = int(((e.occurred_at >= at - windows.RECENT) & (e.occurred_at < at)).sum())
    rows = counts(db, "SELECT count(*) FROM rt_user_interactions")
    return Night(version, status, seconds, trained, rows, expected)


@dataclass
class Day:
    day: int
    date: str
    events: int
    apply_seconds: float
    targets: int
    returning: int
    ndcg: float
    recall: float
    oracle_ndcg: float
    oracle_recall: float
    ndcg_returning: float
    oracle_ndcg_returning: float
    seen_share: float
    served: int
    tiers: dict[str, int]
    profiles: int
    profiles_right: int
    night: Night | None = None


def measure_day(gw: Gateway, oracle: Oracle, replay: Replay, d: int, apply_seconds: float) -> Day:
    end = replay.start + timedelta(days=d + 1)
    so_far = replay.before(end)
    seen = so_far.groupby("user_id")["movie_id"].apply(set).to_dict()
    nxt = replay.day(d + 1)
    targets = sorted(int(u) for u in nxt.user_id.unique())
    served: dict[int, list[int]] = {}
    tiers: Counter[str] = Counter()
    for u in targets:
        served[u], tier = gw.recommendations(u)
        tiers[tier] += 1
    oracle_lists = oracle.recommend(so_far, targets)
    n_served = sum(len(v) for v in served.values())
    already = sum(1 for u, ms in served.items() for m in ms if m in seen.get(u, set()))
    returning = [u for u in targets if u in seen]
    truth_ret = nxt[nxt.user_id.isin(returning)]
    ndcg, recall = scores(served, nxt)
    o_ndcg, o_recall = scores(oracle_lists, nxt)
    ndcg_r = scores({u: served[u] for u in returning}, truth_ret)[0] if returning else 0.0
    o_ndcg_r = scores({u: oracle_lists[u] for u in returning}, truth_ret)[0] if returning else 0.0
    today = replay.day(d)
    right = 0
    truth_counts = so_far.groupby("user_id").size()
    ratings = so_far[so_far.event_type == "rate"].groupby("user_id").size()
    users = sorted(int(u) for u in today.user_id.unique())
    for u in users:
        if gw.profile_counts(u) == (int(truth_counts[u]), int(ratings.get(u, 0))):
            right += 1
    return Day(
        day=d,
        date=(replay.start + timedelta(days=d) - replay.shift).date().isoformat(),
        events=len(today),
        apply_seconds=round(apply_seconds, 1),
        targets=len(targets),
        returning=len(returning),
        ndcg=ndcg,
        recall=recall,
        oracle_ndcg=o_ndcg,
        oracle_recall=o_recall,
        ndcg_returning=ndcg_r,
        oracle_ndcg_returning=o_ndcg_r,
        seen_share=already / n_served if n_served else 0.0,
        served=n_served,
        tiers=dict(tiers),
        profiles=len(users),
        profiles_right=right,
    )


# --- the report ---------------------------------------------------------------------------------


def report(days: list[Day], night0: Night, boot: int, replay: Replay, total_s: float) -> str:
    last = days[-1]
    ratio = last.ndcg / last.oracle_ndcg if last.oracle_ndcg else float("nan")
    nights = [night0, *(d.night for d in days if d.night)]
    all_windows_right = all(n.window_rows == n.window_expected for n in nights)
    night_minutes = [n.seconds / 60 for n in nights]
    lines = [
        "# bench/lifecycle.py: the system over simulated days",
        "",
        f"MovieLens 100K replayed through the real pipeline: {boot:,} ratings before day 0 imported",
        f"(older than the window into the archive), then {len(days)} simulated days of ratings through",
        "Envoy, Kafka and the streaming job, with `recsys_daily` run by the stack's Airflow each",
        "night. Dates are the dataset's own (the replay shifts them by whole days). Written by",
        f"`bench/lifecycle.py` in {total_s / 60:.0f} min on the 2-core box.",
        "",
        f"- **already-seen share: {max(d.seen_share for d in days):.3f} at most** (every day; target 0)",
        f"- **last day's prequential NDCG@10: pipeline {last.ndcg:.4f}, oracle {last.oracle_ndcg:.4f}"
        f" (ratio {ratio:.3f}; target >= 0.9)**",
        f"- profile counts right: {sum(d.profiles_right for d in days)} of {sum(d.profiles for d in days)}"
        " users checked (each day's active users)",
        f"- recent window right after every night: {all_windows_right}"
        " (rows in `rt_user_interactions` = the dataset's events of the 48 h before the night)",
        f"- night 0 (bootstrap model): {PUBLISHED.get(night0.status, night0.status)}, trained on"
        f" {night0.trained_events:,} events; nights took {min(night_minutes):.1f}-"
        f"{max(night_minutes):.1f} min",
        "",
        "Per day: the day's events; the users active the next day (targets; returning = with",
        "history); prequential NDCG@10 / recall@10 against their next-day ratings, the pipeline's",
        "served list (model of last night + the speed layer's fold-in of the day) beside the",
        "oracle's (full retrain at the end of the day, served the same way); NDCG@10 of the",
        "returning users alone; the served tiers; the night's DAG run (status of the new model,",
        "run time) and the recent window after it (rows in `rt_user_interactions` vs the",
        "dataset's events in the 48 h before the night).",
        "",
        "| day | date | events | targets (ret.) | NDCG@10 | oracle | recall@10 | oracle | NDCG ret."
        " | oracle ret. | seen share | tiers | profiles right | night | window rows (expected) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in days:
        n = d.night
        night = f"{PUBLISHED.get(n.status, n.status)}, {n.seconds / 60:.1f} min" if n else "-"
        window = f"{n.window_rows} ({n.window_expected})" if n else "-"
        tiers = ", ".join(f"{k.removeprefix('TIER_').lower()} {v}" for k, v in sorted(d.tiers.items()))
        lines.append(
            f"| {d.day} | {d.date} | {d.events} | {d.targets} ({d.returning}) | {d.ndcg:.4f} |"
            f" {d.oracle_ndcg:.4f} | {d.recall:.4f} | {d.oracle_recall:.4f} | {d.ndcg_returning:.4f} |"
            f" {d.oracle_ndcg_returning:.4f} | {d.seen_share:.3f} | {tiers} |"
            f" {d.profiles_right}/{d.profiles} | {night} | {window} |"
        )
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    lines += [
        "",
        f"Mean over the days: NDCG@10 pipeline {mean([d.ndcg for d in days]):.4f}, oracle"
        f" {mean([d.oracle_ndcg for d in days]):.4f}; recall@10 pipeline"
        f" {mean([d.recall for d in days]):.4f}, oracle {mean([d.oracle_recall for d in days]):.4f}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="MovieLens 100K directory")
    parser.add_argument("--start", type=date.fromisoformat, help="first replayed day (dataset time)")
    parser.add_argument("--days", type=int, default=14, help="simulated days (default %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "lifecycle.md")
    parser.add_argument("--keep-stack", action="store_true", help="leave the bench's stack up")
    opts = parser.parse_args(argv)

    started = time.monotonic()
    replay = read_replay(opts.data, opts.start, opts.days)
    cfg = fresh_stack(keep_data=False)
    oracle: Oracle | None = None
    try:
        gw, api = Gateway(cfg), airflow.Api(cfg)
        with psycopg.connect(cfg.database_url, autocommit=True) as db:
            print(f"scheduled runs stopped: {quiet_the_schedule(api)}", flush=True)
            boot = bootstrap(cfg, replay)
            night0 = run_night(cfg, api, db, replay, replay.start)
            print(f"bootstrap: {boot} events, night 0: {night0}", flush=True)
            # After the import: it stops the process's Spark session when it is done with it.
            oracle = Oracle()
            days: list[Day] = []
            for d in range(opts.days):
                today = replay.day(d)
                gw.post_events(today)
                applied = wait_applied(db, today.event_id.tolist())
                day = measure_day(gw, oracle, replay, d, applied)
                day.night = run_night(cfg, api, db, replay, replay.start + timedelta(days=d + 1))
                days.append(day)
                print(json.dumps(day, default=lambda o: o.__dict__), flush=True)
                opts.out.write_text(report(days, night0, boot, replay, time.monotonic() - started))
    finally:
        if oracle is not None:
            oracle.stop()
        if not opts.keep_stack:
            core.down(cfg)
    print(opts.out.read_text())
    seen_ok = all(d.seen_share == 0 for d in days)
    close = days[-1].ndcg >= 0.9 * days[-1].oracle_ndcg
    return 0 if seen_ok and close else 1


if __name__ == "__main__":
    sys.exit(main())

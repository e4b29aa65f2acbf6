"""The synthetic demo catalogue: plausible movies and users whose tastes follow genres.

MovieLens may not be redistributed, so the demo runs on generated data. It is built so
that collaborative filtering has real signal to learn:

- every movie has 1-3 genres (MovieLens genre names, drawn by realistic frequency), a
  hidden "quality" and a popularity prior; titles come from word lists, years skew recent;
- every user loves one to three genres and dislikes one or two, and has a heavy-tailed
  activity level;
- a user picks movies with probability ~ popularity x exp(affinity), without repeats, and
  rates them by affinity plus noise (half stars), or views / clicks / watches / likes /
  dislikes them (like and dislike also follow affinity);
- timestamps are spread over the last `days` days (default 14), inside the training window.

The same seed gives the same catalogue and events (timestamps are relative to `now`); event
ids are `synth-{seed}:{user}:{movie}`, so re-importing is idempotent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from recsys.domain.events import RATING_MAX, RATING_MIN
from recsys.importer.model import Dataset, Interaction, Movie

DEFAULT_MOVIES = 2_000
DEFAULT_USERS = 500
DEFAULT_INTERACTIONS = 50_000
DEFAULT_SEED = 42
DEFAULT_DAYS = 14.0

# MovieLens (latest) genre names with rough relative frequencies in its catalogue.
GENRES: dict[str, float] = {
    "Drama": 10,
    "Comedy": 8,
    "Thriller": 5,
    "Action": 4.5,
    "Romance": 4,
    "Adventure": 3,
    "Crime": 3,
    "Sci-Fi": 2.5,
    "Horror": 2.5,
    "Fantasy": 2,
    "Children": 1.8,
    "Mystery": 1.5,
    "Animation": 1.5,
    "Documentary": 1.2,
    "War": 1,
    "Musical": 0.8,
    "Western": 0.6,
    "Film-Noir": 0.3,
}
GENRE_NAMES = tuple(GENRES)

_ADJECTIVES = (
    "Silent",
    "Crimson",
    "Broken",
    "Last",
    "Hidden",
    "Golden",
    "Midnight",
    "Wild",
    "Lost",
    "Eternal",
    "Forgotten",
    "Burning",
    "Frozen",
    "Secret",
    "Distant",
    "Dark",
    "Bright",
    "Savage",
    "Quiet",
    "Restless",
    "Electric",
    "Hollow",
    "Iron",
    "Velvet",
    "Endless",
    "Little",
    "Brave",
    "Final",
    "Strange",
    "Shattered",
    "Sweet",
    "Bitter",
    "Lonely",
    "Glass",
    "Scarlet",
)
_NOUNS = (
    "River",
    "Kingdom",
    "Shadow",
    "Promise",
    "Summer",
    "Winter",
    "Horizon",
    "Garden",
    "Storm",
    "Empire",
    "Heart",
    "Road",
    "City",
    "Island",
    "Mirror",
    "Station",
    "Harbor",
    "Circus",
    "Symphony",
    "Frontier",
    "Signal",
    "Orchard",
    "Voyage",
    "Inheritance",
    "Lighthouse",
    "Ghost",
    "Detective",
    "Machine",
    "Dragon",
    "Hunter",
    "Stranger",
    "Witness",
    "Dancer",
    "Soldier",
    "Outlaw",
    "Planet",
    "Robot",
    "Heist",
    "Wedding",
    "Secret",
    "Letter",
    "Night",
    "Fire",
)
_PLACES = (
    "Paris",
    "Tokyo",
    "the North",
    "Avalon",
    "Mars",
    "Brooklyn",
    "the Valley",
    "Casablanca",
    "the Deep",
    "Eden",
    "Cairo",
    "the Frontier",
    "Marrakesh",
    "Sunset Boulevard",
    "the Moon",
    "Rio",
    "Venice",
    "Alaska",
    "the Desert",
    "Shanghai",
    "Berlin",
)
_NAMES = (
    "Amelia",
    "Jack",
    "Rosa",
    "Henry",
    "Nora",
    "Felix",
    "Mabel",
    "Oscar",
    "Iris",
    "Leo",
    "Clara",
    "Max",
    "Edith",
    "Hugo",
    "June",
    "Victor",
    "Lola",
    "Sam",
    "Vera",
    "Theo",
)
_PATTERNS = (
    "The {adj} {noun}",
    "{noun} of {place}",
    "{adj} {noun}",
    "{name}'s {noun}",
    "The {noun} of {place}",
    "Return to {place}",
    "{noun} & {noun2}",
    "The {noun}",
    "{adj} {noun}s",
    "A {adj} {noun}",
    "{name} and the {adj} {noun}",
    "Nights in {place}",
    "The Last {noun}",
    "Beyond the {noun}",
)
_SEQUELS = ("II", "III", "IV", "Part 2", "Returns", "Reloaded", "Forever", "Rising")

EVENT_MIX = (("rate", 0.55), ("view", 0.15), ("click", 0.10), ("watch", 0.10), ("feeling", 0.10))


def _titles(rng: np.random.Generator, n: int) -> list[str]:
    titles: list[str] = []
    seen: set[str] = set()
    while len(titles) < n:
        pattern = _PATTERNS[rng.integers(len(_PATTERNS))]
        noun, noun2 = rng.choice(len(_NOUNS), 2, replace=False)
        title = pattern.format(
            adj=_ADJECTIVES[rng.integers(len(_ADJECTIVES))],
            noun=_NOUNS[noun],
            noun2=_NOUNS[noun2],
            place=_PLACES[rng.integers(len(_PLACES))],
            name=_NAMES[rng.integers(len(_NAMES))],
        )
        if title in seen:  # a sequel, as studios do
            for sequel in _SEQUELS:
                if f"{title} {sequel}" not in seen:
                    title = f"{title} {sequel}"
                    break
            else:
                continue
        seen.add(title)
        titles.append(title)
    return titles


def _activity(rng: np.random.Generator, users: int, total: int, cap: int) -> np.ndarray[Any, Any]:
    """Interactions per user: heavy-tailed, each in [min(5, cap), cap], summing to `total`."""
    weights = rng.lognormal(0.0, 0.9, users)
    low = min(5, cap, total // users)
    counts: np.ndarray[Any, Any] = np.clip(
        np.floor(weights / weights.sum() * total).astype(np.int64), low, cap
    )
    order = rng.permutation(users)
    while (diff := total - int(counts.sum())) != 0:
        room = counts < cap if diff > 0 else counts > low
        candidates = order[room[order]]
        step = candidates[: abs(diff)]
        counts[step] += 1 if diff > 0 else -1
    return counts


def generate(
    movies: int = DEFAULT_MOVIES,
    users: int = DEFAULT_USERS,
    interactions: int = DEFAULT_INTERACTIONS,
    seed: int = DEFAULT_SEED,
    now: datetime | None = None,
    days: float = DEFAULT_DAYS,
) -> Dataset:
    if movies < 1 or users < 1 or interactions < 0:
        raise ValueError("need at least one movie and one user, and no negative interactions")
    cap = max(1, int(movies * 0.6)) if movies >= 10 else movies
    if interactions > users * cap:
        raise ValueError(
            f"{interactions} interactions do not fit {users} users x {movies} movies "
            f"(at most {users * cap}: a user meets at most {cap} movies)"
        )
    rng = np.random.default_rng(seed)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    n_genres = len(GENRE_NAMES)
    freq = np.array(list(GENRES.values()))
    freq = freq / freq.sum()

    # Movies: genres, years, titles, and the hidden item side of the taste model.
    item_genres = np.zeros((movies, n_genres))
    catalogue: list[Movie] = []
    titles = _titles(rng, movies)
    years = np.clip(now.year - np.floor(rng.exponential(14.0, movies)), 1930, now.year).astype(int)
    for m in range(movies):
        k = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
        picked = sorted(rng.choice(n_genres, k, replace=False, p=freq))
        item_genres[m, picked] = 1.0 / np.sqrt(k)
        catalogue.append(
            Movie(m + 1, titles[m], int(years[m]), tuple(sorted(GENRE_NAMES[g] for g in picked)))
        )
    quality = rng.normal(0.0, 0.5, movies)
    log_popularity = 0.8 * quality + rng.normal(0.0, 0.9, movies)

    # Users: loved and disliked genres, plus a little taste for everything else.
    taste = rng.normal(0.0, 0.3, (users, n_genres))
    for u in range(users):
        loved = rng.choice(n_genres, int(rng.integers(1, 4)), replace=False, p=freq)
        taste[u, loved] += rng.uniform(1.5, 2.5, len(loved))
        disliked = rng.choice(
            np.setdiff1d(np.arange(n_genres), loved), int(rng.integers(1, 3)), replace=False
        )
        taste[u, disliked] -= rng.uniform(1.0, 2.0, len(disliked))
    bias = rng.normal(0.0, 0.35, users)  # some users rate generously

    per_user = _activity(rng, users, interactions, cap)
    kinds = np.array([k for k, _ in EVENT_MIX])
    kind_p = np.array([p for _, p in EVENT_MIX])
    horizon = days * 86_400.0
    events: list[Interaction] = []
    for u in range(users):
        n = int(per_user[u])
        if n == 0:
            continue
        affinity = item_genres @ taste[u] + quality  # what this user would think of each movie
        keys = log_popularity + 1.5 * affinity + rng.gumbel(size=movies)
        chosen = np.argpartition(-keys, n - 1)[:n]  # n distinct movies, weighted (Gumbel top-k)
        a = affinity[chosen]
        # Within a user, stars follow affinity; across users they centre near 3.5 like MovieLens.
        stars = 3.5 + bias[u] + 0.9 * (a - a.mean()) / (a.std() + 0.25)
        stars = np.clip(np.round((stars + rng.normal(0.0, 0.5, n)) * 2) / 2, RATING_MIN, RATING_MAX)
        kind = rng.choice(kinds, n, p=kind_p)
        liked = rng.random(n) < 1.0 / (1.0 + np.exp(-2.0 * (a - np.quantile(a, 0.3))))
        ago = rng.uniform(60.0, horizon, n)
        for j in range(n):
            movie_id = int(chosen[j]) + 1
            event_type = str(kind[j])
            if event_type == "feeling":
                event_type = "like" if liked[j] else "dislike"
            rating = float(stars[j]) if event_type == "rate" else None
            events.append(
                Interaction(
                    f"synth-{seed}:{u + 1}:{movie_id}",
                    u + 1,
                    movie_id,
                    event_type,
                    rating,
                    now - timedelta(seconds=int(ago[j])),
                )
            )
    events.sort(key=lambda e: e.occurred_at)
    return Dataset(f"synthetic(seed={seed})", catalogue, events)

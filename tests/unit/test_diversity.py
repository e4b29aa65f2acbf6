"""The MMR re-rank of recommender_svc.diversity: what each weight picks, on hand-made lists."""

from __future__ import annotations

import pytest

from recommender_svc.diversity import genre_similarity, intra_list_diversity, mmr_order

D, C, H = frozenset({"Drama"}), frozenset({"Comedy"}), frozenset({"Horror"})
DR = frozenset({"Drama", "Romance"})


def test_genre_similarity_is_jaccard_and_zero_without_genres() -> None:
    assert genre_similarity(D, D) == 1.0
    assert genre_similarity(D, DR) == 0.5
    assert genre_similarity(D, C) == 0.0
    assert genre_similarity(frozenset(), frozenset()) == 0.0


def test_weight_zero_keeps_the_order() -> None:
    genres = [D, D, D, C, H]
    assert mmr_order(genres, 0.0, 3) == [0, 1, 2]
    assert mmr_order(genres, 0.0, 10) == [0, 1, 2, 3, 4]


def test_a_wall_of_one_genre_is_broken_up() -> None:
    # A drama fan's list: five dramas, then a comedy and a horror film.
    genres = [D, D, D, D, D, C, H]
    picked = mmr_order(genres, 0.5, 3)
    assert picked[0] == 0  # the most relevant movie always comes first
    assert {genres[i] for i in picked} == {D, C, H}
    assert intra_list_diversity([genres[i] for i in picked]) == 1.0
    assert intra_list_diversity([genres[i] for i in mmr_order(genres, 0.0, 3)]) == 0.0


def test_a_small_weight_moves_only_what_is_close_in_relevance() -> None:
    # At w = 0.1 a repeat costs 0.1 and each rank step 0.9 / n: the comedy one rank below the
    # second drama overtakes it, the horror film six ranks down does not.
    genres = [D, D, C, D, D, D, D, D, H]
    assert mmr_order(genres, 0.1, 3) == [0, 2, 1]


def test_more_weight_never_lowers_diversity_here() -> None:
    genres = [D, DR, D, DR, C, D, H, DR, C, D]
    ild = [intra_list_diversity([genres[i] for i in mmr_order(genres, w, 5)]) for w in (0.0, 0.3, 0.7, 1.0)]
    assert ild == sorted(ild)
    assert ild[-1] > ild[0]


@pytest.mark.parametrize("weight", [0.0, 0.4, 1.0])
def test_picks_are_distinct_indexes_of_the_pool(weight: float) -> None:
    genres = [D, C, H, DR, D, C]
    picked = mmr_order(genres, weight, 4)
    assert len(picked) == 4 == len(set(picked))
    assert all(0 <= i < len(genres) for i in picked)
    assert mmr_order(genres, weight, 10) and len(mmr_order(genres, weight, 10)) == len(genres)
    assert mmr_order([], weight, 5) == []

"""The experiments' split: deterministic, close to the configured share, independent per experiment."""

from __future__ import annotations

import pytest

from recsys.domain.experiments import CANDIDATE, CONTROL, bucket, variant

USERS = range(1_000_000, 1_010_000)  # 10,000 users


@pytest.mark.parametrize("share", [0.1, 0.25, 0.5, 0.9])
def test_users_split_within_3_percent_of_the_share(share: float) -> None:
    candidates = sum(variant(u, "exp-a", share) == CANDIDATE for u in USERS)
    assert abs(candidates / len(USERS) - share) <= 0.03


def test_a_user_keeps_its_variant_and_experiments_split_independently() -> None:
    assert [variant(u, "exp-a", 0.5) for u in USERS] == [variant(u, "exp-a", 0.5) for u in USERS]
    a = [variant(u, "exp-a", 0.5) == CANDIDATE for u in USERS]
    b = [variant(u, "exp-b", 0.5) == CANDIDATE for u in USERS]
    both = sum(x and y for x, y in zip(a, b, strict=True)) / len(USERS)
    assert abs(both - 0.25) <= 0.03  # independent halves overlap in a quarter
    assert {variant(7, "exp-a", s) for s in (0.0, 1.0)} == {CONTROL, CANDIDATE}
    assert all(0 <= bucket(u, "x") < 1 for u in USERS)

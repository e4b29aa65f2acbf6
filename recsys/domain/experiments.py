"""Online experiments: which variant a user is in.

The split is a pure function of the user id and the experiment's name: the same user stays in
the same variant for the whole experiment, on every replica, with nothing stored per user, and
two experiments split users independently of each other.
"""

from __future__ import annotations

import hashlib

CONTROL = "control"  # served by the live model
CANDIDATE = "candidate"  # served by the experiment's candidate version


def bucket(user_id: int, experiment: str) -> float:
    """A number in [0, 1), uniform over users, from a hash of the experiment and the user."""
    digest = hashlib.blake2b(f"{experiment}\0{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def variant(user_id: int, experiment: str, candidate_share: float) -> str:
    """CANDIDATE for a `candidate_share` of users, CONTROL for the others."""
    return CANDIDATE if bucket(user_id, experiment) < candidate_share else CONTROL

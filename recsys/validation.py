"""Request validation that names the offending field.

Handlers collect every violation of a request before answering, so a client fixes all of
them in one round trip:

    check = Checks()
    check.positive("user_id", request.user_id)
    limit = check.optional_range(request, "limit", 1, 100, default=20)
    check.done()          # raises InvalidArgument naming each bad field
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from recsys.errors import FieldViolation, InvalidArgument


class Checks:
    """Accumulates field violations of one request."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def fail(self, field: str, description: str) -> None:
        self.violations.append(FieldViolation(field, description))

    def positive(self, field: str, value: int) -> None:
        if value <= 0:
            self.fail(field, f"must be a positive id, got {value}")

    def in_range(self, field: str, value: float, lo: float, hi: float) -> None:
        if not lo <= value <= hi:
            self.fail(field, f"must be between {lo:g} and {hi:g}, got {value:g}")

    def optional_range(self, message: Any, field: str, lo: int, hi: int, *, default: int) -> int:
        """The value of an `optional` integer field, `default` when absent; checked when present."""
        if not message.HasField(field):
            return default
        value = int(getattr(message, field))
        self.in_range(field, value, lo, hi)
        return value

    def max_len(self, field: str, value: str, limit: int) -> None:
        """A text field: at most `limit` characters, and no NUL (U+0000), which PostgreSQL text
        cannot hold (found by bench/fuzz.py: `?query=a%00b` was a 500)."""
        if len(value) > limit:
            self.fail(field, f"must be at most {limit} characters, got {len(value)}")
        if "\x00" in value:
            self.fail(field, "must not contain NUL characters")

    def max_items(self, field: str, values: Iterable[Any], limit: int) -> None:
        count = len(list(values))
        if count > limit:
            self.fail(field, f"must have at most {limit} items, got {count}")

    def all_positive(self, field: str, values: Iterable[int]) -> None:
        for i, value in enumerate(values):
            if value <= 0:
                self.fail(f"{field}[{i}]", f"must be a positive id, got {value}")

    def done(self) -> None:
        """Raise InvalidArgument if anything failed."""
        if self.violations:
            raise InvalidArgument(self.violations)

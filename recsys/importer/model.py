"""What every source produces and the loader consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


class ImportFormatError(ValueError):
    """A source file is malformed; the message reads `file:line: reason`."""

    def __init__(self, path: Path | str, line: int | None, reason: str) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else f"{self.path}"
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True, slots=True)
class Movie:
    movie_id: int
    title: str
    year: int | None
    genres: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Interaction:
    event_id: str
    user_id: int
    movie_id: int
    event_type: str
    rating: float | None
    occurred_at: datetime


@dataclass
class Dataset:
    """A validated catalogue and its interactions; `source` names it in messages."""

    source: str
    movies: list[Movie] = field(default_factory=list)
    interactions: list[Interaction] = field(default_factory=list)

    @property
    def user_ids(self) -> set[int]:
        return {i.user_id for i in self.interactions}

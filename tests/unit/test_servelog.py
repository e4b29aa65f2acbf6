"""The serve log's rows: rendered when submitted, queued in order, bounded."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from recommender_svc.servelog import ServeLogEntry, ServeLogWriter, array_literal


def entry(rid: str) -> ServeLogEntry:
    return ServeLogEntry(rid, 7, "cache", "v1", [3, 1, 2], [0.5, 0.25, -1.0], datetime.now(UTC), 1.5)


def test_array_literal_round_trips_numbers() -> None:
    assert array_literal([3, 1, 2]) == "{3,1,2}"
    assert array_literal([]) == "{}"
    text = array_literal([0.1, -2.5e-07, 1e300])
    assert [float(x) for x in text.strip("{}").split(",")] == [0.1, -2.5e-07, 1e300]
    # PostgreSQL's float input takes these spellings (case-insensitive)
    assert array_literal([math.nan, math.inf, -math.inf]) == "{nan,inf,-inf}"


def test_submit_queues_the_insert_parameters() -> None:
    writer = ServeLogWriter(pool=None)  # type: ignore[arg-type]  # never flushed here
    writer.submit(entry("a"))
    row = writer.queue[0]
    assert row[:4] == ("a", 7, "cache", "v1")
    assert row[4:6] == ("{3,1,2}", "{0.5,0.25,-1.0}")


def test_a_full_queue_drops_the_oldest() -> None:
    writer = ServeLogWriter(pool=None, max_queue=3)  # type: ignore[arg-type]
    for rid in "abcde":
        writer.submit(entry(rid))
    assert [row[0] for row in writer.queue] == ["c", "d", "e"]
    assert writer.dropped == 2

"""After a micro-batch has committed: remove its events from the users' pending lists.

The Event service appends each durable event to its user's pending list (recsys.pending) and
the Recommender folds those in at request time; once the stream has stored an event, the
stored vector has it, so it leaves the list. Only the batch's own event ids are removed
(one script per user, in one pipeline), so events posted since stay visible. Best effort:
an entry that is not removed is harmless (the Recommender counts an event id once, whether it
is stored, pending or both) and expires with the list's TTL.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import redis

from recsys.pending import TRIM_SCRIPT, pending_key

log = logging.getLogger(__name__)


def trim_applied(client: redis.Redis, events: Iterable[Mapping[str, Any]]) -> int:
    """Remove the entries of `events` from their users' lists; how many were removed (0 on error)."""
    by_user: dict[int, list[str]] = defaultdict(list)
    for e in events:
        by_user[int(e["user_id"])].append(str(e["event_id"]))
    if not by_user:
        return 0
    script = client.register_script(TRIM_SCRIPT)
    try:
        pipe = client.pipeline(transaction=False)
        for user_id, ids in by_user.items():
            script(keys=[pending_key(user_id)], args=ids, client=pipe)
        return sum(int(n) for n in pipe.execute())
    except (redis.RedisError, OSError) as err:
        log.warning("could not trim pending lists", extra={"error": repr(err), "users": len(by_user)})
        return 0

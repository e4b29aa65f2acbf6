"""`python -m batch.als.rollback`: republish the previous model version, then drop cached lists.

The live model is marked `rejected`; the most recently retired version whose staged rows are
still kept (batch.als.publish.KEEP_VERSIONS) goes live again in one transaction.
"""

from __future__ import annotations

import argparse
import logging
import sys

from batch.als import publish
from recsys.config import Settings
from recsys.logs import setup_logging

log = logging.getLogger("batch.als.rollback")


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    settings = Settings.from_env()
    setup_logging("batch-als", settings.log_level)
    with publish.connect(settings.database_url) as conn:
        moved = publish.rollback(conn)
    if moved is None:
        print("nothing to roll back to", file=sys.stderr)
        return 1
    deleted = publish.invalidate_cache(settings.redis_url)
    log.info("rolled back", extra={"from": moved[0], "to": moved[1], "cache_deleted": deleted})
    print(f"{moved[0]} -> {moved[1]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

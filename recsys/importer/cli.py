"""`recsys-import`: load MovieLens or the synthetic demo catalogue into PostgreSQL.

    recsys-import movielens [--format 100k|latest-small] DIR
    recsys-import synthetic [--movies N] [--users N] [--interactions N] [--seed S] [--days D]

Common options (before or after the subcommand): --database-url URL (default: DATABASE_URL from
the environment / .env), --archive-uri URI (default: ARCHIVE_URI), --no-progress. Events older
than the recent window (48 h) are filed into the archive, the rest into PostgreSQL. Every file
is validated before anything is written; the load is one transaction and idempotent. Exit
codes: 0 done, 1 malformed input or the database refused (message on stderr:
`file:line: reason`), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recsys.importer import movielens, synthetic
from recsys.importer.history import Archive
from recsys.importer.loader import LoadError, load
from recsys.importer.model import Dataset, ImportFormatError


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database-url",
        default=argparse.SUPPRESS,
        help="PostgreSQL URL (default: DATABASE_URL from the environment or .env)",
    )
    common.add_argument(
        "--archive-uri",
        default=argparse.SUPPRESS,
        help="where history older than the recent window goes (default: ARCHIVE_URI)",
    )
    common.add_argument(
        "--no-progress",
        action="store_true",
        default=argparse.SUPPRESS,
        help="no progress bars (they are shown only when stderr is a terminal anyway)",
    )
    parser = argparse.ArgumentParser(
        prog="recsys-import",
        description="Import movies and interactions into the recsys database.",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="source", required=True, metavar="{movielens,synthetic}")

    ml = sub.add_parser("movielens", parents=[common], help="a MovieLens 100K or latest-small directory")
    ml.add_argument(
        "directory", type=Path, metavar="DIR", help="the folder with u.item/u.data or movies.csv/ratings.csv"
    )
    ml.add_argument("--format", choices=movielens.FORMATS, help="default: detected from the files in DIR")

    syn = sub.add_parser(
        "synthetic", parents=[common], help="the generated demo catalogue (default demo data)"
    )
    syn.add_argument("--movies", type=_positive, default=synthetic.DEFAULT_MOVIES, help="default %(default)s")
    syn.add_argument("--users", type=_positive, default=synthetic.DEFAULT_USERS, help="default %(default)s")
    syn.add_argument(
        "--interactions",
        type=_non_negative,
        default=synthetic.DEFAULT_INTERACTIONS,
        help="default %(default)s",
    )
    syn.add_argument("--seed", type=int, default=synthetic.DEFAULT_SEED, help="default %(default)s")
    syn.add_argument(
        "--days",
        type=float,
        default=synthetic.DEFAULT_DAYS,
        help="spread the events over the last D days (default %(default)s)",
    )
    return parser


def _database_url(opts: argparse.Namespace) -> str:
    url = getattr(opts, "database_url", None)
    if url:
        return str(url)
    from recsys.config import merged_env

    url = merged_env().get("DATABASE_URL", "")
    if not url:
        raise LoadError("DATABASE_URL is not set (environment or .env); or pass --database-url")
    return url


def _archive(opts: argparse.Namespace) -> Archive:
    from recsys.config import merged_env

    try:
        return Archive.from_env(merged_env(), getattr(opts, "archive_uri", None))
    except ValueError as exc:
        raise LoadError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    opts = parser.parse_args(argv)
    progress = not getattr(opts, "no_progress", False) and sys.stderr.isatty()
    try:
        dataset: Dataset
        if opts.source == "movielens":
            dataset = movielens.read(opts.directory, opts.format, progress=progress)
        else:
            try:
                dataset = synthetic.generate(
                    movies=opts.movies,
                    users=opts.users,
                    interactions=opts.interactions,
                    seed=opts.seed,
                    days=opts.days,
                )
            except ValueError as exc:
                parser.error(str(exc))
        result = load(dataset, _database_url(opts), progress=progress, archive=_archive(opts))
    except ImportFormatError as exc:
        print(f"recsys-import: {exc}", file=sys.stderr)
        print("recsys-import: nothing was imported", file=sys.stderr)
        return 1
    except LoadError as exc:
        print(f"recsys-import: {exc}", file=sys.stderr)
        return 1
    print(f"imported {result.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

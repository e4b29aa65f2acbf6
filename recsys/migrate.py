"""`recsys-migrate`: bring the database at DATABASE_URL to the latest schema (or a given one)."""

from __future__ import annotations

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config

from recsys.config import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # SQLAlchemy picks its driver from the scheme; the services use asyncpg on the same URL.
    url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("revision", nargs="?", default="head", help="target revision (default head)")
    parser.add_argument("--downgrade", action="store_true", help="go down to the revision instead")
    opts = parser.parse_args(argv)
    cfg = alembic_config(Settings.from_env().database_url)
    if opts.downgrade:
        command.downgrade(cfg, opts.revision)
    else:
        command.upgrade(cfg, opts.revision)


if __name__ == "__main__":
    main()

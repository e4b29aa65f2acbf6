"""Data import: MovieLens 100K / latest-small and the synthetic demo catalogue.

Everything is parsed and validated in memory first (`movielens`, `synthetic`), then loaded
into PostgreSQL in one transaction (`loader`), so a bad file imports nothing. The command
line is `recsys-import` (`cli`).
"""

from recsys.importer.model import Dataset, ImportFormatError, Interaction, Movie

__all__ = ["Dataset", "ImportFormatError", "Interaction", "Movie"]

"""The domain's knowledge, each piece in one place: every service, job and tool imports it.

- `recsys.domain.events`: the event vocabulary (proto enum <-> stored name <-> signal), the
  Kafka record's schema version, the rating range, the id-length rule, the "liked" rule, and
  the SQL rendered from them;
- `recsys.domain.vectors`: the embedding size and pgvector values as numpy;
- `recsys.domain.popularity`: the served ranking's popularity prior (its formula in numpy and
  SQL, the re-ranked depth, the default);
- `recsys.domain.movies`: the Movie message of the API;
- `recsys.domain.spark`: the event schemas of the Spark jobs (imports pyspark: jobs only).

The migrations keep their own literals on purpose: a migration is history, and must create
the same schema tomorrow whatever these modules say then.
"""

"""One module per shared table: every write to the table goes through its module.

A table written by several programs (the services, the streaming sink, the batch jobs, the
importer) keeps its rules in one place: what a row means, how a write keeps it consistent
(idempotent, recomputed rather than incremented). The map of tables, owners, writers and
readers is docs/data-ownership.md. A table with a single writer keeps its statements in that
writer (e.g. recommendation_logs in recommender_svc/servelog.py).

Synchronous functions take a psycopg connection or cursor (the jobs, the importer); the
services' asyncpg calls are async.
"""

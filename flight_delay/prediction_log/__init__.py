"""The prediction log: every /predict request and answer, kept in a SQL database (issue 11).

The API never waits on the database: it appends each request to a Redis stream, and a writer
process moves stream entries into SQL in batches, acknowledging them only after the commit, so a
database that is down delays the log and loses nothing. This package holds the tables
(``tables``), their Alembic migrations (``migrations``) and the store that writes and queries
them (``store``); it knows nothing about Flask.
"""

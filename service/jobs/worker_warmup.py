"""Imported once by the local executor's fork server, before it forks any worker.

A worker is a fresh fork per job, so whatever a first query costs it would pay on every job:
importing the database driver and configuring the ORM mappers took about 70 ms of a
1000-row fit's 200 ms in the worker (benchmarks/README.md, "Fit overhead"). Doing it here
once, in the fork server, hands every worker a warm copy.
"""

from __future__ import annotations

import contextlib

from sqlalchemy.orm import configure_mappers

from service.jobs import runner  # noqa: F401  (scikit-learn, pyarrow, the ORM tables)

configure_mappers()
with contextlib.suppress(ImportError):
    import sqlite3  # noqa: F401

    import sqlalchemy.dialects.sqlite.pysqlite
with contextlib.suppress(ImportError):
    import psycopg  # noqa: F401
    import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401

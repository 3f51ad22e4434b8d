"""PostgreSQL advisory locks held by a worker across long work, outside any transaction.

A transaction left open across a command holds every row lock it took until
the command ends: a task row updated inside it blocks that task's heartbeat
and gets a live task reaped. So the critical sections of workers (registry
publications, making a build root) hold *session* advisory locks on their
connection, run their tools with no transaction open, and write the database
in short transactions of their own. A worker that dies closes its
connection, which releases the locks.
"""

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)


@contextmanager
def session_locks(names: Sequence[str], *, shared: bool = False) -> Iterator[None]:
    """Hold the advisory locks *names* (taken in sorted order, so two holders never deadlock)
    until the block ends; waiting for them opens no transaction."""
    names = sorted(set(names))
    suffix = "_shared" if shared else ""
    taken: list[str] = []
    try:
        with connection.cursor() as cursor:
            for name in names:
                cursor.execute(f"SELECT pg_advisory_lock{suffix}(hashtextextended(%s, 0))", [name])
                taken.append(name)
        yield
    finally:
        _release(taken, suffix)


def _release(names: list[str], suffix: str) -> None:
    if not names:
        return
    try:
        with connection.cursor() as cursor:
            for name in reversed(names):
                cursor.execute(
                    f"SELECT pg_advisory_unlock{suffix}(hashtextextended(%s, 0))", [name]
                )
    except DatabaseError:
        # The connection is gone or broken: closing it is what releases session locks.
        logger.warning("advisory locks %s: unlock failed, closing the connection", names)
        connection.close()

"""Test-only task handlers, imported by the workers the tests start (CELERY_IMPORTS).

`test shell` runs its `message` with `sh -c`, through the engine's command
runner; `test shell in a transaction` does the same inside a database
transaction; `test noop` does nothing. No name exists upstream.
"""

from django.db import transaction

from tasks.engine import TaskContext, handler

SHELL = "test shell"
SHELL_IN_TRANSACTION = "test shell in a transaction"
NOOP = "test noop"


@handler(SHELL)
def run_shell(context: TaskContext) -> None:
    context.run(["sh", "-c", context.task.message], cwd=context.workspace)


@handler(SHELL_IN_TRANSACTION)
def run_shell_in_a_transaction(context: TaskContext) -> None:
    """A handler keeping a transaction open across its command, which the engine must
    survive: nothing a handler does may hold up the heartbeat of its task."""
    with transaction.atomic():
        context.run(["sh", "-c", context.task.message], cwd=context.workspace)


@handler(NOOP)
def do_nothing(context: TaskContext) -> None:
    pass

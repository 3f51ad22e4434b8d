"""Test-only task handlers, imported by the workers the tests start (CELERY_IMPORTS).

`test shell` runs its `message` with `sh -c`, through the engine's command
runner; `test noop` does nothing. Neither name exists upstream.
"""

from tasks.engine import TaskContext, handler

SHELL = "test shell"
NOOP = "test noop"


@handler(SHELL)
def run_shell(context: TaskContext) -> None:
    context.run(["sh", "-c", context.task.message], cwd=context.workspace)


@handler(NOOP)
def do_nothing(context: TaskContext) -> None:
    pass

"""Task handlers of the tasks app itself: the history purge."""

from django.conf import settings

from tasks.engine import TaskContext, TaskFailure, handler
from tasks.history import parse_purge_policy, purge_history
from tasks.models import TaskName


@handler(TaskName.HISTORY_PURGE)
def purge(context: TaskContext) -> None:
    try:
        policy = parse_purge_policy(settings.FATBUILDR_TASKS_PURGE)
    except ValueError as error:
        raise TaskFailure(f"FATBUILDR_TASKS_PURGE: {error}") from error
    purge_history(context.instance, policy, log=context.log)

"""Celery entry points: running one task, and the periodic recovery and purge jobs."""

from celery import shared_task

from instances.models import Instance
from tasks import engine
from tasks.models import TaskName


@shared_task(name="fatbuildr.run_task")
def run_task(task_id: str) -> None:
    engine.execute(task_id)


@shared_task(name="fatbuildr.maintain_tasks")
def maintain_tasks() -> None:
    """Fail tasks whose worker is gone, then re-send pending tasks whose message got lost."""
    engine.reap_lost_tasks()
    engine.redispatch_pending()


@shared_task(name="fatbuildr.purge_histories")
def purge_histories() -> None:
    """Queue a history purge task in every instance (policy FATBUILDR_TASKS_PURGE)."""
    for instance in Instance.objects.all():
        engine.submit(
            instance,
            TaskName.HISTORY_PURGE,
            user="fatbuildr",
            locks=[engine.Lock(f"history:{instance.pk}")],
        )

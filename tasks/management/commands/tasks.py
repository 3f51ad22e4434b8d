"""`manage.py tasks purge|list|watch|cancel`: the task history purge and task administration."""

import getpass
import sys
import uuid

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from instances.models import Instance
from instances.selectors import get_instance, list_instances
from tasks.history import parse_purge_policy, purge_history
from tasks.journal import print_journal
from tasks.models import Task, TaskState


class Command(BaseCommand):
    help = "Purge the finished-task history, list tasks, cancel a task."

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", required=True)
        purge = subcommands.add_parser(
            "purge", help="Remove finished tasks and their workspaces by the purge policy."
        )
        purge.add_argument(
            "--instance",
            action="append",
            dest="instances",
            default=[],
            metavar="INSTANCE",
            help="Instance to purge (repeatable; default: every instance).",
        )
        purge.add_argument(
            "--policy",
            help="older:<n><h|d|m|y>, last:<n>, each:<n> or size:<n><MB|GB|TB|Mb|Gb|Tb> "
            "(default: FATBUILDR_TASKS_PURGE).",
        )
        purge.add_argument(
            "--dry-run", action="store_true", help="Report what would be removed, remove nothing."
        )
        purge.add_argument(
            "--batch-size", type=int, default=500, help="Tasks removed per database query."
        )
        listing = subcommands.add_parser("list", help="List tasks, oldest submission first.")
        listing.add_argument("--instance")
        listing.add_argument("--state", choices=TaskState.values)
        cancel = subcommands.add_parser("cancel", help="Cancel a pending or running task.")
        cancel.add_argument("task_id", metavar="TASK_ID")
        watch = subcommands.add_parser(
            "watch", help="Print a task's journal, following it until the task ends."
        )
        watch.add_argument("task_id", metavar="TASK_ID")
        cancel.add_argument(
            "--user", default=None, help="Who cancels (default: the current system user)."
        )

    def handle(self, *args, subcommand: str, **options) -> None:
        if subcommand == "purge":
            self.purge(
                instance_ids=options["instances"],
                policy_text=options["policy"] or settings.FATBUILDR_TASKS_PURGE,
                dry_run=options["dry_run"],
                batch_size=options["batch_size"],
                verbose=options["verbosity"] >= 2,
            )
        elif subcommand == "list":
            self.list_tasks(instance_id=options["instance"], state=options["state"])
        elif subcommand == "watch":
            self.watch(task_id=options["task_id"])
        else:
            self.cancel(task_id=options["task_id"], user=options["user"] or getpass.getuser())

    def purge(
        self,
        *,
        instance_ids: list[str],
        policy_text: str,
        dry_run: bool,
        batch_size: int,
        verbose: bool,
    ) -> None:
        """Purge each instance; with -v 2, one line per removed task before each summary."""
        try:
            policy = parse_purge_policy(policy_text)
        except ValueError as error:
            raise CommandError(str(error)) from error
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        instances = [self._instance(instance_id) for instance_id in instance_ids] or list(
            list_instances()
        )
        for instance in instances:
            # Verbose: the purge log (per-task lines, then its summary) goes to stdout as is.
            report = purge_history(
                instance,
                policy,
                batch_size=batch_size,
                dry_run=dry_run,
                log=self.stdout.write if verbose else _discard,
            )
            if not verbose:
                self.stdout.write(report.summary())

    def list_tasks(self, *, instance_id: str | None, state: str | None) -> None:
        """One tab-separated line per task: id, instance, name, state, result, submission."""
        tasks = Task.objects.order_by("submission", "id")
        if instance_id is not None:
            tasks = tasks.filter(instance=self._instance(instance_id))
        if state is not None:
            tasks = tasks.filter(state=state)
        columns = ("id", "instance_id", "name", "state", "result", "submission")
        for task in tasks.only(*columns).iterator():
            self.stdout.write(
                "\t".join(
                    (
                        str(task.id),
                        task.instance_id,
                        task.name,
                        task.state,
                        task.result,
                        task.submission.isoformat(),
                    )
                )
            )

    def _task(self, task_id: str) -> Task:
        try:
            parsed = uuid.UUID(task_id)
        except ValueError:
            raise CommandError(f"{task_id!r} is not a task id") from None
        task = Task.objects.filter(pk=parsed).first()
        if task is None:
            raise CommandError(f"task {task_id} not found")
        return task

    def watch(self, *, task_id: str) -> None:
        """Like `fatbuildrctl watch`: the journal, live, until its end line."""
        task = self._task(task_id)

        def finished() -> bool:
            return Task.objects.filter(pk=task.pk, state=TaskState.FINISHED).exists()

        self.stdout.flush()
        print_journal(task.journal_path, sys.stdout.buffer, is_finished=finished)

    def cancel(self, *, task_id: str, user: str) -> None:
        """Cancel through the engine: a pending task at once, a running one by its worker."""
        # Imported here: listing and purging must not need the engine and its broker settings.
        from tasks.engine import TaskNotCancellable, cancel_task

        task = self._task(task_id)
        try:
            task = cancel_task(task, by=user)
        except TaskNotCancellable as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"task {task.id}: state {task.state}, result {task.result}")

    def _instance(self, instance_id: str) -> Instance:
        instance = get_instance(instance_id)
        if instance is None:
            raise CommandError(f"instance {instance_id} not found")
        return instance


def _discard(line: str) -> None:
    """A purge log that keeps nothing: the command prints the summary itself."""

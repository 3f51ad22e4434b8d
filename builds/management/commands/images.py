"""`manage.py images env-create|env-update`: the build environments of an instance."""

import getpass
import sys
import threading

from django.core.management.base import BaseCommand, CommandError, CommandParser

from builds.environments import BuildEnvironmentError, check_architecture
from builds.formats import BUILDERS
from builds.services import queue_environment_task
from instances.selectors import get_instance, get_pipelines
from tasks import engine
from tasks.journal import print_journal
from tasks.models import Task, TaskName, TaskResult, TaskState

SUBCOMMANDS = {
    "env-create": TaskName.IMAGE_BUILD_ENV_CREATION,
    "env-update": TaskName.IMAGE_BUILD_ENV_UPDATE,
}


class Command(BaseCommand):
    help = "Create or update a build environment (a build root made with mmdebstrap)."

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", required=True)
        for name, task_name in SUBCOMMANDS.items():
            sub = subcommands.add_parser(name, help=f"Run an `{task_name}` task.")
            sub.add_argument("--instance", required=True)
            sub.add_argument("--format", required=True, choices=sorted(map(str, BUILDERS)))
            sub.add_argument("--environment", required=True)
            sub.add_argument("--architecture", required=True)
            sub.add_argument(
                "--batch",
                action="store_true",
                help="Only submit the task (a worker runs it); default: run it here and "
                "print its journal.",
            )

    def handle(self, *args, subcommand: str, **options) -> None:
        instance = get_instance(options["instance"])
        if instance is None:
            raise CommandError(f"instance {options['instance']} not found")
        fmt, environment = options["format"], options["environment"]
        architecture = options["architecture"]
        pipelines = get_pipelines(instance)
        known = {
            d.environment
            for d in pipelines.distributions
            if d.format == fmt and d.environment is not None
        }
        if environment not in known:
            raise CommandError(
                f"environment {environment} is not used by any {fmt} distribution of instance "
                f"{instance.pk} (known: {', '.join(sorted(known)) or 'none'})"
            )
        if architecture not in instance.pipeline_architectures():
            raise CommandError(f"architecture {architecture} not in instance pipelines")
        try:
            check_architecture(architecture)
        except BuildEnvironmentError as error:
            raise CommandError(str(error)) from error
        task = queue_environment_task(
            instance,
            SUBCOMMANDS[subcommand],
            fmt=fmt,
            environment=environment,
            architecture=architecture,
            user=getpass.getuser(),
        )
        self.stdout.write(f"Submitted {task.name} task {task.pk}")
        if options["batch"]:
            return
        # Run it here unless a worker claimed it first; print the journal either way.
        runner = threading.Thread(target=engine.execute, args=[str(task.pk)], daemon=True)
        runner.start()
        self._print_journal(task)
        runner.join()
        task.refresh_from_db()
        if task.result != TaskResult.SUCCESS:
            raise CommandError(f"task {task.pk} {task.result}: {task.error}")

    def _print_journal(self, task: Task) -> None:
        def finished() -> bool:
            return Task.objects.filter(pk=task.pk, state=TaskState.FINISHED).exists()

        print_journal(task.journal_path, sys.stdout.buffer, is_finished=finished)

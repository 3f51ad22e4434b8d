"""`python manage.py instances load FILE...` and `instances list`.

Loading an instance that has no keyring queues its `keyring creation` task.
"""

import getpass
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry.instance_files import InstanceFileError
from registry.keyrings import queue_keyring_creation
from registry.selectors import list_instances
from registry.services import load_instance_file


class Command(BaseCommand):
    help = "Manage Fatbuildr instances."

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", required=True)
        load = subcommands.add_parser(
            "load", help="Create or update instances from Fatbuildr instance YAML files."
        )
        load.add_argument("paths", nargs="+", type=Path, metavar="FILE")
        subcommands.add_parser("list", help="List the instances.")

    def handle(self, *args, subcommand: str, **options) -> None:
        if subcommand == "load":
            self.load(options["paths"])
        else:
            for instance in list_instances():
                self.stdout.write(f"{instance.id}\t{instance.name}\t{instance.userid}")

    def load(self, paths: list[Path]) -> None:
        failures = []
        for path in paths:
            try:
                instance, outcome = load_instance_file(path=path)
            except InstanceFileError as error:
                failures.append(str(error))
                self.stderr.write(self.style.ERROR(str(error)))
                continue
            self.stdout.write(f"instance {instance.id}: {outcome} from {path}")
            task = queue_keyring_creation(instance, user=getpass.getuser())
            if task is not None:
                self.stdout.write(
                    f"instance {instance.id}: keyring creation queued (task {task.pk})"
                )
        if failures:
            raise CommandError(f"{len(failures)} instance file(s) could not be loaded")

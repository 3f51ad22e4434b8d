"""`python manage.py instances load FILE...` and `instances list`.

Loading an instance that has no keyring queues its `keyring creation` task:
the registry app does it on the `instance_loaded` signal and says so here.
"""

import getpass
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from instances.instance_files import InstanceFileError
from instances.models import Instance
from instances.selectors import list_instances
from instances.services import load_instance_file
from instances.signals import instance_loaded


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
            reports = instance_loaded.send(
                sender=Instance, instance=instance, user=getpass.getuser()
            )
            for _receiver, report in reports:
                if report:
                    self.stdout.write(f"instance {instance.id}: {report}")
        if failures:
            raise CommandError(f"{len(failures)} instance file(s) could not be loaded")

"""`python manage.py registry import|reindex`: move packages in, rebuild the index from disk."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from instances.models import Instance
from instances.selectors import get_instance
from registry.publishing import PublishError, Target, publish, reindex
from registry.repositories import REPOSITORIES
from registry.signing import SigningError
from tasks.runner import CommandError as ToolError
from tasks.runner import CommandRunner, ConsoleOutput


class Command(BaseCommand):
    help = "Import package files into an instance registry, or rebuild its index from disk."

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", required=True)
        imports = subcommands.add_parser(
            "import",
            help="Publish package files (.changes with its files, .deb, .dsc, .rpm, .src.rpm).",
        )
        imports.add_argument("--instance", required=True, help="Instance id.")
        imports.add_argument("--format", required=True, choices=sorted(map(str, REPOSITORIES)))
        imports.add_argument("--distribution", required=True)
        imports.add_argument("--derivative", default="main")
        imports.add_argument("files", nargs="+", type=Path, metavar="FILE")
        rebuild = subcommands.add_parser(
            "reindex", help="Rebuild the index of an instance from its registries on disk."
        )
        rebuild.add_argument("--instance", required=True, help="Instance id.")

    def handle(self, *args, subcommand: str, **options) -> None:
        instance = self._instance(options["instance"])
        sink = ConsoleOutput(self.stdout, verbose=options["verbosity"] > 1)
        runner = CommandRunner(sink)
        try:
            if subcommand == "import":
                target = Target(
                    instance, options["format"], options["distribution"], options["derivative"]
                )
                packages = publish(target, options["files"], run=runner.run, log=sink.log)
                for package in packages:
                    self.stdout.write(
                        f"{package.name} {package.version} {package.architecture}: published"
                    )
            else:
                counts = reindex(instance, run=runner.run, log=sink.log)
                for fmt, count in counts.items():
                    self.stdout.write(f"{fmt}: {count} artifact(s) indexed")
        except ToolError as error:
            raise CommandError(f"{error}\n{error.output_tail}") from error
        except (PublishError, SigningError) as error:
            raise CommandError(str(error)) from error

    def _instance(self, instance_id: str) -> Instance:
        instance = get_instance(instance_id)
        if instance is None:
            raise CommandError(f"Unknown instance {instance_id}")
        return instance

"""`manage.py tokens generate|import-key|rotate-key`: API tokens and instance token keys."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services import import_token_key, rotate_token_key
from accounts.tokens import MAX_SUBJECT_LENGTH, generate_token, is_valid_subject
from instances.selectors import get_instance


class Command(BaseCommand):
    help = "Generate API tokens and manage instance token keys."

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", required=True)
        generate = subcommands.add_parser("generate", help="Print a new API token.")
        generate.add_argument("--instance", required=True)
        generate.add_argument("--user", required=True, help="User name carried in the token.")
        generate.add_argument(
            "--duration", type=int, default=None, help="Validity in days (default: settings)."
        )
        import_key = subcommands.add_parser(
            "import-key",
            help="Use an upstream fatbuildrd key file, so its tokens are accepted here.",
        )
        import_key.add_argument("--instance", required=True)
        import_key.add_argument("path", type=Path, metavar="KEYFILE")
        rotate = subcommands.add_parser(
            "rotate-key", help="Give the instance a new key: every token issued so far is refused."
        )
        rotate.add_argument("--instance", required=True)

    def handle(self, *args, subcommand: str, instance: str, **options) -> None:
        found = get_instance(instance)
        if found is None:
            raise CommandError(f"instance {instance} not found")
        if subcommand == "generate":
            if options["duration"] is not None and options["duration"] <= 0:
                raise CommandError("--duration must be a positive number of days")
            user = options["user"].strip()
            if not user:
                raise CommandError("--user must not be empty")
            if not is_valid_subject(user):
                raise CommandError(
                    f"--user must be at most {MAX_SUBJECT_LENGTH} characters, without NUL"
                )
            self.stdout.write(
                generate_token(instance=found, username=user, duration_days=options["duration"])
            )
        elif subcommand == "rotate-key":
            rotate_token_key(instance=found)
            self.stdout.write(f"token key of instance {found.id} replaced")
        else:
            try:
                import_token_key(instance=found, path=options["path"])
            except ValueError as error:
                raise CommandError(str(error)) from error
            self.stdout.write(f"token key of instance {found.id} replaced")

"""`python manage.py keyring show --instance I`, `keyring renew --instance I --duration D` and
`keyring stop-agents` (what scripts/run does once its workers have stopped)."""

import getpass

from django.core.management.base import BaseCommand, CommandError, CommandParser

from instances.models import Instance
from instances.selectors import get_instance
from registry.keyrings import (
    KeyDetails,
    KeyringError,
    keyring_info,
    queue_keyring_renewal,
    validate_duration,
)
from registry.signing import stop_agents


def _expiry(key: KeyDetails) -> str:
    return key.expires.isoformat() if key.expires else "never"


class Command(BaseCommand):
    help = "Show an instance keyring, or queue its renewal."

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", required=True)
        show = subcommands.add_parser("show", help="Show the keys of an instance keyring.")
        show.add_argument("--instance", required=True, help="Instance id.")
        renew = subcommands.add_parser(
            "renew", help="Queue a keyring renewal task (new expiry of both keys)."
        )
        renew.add_argument("--instance", required=True, help="Instance id.")
        renew.add_argument(
            "--duration",
            required=True,
            help="<n>, <n>w, <n>m or <n>y from now; a plain number is days, 0 never expires.",
        )
        renew.add_argument("--user", help="Task user (default: the current Unix user).")
        subcommands.add_parser(
            "stop-agents",
            help="Stop the gpg-agents signing started for the keyrings (once no worker runs).",
        )

    def handle(self, *args, subcommand: str, **options) -> None:
        if subcommand == "show":
            self.show(options["instance"])
        elif subcommand == "stop-agents":
            for instance_id in stop_agents():
                self.stdout.write(f"Stopped the gpg-agent of keyring {instance_id}")
        else:
            self.renew(options["instance"], options["duration"], options["user"])

    def _instance(self, instance_id: str) -> Instance:
        instance = get_instance(instance_id)
        if instance is None:
            raise CommandError(f"Unknown instance {instance_id}")
        return instance

    def show(self, instance_id: str) -> None:
        instance = self._instance(instance_id)
        try:
            info = keyring_info(instance.id)
        except KeyringError as error:
            raise CommandError(str(error)) from error
        lines = [
            f"userid: {info.userid}",
            f"id: {info.master.keyid}",
            f"fingerprint: {info.master.fingerprint}",
            f"algo: {info.master.algorithm}",
            f"creation: {info.master.created.isoformat()}",
            f"expires: {_expiry(info.master)}",
            "subkey:",
            f"  id: {info.subkey.keyid}",
            f"  fingerprint: {info.subkey.fingerprint}",
            f"  algo: {info.subkey.algorithm}",
            f"  creation: {info.subkey.created.isoformat()}",
            f"  expires: {_expiry(info.subkey)}",
        ]
        self.stdout.write("\n".join(lines))

    def renew(self, instance_id: str, duration: str, user: str | None) -> None:
        try:
            validate_duration(duration)
        except KeyringError as error:
            raise CommandError(str(error)) from error
        instance = self._instance(instance_id)
        task = queue_keyring_renewal(instance, duration, user=user or getpass.getuser())
        self.stdout.write(f"Submitted keyring renewal task {task.id}")

"""Signing registry files with the instance signing subkey.

Our own gpg calls and rpmsign read the passphrase from the keyring's 0400
file (`--passphrase-file`, loopback pinentry). reprepro signs through gpgme,
which cannot be handed a passphrase file: the passphrase is preset in the
keyring's gpg-agent (as upstream `load_agent` does), sent on the agent's
standard input, never on a command line.
"""

import fcntl
import functools
import subprocess
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings

from registry import keyrings
from registry.models import Keyring
from tasks.runner import command_environment

AGENT_CONF = "gpg-agent.conf"
AGENT_OPTION = "allow-preset-passphrase"
AGENT_TIMEOUT = 60
# Taken while the keyring's agent is started: see ensure_agent.
AGENT_LAUNCH_LOCK = ".agent-launch.lock"


class SigningError(Exception):
    """The instance keyring cannot sign (missing, or gpg-agent refused)."""


def gpg_environment(instance_id: str) -> dict[str, str]:
    """A command environment whose gpg is the instance keyring."""
    return command_environment({"GNUPGHOME": str(keyrings.keyring_home(instance_id))})


def signing_key(instance_id: str) -> str:
    """The signing subkey fingerprint; raises SigningError without a keyring.

    Read from the Keyring row (written whenever gpg changes the keyring): one
    query instead of two gpg runs on every publication.
    """
    fingerprint = (
        Keyring.objects.filter(instance_id=instance_id)
        .values_list("subkey_fingerprint", flat=True)
        .first()
    )
    if not fingerprint:
        raise SigningError(
            f"Instance {instance_id} has no keyring yet: registries cannot be signed"
        )
    return fingerprint


@functools.lru_cache(maxsize=64)
def _keygrip(instance_id: str, fingerprint: str) -> str:
    # A key's keygrip never changes: asked of gpg once per process and key.
    listing = _agent_call(
        instance_id,
        ["gpg", "--batch", "--with-colons", "--with-keygrip", "--list-secret-keys", fingerprint],
    )
    previous = ""
    for line in listing.splitlines():
        fields = line.split(":")
        if fields[0] == "grp" and previous == fingerprint:
            return fields[9]
        if fields[0] == "fpr":
            previous = fields[9]
    raise SigningError(f"No secret signing subkey {fingerprint} in the instance keyring")


def _agent_call(instance_id: str, command: Sequence[str], stdin: str | None = None) -> str:
    try:
        completed = subprocess.run(
            list(command),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=AGENT_TIMEOUT,
            env=gpg_environment(instance_id),
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SigningError(f"{command[0]} failed: {error}") from error
    if completed.returncode != 0 or "ERR" in completed.stdout:
        detail = (completed.stderr + completed.stdout).strip()[-500:]
        raise SigningError(f"{command[0]} failed: {detail}")
    return completed.stdout


def ensure_agent(instance_id: str) -> None:
    """Start the keyring's gpg-agent, one process at a time.

    gpg, gpgme and gpg-connect-agent start the agent when none answers; when
    several publications do so at the same moment, the losers of that race
    fail ("No agent running"). Launched here under a file lock first, the
    agent is found running by every one of them.
    """
    home = keyrings.keyring_home(instance_id)
    with open(home / AGENT_LAUNCH_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _agent_call(instance_id, ["gpgconf", "--launch", "gpg-agent"])


def stop_agents() -> list[str]:
    """Stop the gpg-agent of every instance keyring on the data root (signing starts them
    as daemons, which outlive the workers); the instances whose agent was asked to stop."""
    root = Path(settings.FATBUILDR_DATA_DIR) / "keyrings"
    stopped = []
    for home in sorted(root.iterdir()) if root.is_dir() else []:
        if not (home.is_dir() and (home / "pubring.kbx").exists()):
            continue
        try:
            _agent_call(home.name, ["gpgconf", "--kill", "gpg-agent"])
        except (keyrings.KeyringError, SigningError):
            continue  # Not an instance keyring, or no agent to stop.
        stopped.append(home.name)
    return stopped


def preset_agent_passphrase(instance_id: str) -> None:
    """Load the passphrase of the signing subkey into the keyring's gpg-agent, for gpgme."""
    ensure_agent(instance_id)
    fingerprint = signing_key(instance_id)
    home = keyrings.keyring_home(instance_id)
    conf = home / AGENT_CONF
    lines = conf.read_text().splitlines() if conf.exists() else []
    if AGENT_OPTION not in lines:
        conf.write_text("\n".join([*lines, AGENT_OPTION]) + "\n")
        _agent_call(instance_id, ["gpgconf", "--reload", "gpg-agent"])
    keygrip = _keygrip(instance_id, fingerprint)
    secret = keyrings.read_passphrase(instance_id).encode().hex().upper()
    # -1: kept until the agent stops; the agent is restarted by gpg when needed, and the
    # preset is repeated before every signing run.
    _agent_call(
        instance_id,
        ["gpg-connect-agent"],
        stdin=f"PRESET_PASSPHRASE {keygrip} -1 {secret}\n/bye\n",
    )


def rpmsign_command(instance_id: str, files: Sequence[Path]) -> list[str]:
    """rpmsign signing *files* in place with the signing subkey, passphrase from its file."""
    fingerprint = signing_key(instance_id)
    home = keyrings.keyring_home(instance_id)
    passphrase_file = home / keyrings.PASSPHRASE_FILE
    return [
        "rpmsign",
        "--define", "__gpg /usr/bin/gpg",
        "--define", f"_gpg_path {home}",
        "--define", f"_gpg_name {fingerprint}!",
        "--define",
        f"_gpg_sign_cmd_extra_args --batch --pinentry-mode loopback "
        f"--passphrase-file {passphrase_file}",
        "--addsign",
        *(str(path) for path in files),
    ]  # fmt: skip


def detach_sign_command(instance_id: str, path: Path, signature: Path) -> list[str]:
    """gpg writing an armored detached signature of *path* into *signature*."""
    fingerprint = signing_key(instance_id)
    return keyrings.gpg_command(
        instance_id,
        [
            "--yes", "--armor", "--detach-sign", "--local-user", f"{fingerprint}!",
            "--output", str(signature), str(path),
        ],
    )  # fmt: skip

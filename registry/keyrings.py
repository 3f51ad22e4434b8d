"""Instance GPG keyrings (compat §9): one gpg home per instance on the data root.

Each keyring holds a master key and one signing subkey; the subkey signs the
registries (apt `SignWith`, rpmsign, repomd.xml.asc). The secret keys are
protected by a random passphrase kept in a 0400 file beside them, never in the
database and never in logs. The armored public key is copied into the
`Keyring` row whenever it changes, so the web hosts serve `keyring.asc` from
PostgreSQL without running gpg.

gpg always runs with `--pinentry-mode loopback`: the passphrase goes through a
pipe, and a missing one fails at once instead of waiting for a pinentry.
"""

import os
import re
import secrets
import shlex
import string
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import gnupg
from django.conf import settings

from instances.models import Instance, name_validator
from registry.models import Keyring
from tasks.engine import ACTIVE_STATES, Lock, submit
from tasks.models import Task, TaskName

PASSPHRASE_FILE = "passphrase"
PASSPHRASE_LENGTH = 32
PASSPHRASE_ALPHABET = string.ascii_letters + string.digits

# Renewal durations (upstream `keyring renewal`): a plain number is days, 0 never expires.
# ASCII digits only: `\d` would also accept other scripts' digits, which gpg does not.
RENEWAL_DURATION = re.compile(r"[0-9]+[wmy]?")
# Expiry of new keys (FATBUILDR_KEYRING_EXPIRES): "no" or <n>[d|w|m|y].
CREATION_EXPIRY = re.compile(r"[0-9]+[dwmy]?")
NEVER = "0"

# OpenPGP public key algorithm ids (RFC 4880 §9.1) as gpg names them in algorithm strings.
ALGORITHM_NAMES = {"1": "rsa", "2": "rsa", "3": "rsa", "16": "elg", "17": "dsa"}

# Setting an expiry is quick; a hung gpg (agent trouble) must not hold the task forever.
GPG_TIMEOUT = 120
OUTPUT_TAIL = 2000


class KeyringError(Exception):
    """A keyring operation was refused or gpg failed."""


@dataclass(frozen=True)
class KeyDetails:
    """One key of a keyring, as gpg lists it."""

    fingerprint: str
    keyid: str
    algorithm: str
    created: datetime
    expires: datetime | None  # None: never expires


@dataclass(frozen=True)
class KeyringInfo:
    """An instance keyring: its user id, master key and signing subkey."""

    userid: str
    master: KeyDetails
    subkey: KeyDetails

    @property
    def fingerprint(self) -> str:
        return self.master.fingerprint

    @property
    def subkey_fingerprint(self) -> str:
        return self.subkey.fingerprint


# --- Homes and passphrases -----------------------------------------------------------------


def _home_path(instance_id: str) -> Path:
    """The keyring home of an instance, after checking the id is one safe path segment."""
    if not isinstance(instance_id, str) or not re.fullmatch(name_validator.regex, instance_id):
        raise KeyringError(f"Invalid instance id for a keyring: {instance_id!r}")
    return Path(settings.FATBUILDR_DATA_DIR) / "keyrings" / instance_id


def _make_private_dir(path: Path) -> None:
    """Create *path* as a 0700 directory if it is missing (whatever the umask)."""
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return
    path.chmod(0o700)


def keyring_home(instance_id: str) -> Path:
    """`<data root>/keyrings/<instance>`, created 0700 (with `keyrings/`) when needed."""
    home = _home_path(instance_id)
    home.parent.parent.mkdir(parents=True, exist_ok=True)
    _make_private_dir(home.parent)
    _make_private_dir(home)
    return home


def _new_passphrase(home: Path) -> str:
    """The passphrase of *home*: read if present, else generated and written 0400."""
    path = home / PASSPHRASE_FILE
    passphrase = "".join(secrets.choice(PASSPHRASE_ALPHABET) for _ in range(PASSPHRASE_LENGTH))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o400)
    except FileExistsError:
        # Left by a creation that failed after writing it: keep using it.
        return path.read_text().strip()
    try:
        os.fchmod(fd, 0o400)  # The umask may have removed bits from the mode given to open.
        os.write(fd, passphrase.encode())
    finally:
        os.close(fd)
    return passphrase


def read_passphrase(instance_id: str) -> str:
    """The passphrase protecting the secret keys of an instance keyring."""
    path = _home_path(instance_id) / PASSPHRASE_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise KeyringError(f"No keyring passphrase for instance {instance_id}") from None


# --- gpg -----------------------------------------------------------------------------------


def _gpg(home: Path) -> gnupg.GPG:
    return gnupg.GPG(gnupghome=str(home), options=["--pinentry-mode", "loopback"])


def gpg_for(instance_id: str) -> gnupg.GPG:
    """A python-gnupg handle on an instance keyring (sign with its signing subkey)."""
    home = _home_path(instance_id)
    if not home.is_dir():
        raise KeyringError(f"No keyring for instance {instance_id}")
    return _gpg(home)


def _tail(text: str) -> str:
    return text[-OUTPUT_TAIL:].strip()


def gpg_command(instance_id: str, args: Sequence[str]) -> list[str]:
    """A gpg command line on an instance keyring, for what python-gnupg has no method for.

    The passphrase is read by gpg from its 0400 file: it is never on a command
    line, so the command can be logged and run by a task's command runner.
    """
    home = _home_path(instance_id)
    return [
        "gpg", "--homedir", str(home), "--batch", "--no-tty", "--pinentry-mode", "loopback",
        "--passphrase-file", str(home / PASSPHRASE_FILE), *args,
    ]  # fmt: skip


def _run_quietly(command: Sequence[str]) -> None:
    """Run a gpg command outside a task; KeyringError with the end of its output on failure."""
    try:
        completed = subprocess.run(
            list(command), capture_output=True, timeout=GPG_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise KeyringError(f"{shlex.join(command)} timed out after {GPG_TIMEOUT}s") from error
    if completed.returncode != 0:
        output = completed.stderr.decode(errors="replace")
        raise KeyringError(f"{shlex.join(command)} failed: {_tail(output)}")


def _timestamp(value: str) -> datetime:
    return datetime.fromtimestamp(int(value), tz=UTC)


def _algorithm(fields: dict) -> str:
    """gpg's algorithm string of a listed key: rsa4096, dsa2048, ed25519…"""
    if fields.get("curve"):
        return fields["curve"]
    name = ALGORITHM_NAMES.get(fields["algo"], f"algo{fields['algo']}")
    return f"{name}{fields['length']}"


def _key_details(fields: dict, fingerprint: str) -> KeyDetails:
    return KeyDetails(
        fingerprint=fingerprint,
        keyid=fields["keyid"],
        algorithm=_algorithm(fields),
        created=_timestamp(fields["date"]),  # gpg lists every key with its creation date.
        expires=_timestamp(fields["expires"]) if fields["expires"] else None,
    )


def _read_info(gpg: gnupg.GPG, instance_id: str) -> KeyringInfo:
    keys = gpg.list_keys(secret=False)
    if not keys:
        raise KeyringError(f"No keyring for instance {instance_id}")
    master = keys[0]
    # Upstream signs with subkey 1: the first subkey able to sign.
    signing = [
        (master["subkey_info"][keyid], fingerprint)
        for keyid, _capability, fingerprint, _grip in master["subkeys"]
        if "s" in master["subkey_info"][keyid]["cap"]
    ]
    if not signing:
        raise KeyringError(f"The keyring of instance {instance_id} has no signing subkey")
    subkey, fingerprint = signing[0]
    return KeyringInfo(
        userid=master["uids"][0] if master["uids"] else "",
        master=_key_details(master, master["fingerprint"]),
        subkey=_key_details(subkey, fingerprint),
    )


def has_keyring(instance_id: str) -> bool:
    """Whether the instance keyring holds a secret key."""
    home = _home_path(instance_id)
    return home.is_dir() and bool(_gpg(home).list_keys(secret=True))


def keyring_info(instance_id: str) -> KeyringInfo:
    """The keys of an instance keyring, read live from gpg."""
    return _read_info(gpg_for(instance_id), instance_id)


def signing_subkey_fingerprint(instance_id: str) -> str:
    """Fingerprint of the subkey that signs the instance registries."""
    return keyring_info(instance_id).subkey_fingerprint


# --- Creation and renewal ------------------------------------------------------------------


def _creation_expiry() -> str:
    """FATBUILDR_KEYRING_EXPIRES as a gpg expiry ("0" = never)."""
    value = str(settings.FATBUILDR_KEYRING_EXPIRES).strip().lower()
    if value in {"no", "never", "none", ""}:
        return NEVER
    if not CREATION_EXPIRY.fullmatch(value):
        raise KeyringError(f"Invalid FATBUILDR_KEYRING_EXPIRES {value!r}: use 'no' or <n>[d|w|m|y]")
    return value


def validate_duration(duration: str) -> str:
    """Check a renewal duration (`<n>[w|m|y]`, days without unit, 0 = never) and return it."""
    if not isinstance(duration, str) or not RENEWAL_DURATION.fullmatch(duration):
        raise KeyringError(
            f"Invalid keyring renewal duration {duration!r}: "
            "use <n>, <n>w, <n>m or <n>y (a plain number is days, 0 never expires)"
        )
    return duration


def _check_userid(instance: Instance) -> None:
    # The name and email go into gpg's batch parameters, one per line.
    if any(not character.isprintable() for character in instance.userid):
        raise KeyringError(f"Invalid GPG user id for instance {instance.id}: {instance.userid!r}")


def sync_keyring_record(instance: Instance) -> KeyringInfo:
    """Copy the public key and its metadata from gpg into the instance `Keyring` row."""
    gpg = gpg_for(instance.id)
    info = _read_info(gpg, instance.id)
    public_key = gpg.export_keys(info.fingerprint, armor=True)
    if not public_key:
        raise KeyringError(f"gpg exported no public key for instance {instance.id}")
    Keyring.objects.update_or_create(
        instance=instance,
        defaults={
            "fingerprint": info.fingerprint,
            "subkey_fingerprint": info.subkey_fingerprint,
            "algorithm": info.master.algorithm,
            "public_key": public_key,
            "created": info.master.created,
            "expires": info.master.expires,
        },
    )
    return info


def create_keyring(instance: Instance, *, log: Callable[[str], None]) -> KeyringInfo:
    """Generate the instance keyring: a master key and one signing subkey.

    Refuses when the keyring already holds a key (as upstream does, whatever
    its man page says).
    """
    if has_keyring(instance.id):
        raise KeyringError(f"Keyring of instance {instance.id} already exists")
    _check_userid(instance)
    expiry = _creation_expiry()
    key_type = settings.FATBUILDR_KEYRING_KEY_TYPE.lower()
    key_size = int(settings.FATBUILDR_KEYRING_KEY_SIZE)
    algorithm = f"{key_type}{key_size}"
    expiry_text = "never" if expiry == NEVER else expiry

    home = keyring_home(instance.id)
    passphrase = _new_passphrase(home)
    gpg = _gpg(home)

    log(f"Generating {algorithm} master key for {instance.userid} (expires: {expiry_text})")
    generated = gpg.gen_key(
        gpg.gen_key_input(
            key_type=key_type.upper(),
            key_length=key_size,
            key_usage="sign",
            name_real=instance.gpg_name,
            name_email=instance.gpg_email,
            expire_date=expiry,
            passphrase=passphrase,
        )
    )
    if not generated.fingerprint:
        raise KeyringError(f"gpg could not generate the master key: {_tail(generated.stderr)}")
    log(f"Master key created: fingerprint {generated.fingerprint}")

    log(f"Adding {algorithm} signing subkey")
    subkey = gpg.add_subkey(
        generated.fingerprint,
        master_passphrase=passphrase,
        algorithm=algorithm,
        usage="sign",
        expire=expiry,
    )
    if not subkey.fingerprint:
        raise KeyringError(f"gpg could not add the signing subkey: {_tail(subkey.stderr)}")
    log(f"Signing subkey created: fingerprint {subkey.fingerprint}")

    info = sync_keyring_record(instance)
    log(f"Keyring created: fingerprint {info.fingerprint}")
    return info


def renew_keyring(
    instance: Instance,
    duration: str,
    *,
    log: Callable[[str], None],
    run: Callable[[Sequence[str]], None] = _run_quietly,
) -> KeyringInfo:
    """Set a new expiry on the master key then on the signing subkey, counted from now.

    *run* executes the gpg commands: a task passes its command runner, so that
    their output goes to the task journal.
    """
    validate_duration(duration)
    gpg = gpg_for(instance.id)
    current = _read_info(gpg, instance.id)
    duration_text = "never expire" if int(duration.rstrip("wmy")) == 0 else f"expire in {duration}"

    log(f"Setting master key {current.fingerprint} to {duration_text}")
    run(gpg_command(instance.id, ["--quick-set-expire", current.fingerprint, duration]))
    log(f"Setting signing subkey {current.subkey_fingerprint} to {duration_text}")
    run(
        gpg_command(
            instance.id,
            ["--quick-set-expire", current.fingerprint, duration, current.subkey_fingerprint],
        )
    )

    info = sync_keyring_record(instance)
    expires = info.master.expires.isoformat() if info.master.expires else "never"
    log(f"Keyring renewed: fingerprint {info.fingerprint}, expires {expires}")
    return info


# --- Reads for the web hosts ---------------------------------------------------------------


def armored_public_key(instance: Instance) -> str | None:
    """The armored public key served as keyring.asc, from the database; None without keyring."""
    return Keyring.objects.filter(instance=instance).values_list("public_key", flat=True).first()


# --- Tasks ---------------------------------------------------------------------------------


def keyring_lock(instance: Instance) -> Lock:
    """Keyring changes of one instance run one at a time, in submission order."""
    return Lock(f"keyring:{instance.pk}")


def queue_keyring_creation(instance: Instance, *, user: str) -> Task | None:
    """Queue the `keyring creation` task of an instance that has no keyring and none on the
    way; None when there is nothing to do."""
    on_the_way = instance.tasks.filter(
        name=TaskName.KEYRING_CREATION, state__in=ACTIVE_STATES
    ).exists()
    if Keyring.objects.filter(instance=instance).exists() or on_the_way:
        return None
    return submit(instance, TaskName.KEYRING_CREATION, user=user, locks=[keyring_lock(instance)])


def queue_keyring_renewal(instance: Instance, duration: str, *, user: str) -> Task:
    """Queue a `keyring renewal` task, after checking *duration*."""
    validate_duration(duration)
    return submit(
        instance,
        TaskName.KEYRING_RENEWAL,
        user=user,
        locks=[keyring_lock(instance)],
        duration=duration,
    )

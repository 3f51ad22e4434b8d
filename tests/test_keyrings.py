"""Instance GPG keyrings (compat §9) with the real gpg, and keyring.asc (compat §1.5).

Key generation is the slow part: one keyring is generated per module and
copied into each test's own data root; only the test of the default
algorithm generates keys of its own.
"""

import io
import logging
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import override_settings

from instances.services import load_instance_file
from registry import keyrings
from registry.keyrings import KeyringError
from registry.models import Keyring
from tasks.models import Task, TaskLock, TaskName
from tests.conftest import REPO_ROOT

USERID = "Maintainers <maintainers@example.org>"
ONE_DAY = timedelta(days=1)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def stop_agents(root: Path) -> None:
    """Stop the gpg-agent of every gpg home under *root*."""
    for pubring in root.rglob("pubring.kbx"):
        subprocess.run(
            ["gpgconf", "--homedir", str(pubring.parent), "--kill", "gpg-agent"],
            check=False,
            capture_output=True,
        )


def gpg_cli(home: Path, *args: str, stdin: str | None = None) -> str:
    completed = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", *args],
        input=stdin.encode() if stdin is not None else None,
        capture_output=True,
        check=True,
    )
    return completed.stdout.decode()


def import_into_fresh_home(public_key: str, home: Path) -> tuple[str, str]:
    """Import *public_key* into a new gpg home; its human and colon listings."""
    home.mkdir(mode=0o700)
    gpg_cli(home, "--import", stdin=public_key)
    return gpg_cli(home, "--list-keys"), gpg_cli(home, "--list-keys", "--with-colons")


def colon_expiries(listing: str) -> dict[str, datetime | None]:
    """Expiry of the `pub` and `sub` records of a `--with-colons` listing (one subkey)."""
    expiries = {}
    for line in listing.splitlines():
        fields = line.split(":")
        if fields[0] in {"pub", "sub"}:
            expiries[fields[0]] = (
                datetime.fromtimestamp(int(fields[6]), tz=UTC) if fields[6] else None
            )
    return expiries


def assert_expires_in(expires: datetime | None, days: int) -> None:
    assert expires is not None
    assert abs(expires - (datetime.now(tz=UTC) + timedelta(days=days))) < ONE_DAY


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@dataclass
class Template:
    home: Path
    info: keyrings.KeyringInfo
    messages: list[str]
    library_logs: list[str]
    record: dict


@pytest.fixture(scope="module")
def keyring_template(tmp_path_factory, django_db_setup, django_db_blocker) -> Template:
    """One keyring (rsa2048, expiring in 1 year) made by create_keyring, shared by the module.

    Its database rows are rolled back; each test copies the gpg home into its own data root.
    """
    data_dir = tmp_path_factory.mktemp("keyring-template")
    messages: list[str] = []
    handler = ListHandler()
    gnupg_logger = logging.getLogger("gnupg")
    previous_level = gnupg_logger.level
    logging.getLogger().addHandler(handler)
    gnupg_logger.setLevel(logging.DEBUG)
    try:
        with (
            django_db_blocker.unblock(),
            override_settings(
                FATBUILDR_DATA_DIR=data_dir,
                FATBUILDR_KEYRING_KEY_SIZE=2048,
                FATBUILDR_KEYRING_EXPIRES="1y",
            ),
            transaction.atomic(),
        ):
            instance, _ = load_instance_file(path=REPO_ROOT / "instance-files" / "default.yml")
            info = keyrings.create_keyring(instance, log=messages.append)
            record = Keyring.objects.values().get(instance=instance)
            transaction.set_rollback(True)
    finally:
        logging.getLogger().removeHandler(handler)
        gnupg_logger.setLevel(previous_level)
        stop_agents(data_dir)
    yield Template(data_dir / "keyrings" / "default", info, messages, handler.messages, record)
    stop_agents(data_dir)


@pytest.fixture(autouse=True)
def keyring_data_dir(settings, tmp_path) -> Path:
    """A data root of the test's own, small keys, and agents stopped afterwards."""
    settings.FATBUILDR_DATA_DIR = tmp_path / "data"
    settings.FATBUILDR_KEYRING_KEY_SIZE = 2048
    settings.FATBUILDR_KEYRING_EXPIRES = "1y"
    yield settings.FATBUILDR_DATA_DIR
    stop_agents(tmp_path)


@pytest.fixture
def keyring_instance(default_instance, keyring_template):
    """The default instance with the module keyring in its data root and its Keyring row."""
    home = keyrings.keyring_home(default_instance.id)
    shutil.copytree(
        keyring_template.home, home, dirs_exist_ok=True, ignore=shutil.ignore_patterns("S.*")
    )
    keyrings.sync_keyring_record(default_instance)
    return default_instance


# --- Creation ------------------------------------------------------------------------------


def test_create_keyring_files_and_permissions(keyring_template):
    home = keyring_template.home
    assert mode(home.parent) == 0o700
    assert mode(home) == 0o700
    passphrase_file = home / "passphrase"
    assert mode(passphrase_file) == 0o400
    assert re.fullmatch(r"[A-Za-z0-9]{32}", passphrase_file.read_text())


def test_create_keyring_keys(keyring_template):
    info = keyring_template.info
    assert info.userid == USERID
    assert info.master.algorithm == "rsa2048"
    assert info.subkey.algorithm == "rsa2048"
    assert info.subkey.fingerprint != info.master.fingerprint
    assert info.master.keyid == info.master.fingerprint[-16:]
    assert info.subkey.keyid == info.subkey.fingerprint[-16:]
    for key in (info.master, info.subkey):
        assert abs(key.created - datetime.now(tz=UTC)) < ONE_DAY
        assert_expires_in(key.expires, 365)


def test_create_keyring_stores_public_side_only(keyring_template):
    passphrase = (keyring_template.home / "passphrase").read_text()
    record = keyring_template.record
    info = keyring_template.info
    assert record["fingerprint"] == info.fingerprint
    assert record["subkey_fingerprint"] == info.subkey_fingerprint
    assert record["algorithm"] == "rsa2048"
    assert record["created"] == info.master.created
    assert record["expires"] == info.master.expires
    assert record["public_key"].startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert "PRIVATE KEY" not in record["public_key"]
    assert all(passphrase not in str(value) for value in record.values())


def test_create_keyring_logs_steps_without_passphrase(keyring_template):
    passphrase = (keyring_template.home / "passphrase").read_text()
    messages = keyring_template.messages
    assert messages[0] == f"Generating rsa2048 master key for {USERID} (expires: 1y)"
    assert "Adding rsa2048 signing subkey" in messages
    assert messages[-1] == f"Keyring created: fingerprint {keyring_template.info.fingerprint}"
    assert keyring_template.library_logs  # python-gnupg logged its commands at debug level
    for message in [*messages, *keyring_template.library_logs]:
        assert passphrase not in message


def test_public_key_imports_into_fresh_home(keyring_template, tmp_path):
    listing, colons = import_into_fresh_home(keyring_template.record["public_key"], tmp_path / "g")
    assert USERID in listing
    assert re.search(r"^sub\s+rsa2048 \S+ \[S\]", listing, re.MULTILINE)
    assert keyring_template.info.fingerprint in colons
    assert keyring_template.info.subkey_fingerprint in colons


def test_create_keyring_default_algorithm_never_expires(settings, default_instance):
    """The shipped defaults: rsa4096 keys without expiry (the one slow test)."""
    settings.FATBUILDR_KEYRING_KEY_SIZE = 4096
    settings.FATBUILDR_KEYRING_EXPIRES = "no"
    messages: list[str] = []
    info = keyrings.create_keyring(default_instance, log=messages.append)
    assert (info.master.algorithm, info.subkey.algorithm) == ("rsa4096", "rsa4096")
    assert (info.master.expires, info.subkey.expires) == (None, None)
    assert messages[0] == f"Generating rsa4096 master key for {USERID} (expires: never)"
    assert keyrings.has_keyring(default_instance.id)
    row = Keyring.objects.get(instance=default_instance)
    assert (row.algorithm, row.expires) == ("rsa4096", None)


def test_create_keyring_refuses_existing_keyring(keyring_instance):
    before = Keyring.objects.get(instance=keyring_instance)
    with pytest.raises(KeyringError, match="already exists"):
        keyrings.create_keyring(keyring_instance, log=lambda message: None)
    assert keyrings.keyring_info(keyring_instance.id).fingerprint == before.fingerprint
    assert Keyring.objects.get(instance=keyring_instance).public_key == before.public_key


def test_create_keyring_rejects_bad_expiry_setting(settings, default_instance):
    settings.FATBUILDR_KEYRING_EXPIRES = "soon"
    with pytest.raises(KeyringError, match="FATBUILDR_KEYRING_EXPIRES"):
        keyrings.create_keyring(default_instance, log=lambda message: None)
    assert not keyrings.has_keyring(default_instance.id)


def test_signing_subkey_signs(keyring_instance):
    """What the registries do: sign with the subkey through gpg_for()."""
    gpg = keyrings.gpg_for(keyring_instance.id)
    subkey = keyrings.signing_subkey_fingerprint(keyring_instance.id)
    signed = gpg.sign(
        "Origin: fatbuildr\n",
        keyid=f"{subkey}!",
        passphrase=keyrings.read_passphrase(keyring_instance.id),
    )
    assert signed.data.startswith(b"-----BEGIN PGP SIGNED MESSAGE-----")
    verified = gpg.verify(signed.data)
    assert verified.valid
    assert verified.fingerprint == subkey
    assert verified.pubkey_fingerprint == keyrings.keyring_info(keyring_instance.id).fingerprint


# --- Renewal -------------------------------------------------------------------------------


@pytest.mark.parametrize(("duration", "days"), [("2y", 730), ("1m", 30), ("10", 10)])
def test_renew_keyring_moves_both_expiries(keyring_instance, tmp_path, duration, days):
    before = Keyring.objects.get(instance=keyring_instance)
    messages: list[str] = []
    info = keyrings.renew_keyring(keyring_instance, duration, log=messages.append)
    for key in (info.master, info.subkey):
        assert_expires_in(key.expires, days)
    live = keyrings.keyring_info(keyring_instance.id)
    assert (live.master.expires, live.subkey.expires) == (info.master.expires, info.subkey.expires)
    row = Keyring.objects.get(instance=keyring_instance)
    assert row.expires == info.master.expires
    assert row.public_key != before.public_key
    # The exported key carries the new expiries: what apt and dnf users import.
    _, colons = import_into_fresh_home(row.public_key, tmp_path / "g")
    assert colon_expiries(colons) == {"pub": info.master.expires, "sub": info.subkey.expires}
    passphrase = keyrings.read_passphrase(keyring_instance.id)
    assert all(passphrase not in message for message in messages)
    assert messages[-1].startswith(f"Keyring renewed: fingerprint {info.fingerprint}")


def test_renew_keyring_zero_never_expires(keyring_instance):
    info = keyrings.renew_keyring(keyring_instance, "0", log=lambda message: None)
    assert (info.master.expires, info.subkey.expires) == (None, None)
    assert Keyring.objects.get(instance=keyring_instance).expires is None


@pytest.mark.parametrize(
    "duration", ["", "2d", "1.5y", "-1", "y", "2 y", "2Y", "1y\n", "\u0663", "1y; rm -rf /"]
)
def test_renew_keyring_rejects_bad_durations(keyring_instance, duration):
    with pytest.raises(KeyringError, match="Invalid keyring renewal duration"):
        keyrings.renew_keyring(keyring_instance, duration, log=lambda message: None)


def test_renew_keyring_without_keyring(default_instance):
    with pytest.raises(KeyringError, match="No keyring"):
        keyrings.renew_keyring(default_instance, "1y", log=lambda message: None)


# --- Homes ---------------------------------------------------------------------------------


def test_keyring_home_is_private(keyring_data_dir):
    home = keyrings.keyring_home("default")
    assert home == keyring_data_dir / "keyrings" / "default"
    assert mode(home) == mode(home.parent) == 0o700


@pytest.mark.parametrize(
    "instance_id", ["", ".", "..", "../etc", "a/b", "/abs", "x\n", "a\x00b", " x", "-x"]
)
def test_instance_id_must_be_one_path_segment(keyring_data_dir, instance_id):
    for function in (
        keyrings.keyring_home,
        keyrings.has_keyring,
        keyrings.read_passphrase,
        keyrings.gpg_for,
        keyrings.keyring_info,
    ):
        with pytest.raises(KeyringError, match="Invalid instance id"):
            function(instance_id)
    assert not keyring_data_dir.exists()


def test_no_keyring(default_instance, keyring_data_dir):
    assert not keyrings.has_keyring(default_instance.id)
    assert keyrings.armored_public_key(default_instance) is None
    with pytest.raises(KeyringError, match="No keyring"):
        keyrings.keyring_info(default_instance.id)


# --- keyring.asc ---------------------------------------------------------------------------


def test_keyring_asc_serves_public_key(multi_mode, keyring_instance, anonymous_client, tmp_path):
    response = anonymous_client.get("/default/keyring.asc")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"] == "attachment; filename=keyring.asc"
    assert response["Cache-Control"] == "no-cache"
    body = response.content.decode()
    assert body == Keyring.objects.get(instance=keyring_instance).public_key
    listing, _ = import_into_fresh_home(body, tmp_path / "g")
    assert USERID in listing
    assert "[S]" in listing


def test_keyring_asc_ignores_accept_header(multi_mode, keyring_instance, anonymous_client):
    response = anonymous_client.get("/default/keyring.asc", HTTP_ACCEPT="application/pgp-keys")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"


def test_keyring_asc_without_keyring(multi_mode, default_instance, anonymous_client):
    response = anonymous_client.get("/default/keyring.asc")
    assert response.status_code == 404
    assert response.json() == {"error": "No keyring available on this instance"}


# --- Management command --------------------------------------------------------------------


def test_keyring_show(keyring_instance, keyring_template):
    out = io.StringIO()
    call_command("keyring", "show", "--instance", "default", stdout=out)
    info = keyring_template.info
    lines = out.getvalue().splitlines()
    assert lines[:4] == [
        f"userid: {USERID}",
        f"id: {info.master.keyid}",
        f"fingerprint: {info.fingerprint}",
        "algo: rsa2048",
    ]
    assert f"expires: {info.master.expires.isoformat()}" in lines
    assert f"  fingerprint: {info.subkey_fingerprint}" in lines
    assert f"  expires: {info.subkey.expires.isoformat()}" in lines


def test_keyring_show_never(keyring_instance):
    keyrings.renew_keyring(keyring_instance, "0", log=lambda message: None)
    out = io.StringIO()
    call_command("keyring", "show", "--instance", "default", stdout=out)
    lines = out.getvalue().splitlines()
    assert "expires: never" in lines
    assert "  expires: never" in lines


def test_keyring_show_errors(default_instance):
    with pytest.raises(CommandError, match="No keyring for instance default"):
        call_command("keyring", "show", "--instance", "default")
    with pytest.raises(CommandError, match="Unknown instance nope"):
        call_command("keyring", "show", "--instance", "nope")


def test_keyring_renew_submits_task(default_instance):
    out = io.StringIO()
    call_command(
        "keyring", "renew", "--instance", "default", "--duration", "2y", "--user", "alice",
        stdout=out,
    )  # fmt: skip
    task = Task.objects.get()
    assert (task.name, task.duration, task.user) == (TaskName.KEYRING_RENEWAL, "2y", "alice")
    assert task.instance == default_instance
    locks = list(TaskLock.objects.filter(task=task).values_list("resource", "exclusive"))
    assert locks == [("keyring:default", True)]
    assert out.getvalue().strip() == f"Submitted keyring renewal task {task.id}"


def test_keyring_renew_validates_before_submitting(default_instance):
    with pytest.raises(CommandError, match="Invalid keyring renewal duration"):
        call_command("keyring", "renew", "--instance", "default", "--duration", "2d")
    with pytest.raises(CommandError, match="Unknown instance nope"):
        call_command("keyring", "renew", "--instance", "nope", "--duration", "2y")
    assert not Task.objects.exists()

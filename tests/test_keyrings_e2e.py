"""Keyrings made and renewed by a real worker, with the shipped defaults (rsa4096)."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.core.management import call_command

from instances.models import Instance
from registry import keyrings
from tasks.models import Task, TaskName, TaskResult
from tests.conftest import REPO_ROOT
from tests.test_keyrings import colon_expiries, import_into_fresh_home, stop_agents
from tests.workers import wait_finished

pytestmark = pytest.mark.e2e


def test_instances_load_gives_the_instance_a_keyring_served_and_renewable(
    start_worker, anonymous_client, tmp_path
):
    out = io.StringIO()
    call_command("instances", "load", str(REPO_ROOT / "instance-files" / "default.yml"), stdout=out)
    creation = Task.objects.get(name=TaskName.KEYRING_CREATION)
    assert f"keyring creation queued (task {creation.pk})" in out.getvalue()
    # Loading again while the creation is queued does not queue another one.
    call_command("instances", "load", str(REPO_ROOT / "instance-files" / "default.yml"), stdout=out)
    assert Task.objects.filter(name=TaskName.KEYRING_CREATION).count() == 1

    start_worker()
    try:
        creation = wait_finished(creation, timeout=120)
        assert creation.result == TaskResult.SUCCESS, creation.error
        response = anonymous_client.get("/default/keyring.asc")
        assert response.status_code == 200
        assert response["Content-Disposition"] == "attachment; filename=keyring.asc"
        human, colons = import_into_fresh_home(response.content.decode(), tmp_path / "client")
        assert Instance.objects.get(pk="default").userid in human
        pub = next(line.split(":") for line in colons.splitlines() if line.startswith("pub:"))
        sub = next(line.split(":") for line in colons.splitlines() if line.startswith("sub:"))
        assert (pub[2], pub[3]) == ("4096", "1")  # RSA 4096
        assert "s" in sub[11], "a signing subkey"
        assert colon_expiries(colons) == {"pub": None, "sub": None}

        call_command("keyring", "renew", "--instance", "default", "--duration", "2y", stdout=out)
        renewal = Task.objects.get(name=TaskName.KEYRING_RENEWAL)
        assert wait_finished(renewal, timeout=60).result == TaskResult.SUCCESS
        _, colons = import_into_fresh_home(
            anonymous_client.get("/default/keyring.asc").content.decode(), tmp_path / "renewed"
        )
        in_two_years = datetime.now(UTC) + timedelta(days=730)
        for expiry in colon_expiries(colons).values():
            assert abs(expiry - in_two_years) < timedelta(days=2)

        # gpg runs through the task's command runner: its command lines are in the journal.
        assert b"Running command: gpg --homedir" in renewal.journal_path.read_bytes()
        # The passphrase never reaches a journal.
        passphrase = keyrings.read_passphrase("default").encode()
        for task in (creation, renewal):
            assert passphrase not in task.journal_path.read_bytes()
        # Loading the instance again queues nothing: it has its keyring.
        call_command(
            "instances", "load", str(REPO_ROOT / "instance-files" / "default.yml"), stdout=out
        )
        assert Task.objects.filter(name=TaskName.KEYRING_CREATION).count() == 1
    finally:
        stop_agents(settings.FATBUILDR_DATA_DIR / "keyrings")
        stop_agents(tmp_path)

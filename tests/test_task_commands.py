"""The `tasks` management command's list, cancel and watch subcommands (purge: see
test_purge.py), on the real engine.
"""

import uuid

import pytest
from django.core.management import CommandError

from tasks.models import TaskResult, TaskState
from tests.factories import InstanceFactory, TaskFactory, make_task
from tests.helpers import run_command

pytestmark = pytest.mark.usefixtures("data_dir")


def test_list_command(engine_instance):
    other = InstanceFactory(id="other")
    old = make_task(engine_instance, hours_ago=2)
    pending = make_task(engine_instance, hours_ago=1, state=TaskState.PENDING)
    elsewhere = make_task(other, hours_ago=3)
    lines = run_command("tasks", "list").splitlines()
    assert lines == [
        "\t".join((str(t.id), t.instance_id, t.name, t.state, t.result, t.submission.isoformat()))
        for t in (elsewhere, old, pending)
    ]
    assert lines[0].split("\t")[1:5] == ["other", "artifact build", "finished", "success"]
    assert (
        run_command("tasks", "list", "--instance", "engine", "--state", "pending").splitlines()
        == lines[2:]
    )
    assert run_command("tasks", "list", "--instance", "other").splitlines() == lines[:1]
    with pytest.raises(CommandError, match="instance nope not found"):
        run_command("tasks", "list", "--instance", "nope")
    with pytest.raises(CommandError, match="invalid choice"):
        run_command("tasks", "list", "--state", "done")


# --- cancel --------------------------------------------------------------------------------


def test_cancel_command_with_the_engine(engine_instance):
    pending = make_task(engine_instance, hours_ago=1, state=TaskState.PENDING)
    output = run_command("tasks", "cancel", str(pending.id), "--user", "admin")
    assert output.strip() == f"task {pending.id}: state finished, result canceled"
    pending.refresh_from_db()
    assert (pending.state, pending.result) == (TaskState.FINISHED, TaskResult.CANCELED)
    with pytest.raises(CommandError, match="already finished"):
        run_command("tasks", "cancel", str(pending.id))


def test_cancel_command_cancels_as_the_user_given(engine_instance):
    pending = make_task(engine_instance, hours_ago=1, state=TaskState.PENDING)
    output = run_command("tasks", "cancel", str(pending.id), "--user", "admin")
    assert output.strip() == f"task {pending.id}: state finished, result canceled"
    pending.refresh_from_db()
    assert (pending.cancel_requested_by, pending.error) == ("admin", "canceled by admin")


def test_cancel_command_defaults_to_the_system_user(engine_instance, monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "operator")
    pending = make_task(engine_instance, hours_ago=1, state=TaskState.PENDING)
    run_command("tasks", "cancel", str(pending.id))
    pending.refresh_from_db()
    assert (pending.state, pending.result) == (TaskState.FINISHED, TaskResult.CANCELED)
    assert (pending.cancel_requested_by, pending.error) == ("operator", "canceled by operator")


def test_cancel_command_errors(engine_instance):
    finished = make_task(engine_instance, hours_ago=1)
    with pytest.raises(CommandError, match="is already finished"):
        run_command("tasks", "cancel", str(finished.id))
    with pytest.raises(CommandError, match="'nope' is not a task id"):
        run_command("tasks", "cancel", "nope")
    with pytest.raises(CommandError, match=f"task {uuid.UUID(int=1)} not found"):
        run_command("tasks", "cancel", str(uuid.UUID(int=1)))


# --- watch ---------------------------------------------------------------------------------


def test_watch_command_prints_the_journal_of_a_task_to_its_end(engine_instance, capsysbinary):
    from tasks.runner import JournalWriter

    watched = TaskFactory(
        instance=engine_instance, state=TaskState.FINISHED, result=TaskResult.SUCCESS
    )
    with JournalWriter(watched.journal_path) as journal:
        journal.log("Building hello")
        journal.output(b"gcc -o hello hello.c\n")
        journal.end(True, task_id=str(watched.pk))
        journal.log("after the end")
    run_command("tasks", "watch", str(watched.pk))
    assert capsysbinary.readouterr().out == (
        b"Building hello\ngcc -o hello hello.c\nTask succeeded\n"
    )
    with pytest.raises(CommandError, match="not a task id"):
        run_command("tasks", "watch", "nope")

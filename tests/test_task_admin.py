"""Maintainers cancel tasks from the admin."""

import pytest
from django.contrib.auth.models import User

from tasks.models import Task, TaskResult, TaskState
from tests.factories import TaskFactory


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("root", "root@example.org", "x"))
    return client


def test_admin_cancel_action(admin_client, default_instance, monkeypatch):
    from tasks import engine

    monkeypatch.setattr(engine, "enqueue_message", lambda task_id: None)
    pending = TaskFactory(instance=default_instance, state=TaskState.PENDING)
    running = TaskFactory(instance=default_instance, state=TaskState.RUNNING)
    finished = TaskFactory(
        instance=default_instance, state=TaskState.FINISHED, result=TaskResult.SUCCESS
    )
    response = admin_client.post(
        "/admin/tasks/task/",
        {"action": "cancel", "_selected_action": [pending.pk, running.pk, finished.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "2 task(s) canceled or being killed." in response.content.decode()
    pending, running, finished = (
        Task.objects.get(pk=task.pk) for task in (pending, running, finished)
    )
    assert (pending.state, pending.result) == (TaskState.FINISHED, TaskResult.CANCELED)
    assert (running.state, running.cancel_requested_by) == (TaskState.RUNNING, "root")
    assert (finished.result, finished.cancel_requested_by) == (TaskResult.SUCCESS, "")

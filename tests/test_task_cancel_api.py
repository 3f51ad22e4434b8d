"""`POST /{instance}/tasks/{id}/cancel`: status codes, Error objects and the cancel-task
action, over the engine in-process.

No Celery worker here (see test_engine_e2e.py for those): engine functions are called
directly and `tasks.engine.send` is replaced by a recorder of the task ids it is given
(`send_calls`).
"""

import uuid
from pathlib import Path

import pytest

from accounts.policy import _load
from tasks.journal import Command
from tasks.models import TaskResult, TaskState
from tests.engine_helpers import fresh, make
from tests.factories import InstanceFactory
from tests.workers import journal_frames

pytestmark = pytest.mark.usefixtures("data_dir", "send_calls")

REPO_ROOT = Path(__file__).resolve().parent.parent


# --- Cancellation over the API -------------------------------------------------------------


@pytest.fixture
def vendor_policy(settings):
    settings.FATBUILDR_POLICY = REPO_ROOT / "accounts" / "policy.acl"
    _load.cache_clear()
    yield
    _load.cache_clear()


@pytest.fixture
def builder_client(default_instance, multi_mode, vendor_policy, fatbuildr_group_member, client_for):
    """A member of group "fatbuildr": the `users` role of the vendor policy (cancel-task)."""
    return client_for(default_instance, fatbuildr_group_member.username)


def cancel_url(task_id) -> str:
    return f"/default/tasks/{task_id}/cancel"


def test_api_cancel_pending_task_is_200_and_finished(default_instance, builder_client):
    task = make(default_instance)
    response = builder_client.post(cancel_url(task.pk))
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["state"], body["result"]) == (str(task.pk), "finished", "canceled")
    assert (fresh(task).result, fresh(task).cancel_requested_by) == (TaskResult.CANCELED, "builder")
    assert journal_frames(task)[-1] == (Command.LOG, b"20:Task failed: canceled by builder")


def test_api_cancel_running_task_is_202_and_still_running(default_instance, builder_client):
    task = make(default_instance, state=TaskState.RUNNING)
    response = builder_client.post(cancel_url(task.pk))
    assert response.status_code == 202, response.content
    assert (response.json()["state"], response.json()["result"]) == ("running", "unknown")
    assert (fresh(task).state, fresh(task).cancel_requested_by) == (TaskState.RUNNING, "builder")


def test_api_cancel_finished_task_is_409_error_object(default_instance, builder_client):
    task = make(default_instance, state=TaskState.FINISHED)
    response = builder_client.post(cancel_url(task.pk))
    assert response.status_code == 409
    assert response.json() == {"error": f"task {task.pk} is already finished"}


@pytest.mark.parametrize("task_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_api_cancel_unknown_task_is_404_error_object(default_instance, builder_client, task_id):
    response = builder_client.post(cancel_url(task_id))
    assert response.status_code == 404
    assert response.json() == {"error": f"Unable to find task {task_id} on server"}


def test_api_cancel_task_of_another_instance_is_404(default_instance, builder_client):
    task = make(InstanceFactory(id="other"))
    response = builder_client.post(cancel_url(task.pk))
    assert response.status_code == 404
    assert fresh(task).state == TaskState.PENDING


def test_api_cancel_needs_the_cancel_task_action(
    default_instance, multi_mode, vendor_policy, anonymous_client, client_for
):
    task = make(default_instance)
    response = anonymous_client.post(cancel_url(task.pk))
    assert response.status_code == 403
    assert response.json() == {
        "error": "anonymous role is not allowed to perform action cancel-task"
    }
    response = client_for(default_instance, "mallory").post(cancel_url(task.pk))
    assert response.status_code == 403
    assert response.json() == {"error": "user mallory is not allowed to perform action cancel-task"}
    task = fresh(task)
    assert (task.state, task.cancel_requested_by) == (TaskState.PENDING, "")
    assert not task.journal_path.exists()

"""Many journal watchers on the production web server must not starve the rest of the API."""

import threading
import time

import pytest
import requests
from django.utils import timezone

from tasks.journal import log_frame
from tasks.models import Task, TaskResult, TaskState
from tests.factories import TaskFactory
from tests.workers import WebServer, wait_for

pytestmark = pytest.mark.e2e

WATCHERS = 120  # More than a threaded server of one process would have threads.


@pytest.fixture
def web_server(transactional_db, tmp_path):
    server = WebServer(tmp_path, workers=1)
    yield server
    server.stop()


def test_many_watchers_do_not_block_the_api(web_server, default_instance):
    task = TaskFactory(instance=default_instance, state=TaskState.RUNNING)
    task.journal_path.parent.mkdir(parents=True, exist_ok=True)
    task.journal_path.write_bytes(log_frame("Building"))
    url = f"{web_server.url}/default/watch/{task.pk}.journal"
    started, received = threading.Barrier(WATCHERS + 1, timeout=60), []

    def watch() -> None:
        with requests.get(url, stream=True, timeout=60) as response:
            first = response.raw.read(len(log_frame("Building")))
            started.wait()
            received.append(first + response.raw.read())

    watchers = [threading.Thread(target=watch) for _ in range(WATCHERS)]
    for watcher in watchers:
        watcher.start()
    started.wait()  # Every watcher holds an open stream and got its first frame.

    begin = time.monotonic()
    response = requests.get(f"{web_server.url}/default/queue.json", timeout=10)
    assert response.status_code == 200
    assert time.monotonic() - begin < 2, "the API answers while the streams are open"

    with open(task.journal_path, "ab") as journal:
        journal.write(log_frame("Task succeeded"))
    Task.objects.filter(pk=task.pk).update(
        state=TaskState.FINISHED, result=TaskResult.SUCCESS, finished_at=timezone.now()
    )
    for watcher in watchers:
        watcher.join(timeout=30)
    wait_for(lambda: len(received) == WATCHERS, timeout=5, message="every watcher to end")
    assert set(received) == {log_frame("Building") + log_frame("Task succeeded")}

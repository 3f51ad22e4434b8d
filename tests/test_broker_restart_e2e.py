"""Redis restarted without persistence while tasks are pending: every task still runs once."""

import pytest

from fatbuildr_site.celery import app
from tasks import engine
from tasks.models import TaskResult
from tasks.tasks import run_task
from tests.task_handlers import SHELL
from tests.workers import RedisServer, wait_finished, wait_running

pytestmark = pytest.mark.e2e


@pytest.fixture
def private_redis(tmp_path, monkeypatch):
    """A Redis of this test's own, which this process's submissions are sent to as well."""
    server = RedisServer(tmp_path)

    def enqueue_message(task_id) -> None:
        with app.connection_for_write(server.url) as connection:
            run_task.apply_async(args=[str(task_id)], connection=connection, retry=False)

    monkeypatch.setattr(engine, "enqueue_message", enqueue_message)
    yield server
    server.kill()


def test_every_pending_task_runs_once_after_a_broker_restart(
    start_worker, private_redis, default_instance, tmp_path
):
    runs = tmp_path / "runs"
    start_worker(env={"REDIS_URL": private_redis.url})

    def shell(name: str, script: str, *locks: str):
        script = f"echo {name} >> {runs}; {script}"
        locks = [engine.Lock(lock) for lock in locks]
        return engine.submit(default_instance, SHELL, user="tester", locks=locks, message=script)

    first = wait_running(shell("first", "sleep 3", "resource"))
    queued = [shell(f"queued{n}", "true", "resource") for n in range(3)]
    free = shell("free", "true", "elsewhere")  # Runs at once, before the restart.
    assert wait_finished(free).result == TaskResult.SUCCESS

    private_redis.kill()  # While the first task runs and the others wait for it.
    lost = shell("lost", "true")  # Its message can't even be sent.
    private_redis.start()

    for task in (first, *queued, lost):
        assert wait_finished(task, timeout=60).result == TaskResult.SUCCESS, task.error
    lines = runs.read_text().split()
    assert sorted(lines) == sorted(["first", "queued0", "queued1", "queued2", "free", "lost"])
    assert lines.index("queued0") < lines.index("queued1") < lines.index("queued2")

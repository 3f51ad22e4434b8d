"""The live watch page `watch/{id}.html`, with the Django test client (the browser tests are in
tests/test_watch_browser.py)."""

import logging

from tasks.journal import Command, encode_frame, log_frame
from tasks.models import TaskResult, TaskState
from tests.factories import TaskFactory

LINE1 = log_frame("Running build")
OUTPUT = encode_frame(Command.BYTES, b"line <1>\n") + encode_frame(Command.BYTES, b"line 2\n")
LINE2 = log_frame("Something odd", logging.WARNING)
END = log_frame("Task failed")


def task_with(instance, journal: bytes | None, **fields):
    task = TaskFactory(instance=instance, **fields)
    if journal is not None:
        task.journal_path.parent.mkdir(parents=True, exist_ok=True)
        task.journal_path.write_bytes(journal)
    return task


def test_finished_task_page_shows_the_whole_journal_and_final_state(
    anonymous_client, default_instance
):
    task = task_with(
        default_instance,
        LINE1 + OUTPUT + LINE2 + END,
        state=TaskState.FINISHED,
        result=TaskResult.FAILED,
    )
    response = anonymous_client.get(f"/default/watch/{task.id}.html")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert f"<title>Watch task {task.name} {task.id} · Fatbuildr</title>" in html
    assert '<span class="level">INFO</span> <span class="message">Running build</span>' in html
    assert '<pre class="output">line &lt;1&gt;\nline 2\n</pre>' in html  # one block, escaped
    assert '<div class="log log-warning">' in html
    assert 'data-ended="true"' in html
    assert '<p id="final-state" class="final failed">Task failed</p>' in html
    assert f'href="/default/tasks/{task.id}.json"' in html
    assert "web/watch.js" in html


def test_running_task_page_holds_the_journal_so_far_and_its_offset(
    anonymous_client, default_instance
):
    # The last frame is still being written: the page stops before it.
    task = task_with(default_instance, LINE1 + OUTPUT + LINE2[:5], state=TaskState.RUNNING)
    response = anonymous_client.get(f"/default/watch/{task.id}.html")
    html = response.content.decode()
    assert f'data-offset="{len(LINE1 + OUTPUT)}"' in html
    assert 'data-ended="false"' in html
    assert f'data-events-url="/default/watch/{task.id}.events"' in html
    assert "Something odd" not in html
    assert 'id="final-state" class="final " hidden' in html


def test_pending_task_page_without_journal(anonymous_client, default_instance):
    task = task_with(default_instance, None, state=TaskState.PENDING)
    response = anonymous_client.get(f"/default/watch/{task.id}.html")
    assert response.status_code == 200
    assert 'data-offset="0"' in response.content.decode()


def test_watch_page_unknown_task_is_404(anonymous_client, default_instance):
    response = anonymous_client.get(
        "/default/watch/c8c9935e-44c9-48de-a318-b6060c08b8c8.html", HTTP_ACCEPT="text/html"
    )
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    body = response.content.decode()
    assert "Error: Unable to find task c8c9935e-44c9-48de-a318-b6060c08b8c8 on server (404)" in body


def test_mono_instance_paths(anonymous_client, mono_mode):
    task = task_with(mono_mode, LINE1 + END, state=TaskState.FINISHED, result=TaskResult.FAILED)
    page = anonymous_client.get(f"/watch/{task.id}.html").content.decode()
    assert f'data-events-url="/watch/{task.id}.events"' in page
    response = anonymous_client.get(f"/watch/{task.id}.events")
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert b"event: end" in body and b"Running build" in body

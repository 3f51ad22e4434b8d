"""`GET /{instance}/watch/{task}.html`: follow a task's journal live in a browser.

The page holds the journal as it is when it is served (readable without
JavaScript), up to a frame boundary N; watch.js then follows
`watch/{task}.events` from N, and EventSource resumes by itself with
`Last-Event-ID` after a broken connection, so no line is lost or doubled.
"""

from django.http import HttpResponse
from django.shortcuts import render
from django.urls import re_path
from rest_framework.request import Request

from tasks.api.views import SingleTaskView
from tasks.journal import is_end_frame, journal_lines, read_frames
from tasks.models import Task, TaskState


def journal_so_far(task: Task) -> tuple[list[dict], int, str]:
    """The journal's lines up to its last whole frame (consecutive output merged into one
    block), the offset after that frame, and the end frame's message if it came."""
    lines: list[dict] = []
    end_message = ""
    try:
        handle = open(task.journal_path, "rb")  # noqa: SIM115 - closed below
    except OSError:
        return lines, 0, end_message
    with handle:
        for command, payload, _ in read_frames(handle):
            for kind, level, text in journal_lines([(command, payload)]):
                if kind == "output" and lines and lines[-1]["kind"] == "output":
                    lines[-1]["text"] += text
                else:
                    lines.append({"kind": kind, "level": level, "text": text})
            if is_end_frame(command, payload):
                end_message = payload.decode("utf-8", "replace").partition(":")[2]
                break
        return lines, handle.tell(), end_message


class WatchPageView(SingleTaskView):
    """The live watch page, under the policy of the journal (`view-task`)."""

    def perform_content_negotiation(self, request, force=False):
        # Browsers ask for text/html; the refusals are still answered by the API's handler.
        return super().perform_content_negotiation(request, force=True)

    def get(self, request: Request, *, task_id: str, **kwargs) -> HttpResponse:
        task = self.get_task(task_id)
        lines, offset, end_message = journal_so_far(task)
        finished = task.state == TaskState.FINISHED
        if finished and not end_message:
            end_message = "Task succeeded" if task.result == "success" else "Task failed"
        prefix = request.path.rsplit("/watch/", 1)[0]
        return render(
            request._request,
            "web/watch.html",
            {
                "task": task,
                "lines": lines,
                "offset": offset,
                "ended": bool(end_message) or finished,
                "end_message": end_message,
                "events_url": f"{prefix}/watch/{task.id}.events",
                "journal_url": f"{prefix}/watch/{task.id}.journal",
                "json_url": f"{prefix}/tasks/{task.id}.json",
                "home_url": f"{prefix}/registry/",
            },
        )


# Relative to the instance prefix, like the API's; before the registry's catch-all.
instance_urlpatterns = [
    re_path(r"^watch/(?P<task_id>[^/]+)\.html$", WatchPageView.as_view(), name="watch-page"),
]

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
from tasks.journal import journal_so_far
from tasks.models import TaskState
from web.views import PageView


class WatchPageView(PageView, SingleTaskView):
    """The live watch page, under the policy of the journal (`view-task`); refusals and
    unknown tasks are HTML error pages, like every page."""

    def get(self, request: Request, *, task_id: str, **kwargs) -> HttpResponse:
        task = self.get_task(task_id)
        lines, offset, end_message = journal_so_far(task.journal_path)
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

"""Task endpoints (reference: Tasks)."""

from collections.abc import AsyncIterator, Iterator

from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.http import StreamingHttpResponse
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.constants import Action
from instances.api import InstanceAPIView
from tasks import engine, selectors
from tasks.api import events
from tasks.journal import afollow_journal, follow_journal, is_frame_boundary
from tasks.models import Task, TaskState
from tasks.wire import task_to_wire


class RunningTaskView(InstanceAPIView):
    """`GET /{instance}/running.json`: the running task, or `null` when idle."""

    permission_actions = {"GET": Action.VIEW_TASK}

    def get(self, request: Request, **kwargs) -> Response:
        task = selectors.running_task(self.instance)
        return Response(task_to_wire(task) if task else None)


class QueueView(InstanceAPIView):
    """`GET /{instance}/queue.json`: pending tasks, oldest first."""

    permission_actions = {"GET": Action.VIEW_TASK}

    def get(self, request: Request, **kwargs) -> Response:
        return Response([task_to_wire(task) for task in selectors.pending_tasks(self.instance)])


class SingleTaskView(InstanceAPIView):
    """Base of the views about one task, named by the `task_id` URL argument."""

    permission_actions = {"GET": Action.VIEW_TASK}

    def get_task(self, task_id: str) -> Task:
        task = selectors.get_task(self.instance, task_id)
        if task is None:
            raise exceptions.NotFound(f"Unable to find task {task_id} on server")
        return task


class TaskView(SingleTaskView):
    """`GET /{instance}/tasks/{task}.json`: a pending, running or finished task."""

    def get(self, request: Request, *, task_id: str, **kwargs) -> Response:
        return Response(task_to_wire(self.get_task(task_id)))


class WatchJournalView(SingleTaskView):
    """`GET /{instance}/watch/{task}.journal`: the task journal, followed live while it runs.

    `Range: bytes=N-` (N a frame boundary) resumes at N with a 206; any other range is 416.
    """

    def get(self, request: Request, *, task_id: str, **kwargs) -> StreamingHttpResponse:
        task = self.get_task(task_id)
        if task.state == TaskState.FINISHED and not selectors.has_journal(task):
            # An empty 200 body crashes fatbuildrctl (compat §2.7).
            raise exceptions.NotFound(f"No journal available for task {task_id}")
        start = events.range_start(request.META.get("HTTP_RANGE"))
        if start is not None and not is_frame_boundary(task.journal_path, start):
            raise events.RangeNotSatisfiable(
                f"Range start {start} is not a frame boundary of the journal"
            )
        frames: AsyncIterator[bytes] | Iterator[bytes]
        if isinstance(request._request, ASGIRequest):
            # Under ASGI a watcher holds a coroutine, not one of the threads that
            # serve the rest of the API (DESIGN.md: long streams must not starve it).
            frames = afollow_journal(
                task.journal_path,
                is_finished=selectors.afinished_checker(task, min_interval=1.0),
                start=start or 0,
            )
            connection.close()  # Back to the pool for the length of the stream.
        else:
            frames = follow_journal(
                task.journal_path,
                is_finished=selectors.finished_checker(task, min_interval=1.0),
                start=start or 0,
            )
        response = StreamingHttpResponse(frames, content_type="application/octet-stream")
        if start is not None:
            response.status_code = status.HTTP_206_PARTIAL_CONTENT
            if task.state == TaskState.FINISHED:
                size = task.journal_path.stat().st_size
                response["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
            else:  # still growing: neither its end nor its length is known yet
                response["Content-Range"] = f"bytes {start}-*/*"
        response["Accept-Ranges"] = "bytes"
        response["X-Accel-Buffering"] = "no"
        response["Cache-Control"] = "no-cache"
        return response


class WatchEventsView(SingleTaskView):
    """`GET /{instance}/watch/{task}.events`: the task journal as Server-Sent Events.

    `Last-Event-ID` (or `?from=`/`?offset=` on a first connection) resumes after that
    byte offset, which must be a frame boundary (else 400).
    """

    def perform_content_negotiation(self, request, force=False):
        # EventSource asks for text/event-stream only; errors are still the JSON Error object.
        return super().perform_content_negotiation(request, force=True)

    def get(self, request: Request, *, task_id: str, **kwargs) -> StreamingHttpResponse:
        task = self.get_task(task_id)
        if task.state == TaskState.FINISHED and not selectors.has_journal(task):
            raise exceptions.NotFound(f"No journal available for task {task_id}")
        start = events.parse_offset(
            request.META.get("HTTP_LAST_EVENT_ID")
            or request.query_params.get("from")
            or request.query_params.get("offset")
        )
        if start is not None:
            events.check_offset(task, start)
        return events.events_response(request._request, task, start or 0)


class CancelTaskView(SingleTaskView):
    """`POST /{instance}/tasks/{task}/cancel`: cancel a pending or running task (ours).

    A pending task is canceled at once (200, finished); a running one is
    killed by its worker within a second (202, still running).
    """

    permission_actions = {"POST": Action.CANCEL_TASK}

    def post(self, request: Request, *, task_id: str, **kwargs) -> Response:
        task = self.get_task(task_id)
        # TaskNotCancellable, a conflict, is answered 409 by the exception handler.
        task = engine.cancel_task(task, by=request.user.username or "anonymous")
        accepted = task.state == TaskState.RUNNING
        return Response(
            task_to_wire(task), status=status.HTTP_202_ACCEPTED if accepted else status.HTTP_200_OK
        )

"""`GET /{instance}/history.json`: finished tasks, newest first, paginated and filterable.

Upstream serves its history only over D-Bus and in the HTML page (the last 10
tasks, compat §6.4); this endpoint has no upstream client, so it uses the usual
DRF page envelope around upstream task objects.
"""

from rest_framework import exceptions, serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.constants import Action
from instances.api import InstanceAPIView
from tasks.history import history_queryset
from tasks.models import TaskName, TaskResult
from tasks.wire import task_to_wire

FINISHED_RESULTS = [TaskResult.SUCCESS, TaskResult.FAILED, TaskResult.CANCELED]


class HistoryFilterSerializer(serializers.Serializer):
    """The optional filters of the history, checked so that a typo is an error, not an
    empty page. An empty value (`?name=`) is no filter, as in DRF forms."""

    name = serializers.ChoiceField(choices=TaskName.values, required=False)
    result = serializers.ChoiceField(choices=FINISHED_RESULTS, required=False)
    artifact = serializers.CharField(required=False, max_length=255)


class HistoryPagination(PageNumberPagination):
    """DRF page-number pagination that refuses malformed page parameters.

    DRF silently falls back to the default for a bad `page_size` and answers
    404 for a malformed `page`; here both are 400, and 404 means only a page
    past the end. An empty value means the default, as for the filters.
    """

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    invalid_page_message = "page {page_number} not found: {message}"

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if not raw:
            return self.page_size
        return _bounded_int(self.page_size_query_param, raw, maximum=self.max_page_size)

    def get_page_number(self, request: Request, paginator) -> int:
        raw = request.query_params.get(self.page_query_param)
        if not raw:
            return 1
        if raw in self.last_page_strings:
            return paginator.num_pages
        return _bounded_int(self.page_query_param, raw)


class HistoryView(InstanceAPIView):
    """Finished tasks of the instance, newest first.

    Query parameters: `name` (a task name), `result` (success, failed or
    canceled), `artifact` (exact name), `page` (from 1, or `last`) and
    `page_size` (1 to 500, default 50).
    """

    permission_actions = {"GET": Action.VIEW_TASK}
    pagination_class = HistoryPagination

    def get(self, request: Request, **kwargs) -> Response:
        filters = HistoryFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        queryset = history_queryset(self.instance, **filters.validated_data)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        assert page is not None, "HistoryPagination always has a page size"
        return paginator.get_paginated_response([task_to_wire(task) for task in page])


def _bounded_int(name: str, raw: str, *, maximum: int | None = None) -> int:
    """*raw* as an integer from 1 to *maximum*, or a 400 naming the parameter."""
    bound = f" between 1 and {maximum}" if maximum is not None else " of at least 1"
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1 or (maximum is not None and value > maximum):
        raise exceptions.ValidationError(f"{name} must be an integer{bound}, not {raw!r}")
    return value

"""HTML pages beside the JSON routes (compat §1.6): thin views over the selectors.

Each page is a DRF view under the same token authentication and policy as its
JSON twin, so the anonymous role decides for a browser as upstream; only the
answer differs: a template, and an HTML error page (`Error: <message> (<code>)`)
instead of the Error object.
"""

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from rest_framework import exceptions
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import TemplateHTMLRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.constants import Action
from instances import selectors as instance_selectors
from instances.api import InstanceAPIView
from registry import selectors
from tasks import selectors as task_selectors
from tasks.history import history_queryset
from tasks.models import TaskName, TaskResult

ARTIFACTS_PER_PAGE = 100
LAST_FINISHED_TASKS = 10
HISTORY_PER_PAGE = 50


class HTMLOnly(BaseContentNegotiation):
    """A page is HTML whatever the Accept header says (its JSON twin is another URL)."""

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(
        self, request: Request, renderers: Any, format_suffix: str | None = None
    ) -> tuple[Any, str]:
        return (renderers[0], renderers[0].media_type)


class PageView(APIView):
    """A page: the errors of the view (policy refusals, unknown objects) become HTML pages."""

    renderer_classes = [TemplateHTMLRenderer]
    content_negotiation_class = HTMLOnly

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, Http404):
            exc = exceptions.NotFound(str(exc) or "Page not found")
        # The project's handler gives the status and the message of the Error object; a new
        # Response (not flagged as an exception) is rendered with the error template.
        error = super().handle_exception(exc)
        context = {
            "message": error.data["error"],
            "status": error.status_code,
            "version": settings.FATBUILDR_VERSION,
        }
        return Response(context, status=error.status_code, template_name="web/error.html")


class InstancesPage(PageView):
    """`GET /` (multi-instance mode): the instances, public as `instances.json`."""

    authentication_classes: list = []

    def get(self, request: Request) -> HttpResponse:
        return render(
            request,
            "web/index.html",
            {
                "instances": instance_selectors.list_instances(),
                "version": settings.FATBUILDR_VERSION,
            },
        )


class IndexRedirect(APIView):
    """`GET /` (mono-instance mode): 302 to the registry page."""

    authentication_classes: list = []

    def get(self, request: Request) -> HttpResponse:
        return HttpResponseRedirect("/registry/")


class InstancePage(PageView, InstanceAPIView):
    """A page of one instance; `base` is the URL prefix of its routes."""

    permission_actions = {"GET": Action.VIEW_REGISTRY}
    template_name = ""

    def page(self, request: Request, context: dict[str, Any]) -> HttpResponse:
        base = "/" if settings.FATBUILDR_INSTANCE else f"/{self.instance.id}/"
        context = {
            "instance": self.instance,
            "base": base,
            "version": settings.FATBUILDR_VERSION,
            **context,
        }
        return render(request, self.template_name, context)


class RegistryPage(InstancePage):
    """`GET /{i}/registry/`: formats, tasks, the keyring and how to use the registries."""

    template_name = "web/registry.html"

    def get(self, request: Request, **kwargs) -> HttpResponse:
        tree = selectors.registry_tree(self.instance)
        server = request.build_absolute_uri(
            "/" if settings.FATBUILDR_INSTANCE else f"/{self.instance.id}/"
        )
        return self.page(
            request,
            {
                "formats": selectors.registry_formats(self.instance),
                "running": task_selectors.running_tasks(self.instance),
                "pending": task_selectors.pending_tasks(self.instance),
                "finished": list(history_queryset(self.instance)[:LAST_FINISHED_TASKS]),
                "server": server,
                "deb": sorted(tree.get("deb", {}).items()),
                "rpm": [
                    (dist, deriv)
                    for dist, derivatives in sorted(tree.get("rpm", {}).items())
                    for deriv in derivatives
                ],
            },
        )


class FormatPage(InstancePage):
    """`GET /{i}/registry/{fmt}/`: the distributions."""

    template_name = "web/format.html"

    def get(self, request: Request, *, fmt: str, **kwargs) -> HttpResponse:
        distributions = selectors.registry_distributions(self.instance, fmt)
        return self.page(request, {"fmt": fmt, "distributions": distributions})


class DistributionPage(InstancePage):
    """`GET /{i}/registry/{fmt}/{dist}/`: the derivatives."""

    template_name = "web/distribution.html"

    def get(self, request: Request, *, fmt: str, distribution: str, **kwargs) -> HttpResponse:
        derivatives = selectors.registry_derivatives(self.instance, fmt, distribution)
        return self.page(
            request, {"fmt": fmt, "distribution": distribution, "derivatives": derivatives}
        )


class DerivativePage(InstancePage):
    """`GET /{i}/registry/{fmt}/{dist}/{deriv}/`: artifacts, paginated and filterable by a
    name substring and an architecture; the page holds one slice, whatever the registry size."""

    template_name = "web/derivative.html"

    def get(
        self, request: Request, *, fmt: str, distribution: str, derivative: str, **kwargs
    ) -> HttpResponse:
        name = request.query_params.get("name", "")
        architecture = request.query_params.get("architecture", "")
        rows, architectures = selectors.derivative_artifacts_page(
            self.instance, fmt, distribution, derivative, name=name, architecture=architecture
        )
        page = Paginator(rows, ARTIFACTS_PER_PAGE).get_page(request.query_params.get("page"))
        artifacts = [
            {"architecture": arch, "name": art, "size": size, "version": version}
            for arch, art, size, version in page.object_list
        ]
        query = urlencode(
            {key: value for key, value in (("name", name), ("architecture", architecture)) if value}
        )
        return self.page(
            request,
            {
                "fmt": fmt,
                "distribution": distribution,
                "derivative": derivative,
                "artifacts": artifacts,
                "page_obj": page,
                "name": name,
                "architecture": architecture,
                "architectures": architectures,
                "query": query,
            },
        )


class ArtifactPage(InstancePage):
    """`GET .../{arch}/{artifact}/`: a source with its binaries, or a binary with its source
    and content; the changelog."""

    template_name = "web/artifact.html"

    def get(
        self,
        request: Request,
        *,
        fmt: str,
        distribution: str,
        derivative: str,
        architecture: str,
        artifact: str,
        **kwargs,
    ) -> HttpResponse:
        description = selectors.artifact_description(
            self.instance, fmt, distribution, derivative, architecture, artifact
        )
        for entry in description["changelog"]:
            entry["when"] = datetime.fromtimestamp(entry["date"], tz=UTC)
        return self.page(
            request,
            {
                "fmt": fmt,
                "distribution": distribution,
                "derivative": derivative,
                "architecture": architecture,
                "artifact": artifact,
                "description": description,
                "is_source": "binaries" in description,
            },
        )


class SearchPage(InstancePage):
    """`GET /{i}/search?artifact=TERM`: results grouped by format, distribution, derivative."""

    template_name = "web/search.html"

    def get(self, request: Request, **kwargs) -> HttpResponse:
        term = request.query_params.get("artifact", "")
        results = selectors.search_artifacts(self.instance, term) if term else {}
        return self.page(request, {"term": term, "results": results})


class TaskPage(InstancePage):
    """`GET /{i}/tasks/{id}.html`: the task fields, links to its watch page and JSON twin."""

    permission_actions = {"GET": Action.VIEW_TASK}
    template_name = "web/task.html"

    def get(self, request: Request, *, task_id: str, **kwargs) -> HttpResponse:
        task = task_selectors.get_task(self.instance, task_id)
        if task is None:
            raise exceptions.NotFound(f"task {task_id} not found")
        return self.page(request, {"task": task})


class HistoryPage(InstancePage):
    """`GET /{i}/history.html`: finished tasks, newest first, with the filters of
    history.json (an unknown value is an error, not an empty page)."""

    permission_actions = {"GET": Action.VIEW_TASK}
    template_name = "web/history.html"

    def get(self, request: Request, **kwargs) -> HttpResponse:
        filters = {key: request.query_params.get(key, "") for key in ("name", "result", "artifact")}
        if filters["name"] and filters["name"] not in TaskName.values:
            raise exceptions.ValidationError(f"Unknown task name {filters['name']}")
        if filters["result"] and filters["result"] not in RESULTS:
            raise exceptions.ValidationError(f"Unknown task result {filters['result']}")
        queryset = history_queryset(
            self.instance, **{key: value or None for key, value in filters.items()}
        )
        page = Paginator(queryset, HISTORY_PER_PAGE).get_page(request.query_params.get("page"))
        query = urlencode({key: value for key, value in filters.items() if value})
        return self.page(
            request,
            {
                "page_obj": page,
                "filters": filters,
                "query": query,
                "names": TaskName.values,
                "results": RESULTS,
            },
        )


RESULTS = [TaskResult.SUCCESS.value, TaskResult.FAILED.value, TaskResult.CANCELED.value]

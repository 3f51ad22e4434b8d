"""Instance, pipeline and registry index endpoints (reference: Instances, Pipelines, Registries)."""

from django.conf import settings
from django.http import HttpResponse
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.constants import Action
from fatbuildr_site.api import InstanceAPIView
from registry import keyrings, publishing, selectors
from registry.pipelines import UnknownDerivative


class RegistryLookupMixin:
    """Turn index lookups that find nothing into 404 Error objects."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, selectors.RegistryLookupError):
            exc = exceptions.NotFound(str(exc))
        return super().handle_exception(exc)  # type: ignore[misc]


class VersionView(APIView):
    """`GET /version`: plain text, public."""

    authentication_classes: list = []

    def get(self, request: Request) -> HttpResponse:
        return HttpResponse(
            f"Fatbuildr v{settings.FATBUILDR_VERSION}", content_type="text/plain; charset=utf-8"
        )


class InstancesView(APIView):
    """`GET /instances.json` (multi-instance mode only): every instance, public."""

    authentication_classes: list = []

    def get(self, request: Request) -> Response:
        return Response([selectors.instance_to_wire(i) for i in selectors.list_instances()])


class InstanceView(InstanceAPIView):
    """`GET /{instance}/instance.json`."""

    permission_action = Action.VIEW_REGISTRY

    def get(self, request: Request, **kwargs) -> Response:
        return Response(selectors.instance_to_wire(self.instance))


class PipelineArchitecturesView(InstanceAPIView):
    """`GET /{instance}/pipelines/architectures.json`: host architecture first."""

    permission_action = Action.VIEW_PIPELINE

    def get(self, request: Request, **kwargs) -> Response:
        return Response(self.instance.pipeline_architectures())


class PipelineFormatsView(InstanceAPIView):
    """`GET /{instance}/pipelines/formats.json`, exact-match filters on every query parameter."""

    permission_action = Action.VIEW_PIPELINE
    filters = ("format", "distribution", "environment", "derivative")

    def get(self, request: Request, **kwargs) -> Response:
        params = {name: request.query_params.get(name) for name in self.filters}
        pipelines = selectors.get_pipelines(self.instance)
        try:
            return Response(pipelines.formats_listing(**params))
        except UnknownDerivative as error:
            raise exceptions.NotFound(str(error)) from error


class RegistryFormatsView(InstanceAPIView):
    """`GET /{instance}/registry.json`."""

    permission_action = Action.VIEW_REGISTRY

    def get(self, request: Request, **kwargs) -> Response:
        return Response(selectors.registry_formats(self.instance))


class RegistryDistributionsView(RegistryLookupMixin, InstanceAPIView):
    """`GET /{instance}/registry/{format}.json`."""

    permission_action = Action.VIEW_REGISTRY

    def get(self, request: Request, *, fmt: str, **kwargs) -> Response:
        return Response(selectors.registry_distributions(self.instance, fmt))


class RegistryDerivativesView(RegistryLookupMixin, InstanceAPIView):
    """`GET /{instance}/registry/{format}/{distribution}.json`."""

    permission_action = Action.VIEW_REGISTRY

    def get(self, request: Request, *, fmt: str, distribution: str, **kwargs) -> Response:
        return Response(selectors.registry_derivatives(self.instance, fmt, distribution))


class RegistryArtifactsView(RegistryLookupMixin, InstanceAPIView):
    """`GET /{instance}/registry/{format}/{distribution}/{derivative}.json`."""

    permission_action = Action.VIEW_REGISTRY

    def get(
        self, request: Request, *, fmt: str, distribution: str, derivative: str, **kwargs
    ) -> Response:
        return Response(
            selectors.derivative_artifacts(self.instance, fmt, distribution, derivative)
        )


class ArtifactView(RegistryLookupMixin, InstanceAPIView):
    """`/{instance}/registry/{fmt}/{dist}/{derivative}/{architecture}/{artifact}.json`:
    GET describes an artifact, DELETE queues the deletion of one of its versions."""

    # Per method: a property where InstanceAPIView declares a plain attribute.
    @property
    def permission_action(self) -> str:  # type: ignore[override]
        return Action.EDIT_REGISTRY if self.request.method == "DELETE" else Action.VIEW_REGISTRY

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
    ) -> Response:
        return Response(
            selectors.artifact_description(
                self.instance, fmt, distribution, derivative, architecture, artifact
            )
        )

    def delete(
        self,
        request: Request,
        *,
        fmt: str,
        distribution: str,
        derivative: str,
        architecture: str,
        artifact: str,
        **kwargs,
    ) -> Response:
        version = request.query_params.get("version", "")
        if not version:
            raise exceptions.ValidationError("Missing version query parameter")
        # Checked now, not by the worker: a wrong name or version (the literal
        # placeholders sent by upstream's client, compat §2.8) is a clean 404.
        row = selectors.find_artifact(
            self.instance, fmt, distribution, derivative, architecture, artifact
        )
        if row.version != version:
            raise exceptions.NotFound(
                f"Artifact {artifact} version {version} with architecture {architecture} not "
                f"found in {fmt} registry for distribution {distribution} and derivative "
                f"{derivative}"
            )
        target = publishing.Target(self.instance, fmt, distribution, derivative)
        task = publishing.queue_deletion(target, row, user=request.user.username or "anonymous")
        return Response({"task": str(task.pk)})


class SearchView(InstanceAPIView):
    """`GET /{instance}/search.json?artifact=TERM`."""

    permission_action = Action.VIEW_REGISTRY

    def get(self, request: Request, **kwargs) -> Response:
        term = request.query_params.get("artifact", "")
        if not term:
            raise exceptions.ValidationError("Missing artifact query parameter")
        return Response(selectors.search_artifacts(self.instance, term))


class KeyringView(InstanceAPIView):
    """`GET /{instance}/keyring.asc`: the armored public key of the instance keyring."""

    permission_action = Action.VIEW_KEYRING

    def get(self, request: Request, **kwargs) -> HttpResponse:
        # Read from the database copy: the web hosts never run gpg. A plain
        # HttpResponse keeps the JSON renderer out of the way.
        public_key = keyrings.armored_public_key(self.instance)
        if public_key is None:
            raise exceptions.NotFound("No keyring available on this instance")
        response = HttpResponse(public_key, content_type="text/plain; charset=utf-8")
        response["Content-Disposition"] = "attachment; filename=keyring.asc"
        response["Cache-Control"] = "no-cache"
        return response

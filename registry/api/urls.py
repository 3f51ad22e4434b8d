"""Registry routes, relative to the instance prefix (none in mono-instance mode)."""

from django.urls import re_path

from registry.api import downloads, views

SEGMENT = r"[^/]+"

instance_urlpatterns = [
    re_path(r"^instance\.json$", views.InstanceView.as_view(), name="instance"),
    re_path(
        r"^pipelines/architectures\.json$",
        views.PipelineArchitecturesView.as_view(),
        name="pipeline-architectures",
    ),
    re_path(
        r"^pipelines/formats\.json$", views.PipelineFormatsView.as_view(), name="pipeline-formats"
    ),
    re_path(r"^registry\.json$", views.RegistryFormatsView.as_view(), name="registry-formats"),
    re_path(
        rf"^registry/(?P<fmt>{SEGMENT})\.json$",
        views.RegistryDistributionsView.as_view(),
        name="registry-distributions",
    ),
    re_path(
        rf"^registry/(?P<fmt>{SEGMENT})/(?P<distribution>{SEGMENT})\.json$",
        views.RegistryDerivativesView.as_view(),
        name="registry-derivatives",
    ),
    re_path(
        rf"^registry/(?P<fmt>{SEGMENT})/(?P<distribution>{SEGMENT})/(?P<derivative>{SEGMENT})\.json$",
        views.RegistryArtifactsView.as_view(),
        name="registry-artifacts",
    ),
    re_path(
        rf"^registry/(?P<fmt>{SEGMENT})/(?P<distribution>{SEGMENT})/(?P<derivative>{SEGMENT})"
        rf"/(?P<architecture>{SEGMENT})/(?P<artifact>{SEGMENT})\.json$",
        views.ArtifactView.as_view(),
        name="artifact",
    ),
    re_path(r"^search\.json$", views.SearchView.as_view(), name="search"),
    re_path(r"^keyring\.asc$", views.KeyringView.as_view(), name="keyring"),
    # Last: the registry folders themselves, for apt and dnf (compat §1.7).
    re_path(
        r"^(?P<path>(?:deb|rpm|osi)(?:/[\s\S]*)?)$",
        downloads.RegistryFileView.as_view(),
        name="registry-file",
    ),
]

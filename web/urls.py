"""Page routes at upstream's HTML paths (compat §1.6), relative to the instance prefix."""

from django.urls import re_path

from web import views

SEGMENT = r"[^/]+"

instance_urlpatterns = [
    re_path(r"^registry/$", views.RegistryPage.as_view(), name="page-registry"),
    re_path(rf"^registry/(?P<fmt>{SEGMENT})/$", views.FormatPage.as_view(), name="page-format"),
    re_path(
        rf"^registry/(?P<fmt>{SEGMENT})/(?P<distribution>{SEGMENT})/$",
        views.DistributionPage.as_view(),
        name="page-distribution",
    ),
    re_path(
        rf"^registry/(?P<fmt>{SEGMENT})/(?P<distribution>{SEGMENT})/(?P<derivative>{SEGMENT})/$",
        views.DerivativePage.as_view(),
        name="page-derivative",
    ),
    re_path(
        rf"^registry/(?P<fmt>{SEGMENT})/(?P<distribution>{SEGMENT})/(?P<derivative>{SEGMENT})"
        rf"/(?P<architecture>{SEGMENT})/(?P<artifact>{SEGMENT})/$",
        views.ArtifactPage.as_view(),
        name="page-artifact",
    ),
    re_path(r"^search$", views.SearchPage.as_view(), name="page-search"),
    re_path(r"^tasks/(?P<task_id>[^/]+)\.html$", views.TaskPage.as_view(), name="page-task"),
    re_path(r"^history\.html$", views.HistoryPage.as_view(), name="page-history"),
]

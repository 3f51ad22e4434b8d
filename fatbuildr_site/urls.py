"""URL layout: `/{instance}/...` by default, `/...` in mono-instance mode (FATBUILDR_INSTANCE)."""

from django.conf import settings
from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, re_path

from builds.api import urls as build_urls
from registry.api import urls as registry_urls
from registry.api import views as registry_views
from tasks.api import urls as task_urls
from web import urls as web_urls
from web import views as web_views
from web import watch as web_watch

handler400 = "fatbuildr_site.exceptions.bad_request"
handler403 = "fatbuildr_site.exceptions.forbidden"
handler404 = "fatbuildr_site.exceptions.not_found"
handler500 = "fatbuildr_site.exceptions.server_error"


def build_urlpatterns(mono_instance: bool) -> list[URLPattern | URLResolver]:
    """Every route, with or without the instance prefix."""
    # Before the registry routes, which end with the catch-all of registry files.
    instance_patterns = (
        web_urls.instance_urlpatterns
        + web_watch.instance_urlpatterns
        + build_urls.instance_urlpatterns
        + registry_urls.instance_urlpatterns
        + task_urls.instance_urlpatterns
    )
    patterns: list[URLPattern | URLResolver] = [
        path("admin/", admin.site.urls),
        path("version", registry_views.VersionView.as_view(), name="version"),
    ]
    if mono_instance:
        patterns += [
            path("", web_views.IndexRedirect.as_view(), name="page-index"),
            path("", include(instance_patterns)),
        ]
    else:
        patterns += [
            path("", web_views.InstancesPage.as_view(), name="page-index"),
            path("instances.json", registry_views.InstancesView.as_view(), name="instances"),
            re_path(r"^(?P<instance>[^/]+)/", include(instance_patterns)),
        ]
    return patterns


urlpatterns = build_urlpatterns(mono_instance=settings.FATBUILDR_INSTANCE is not None)

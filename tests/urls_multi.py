"""URL configuration of multi-instance mode, for tests that switch modes."""

from fatbuildr_site.urls import (  # noqa: F401 - the error handlers are looked up here
    build_urlpatterns,
    handler400,
    handler403,
    handler404,
    handler500,
)

urlpatterns = build_urlpatterns(mono_instance=False)

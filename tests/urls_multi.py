"""URL configuration of multi-instance mode, for tests that switch modes."""

from fatbuildr_site.urls import build_urlpatterns

urlpatterns = build_urlpatterns(mono_instance=False)

"""Build routes, relative to the instance prefix (none in mono-instance mode)."""

from django.urls import re_path

from builds.api import views

instance_urlpatterns = [
    re_path(r"^build$", views.BuildView.as_view(), name="build"),
]

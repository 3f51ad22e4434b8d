"""Task routes, relative to the instance prefix (none in mono-instance mode)."""

from django.urls import re_path

from tasks.api import views
from tasks.api.history import HistoryView

instance_urlpatterns = [
    re_path(r"^running\.json$", views.RunningTaskView.as_view(), name="running"),
    re_path(r"^queue\.json$", views.QueueView.as_view(), name="queue"),
    re_path(r"^history\.json$", HistoryView.as_view(), name="history"),
    re_path(r"^tasks/(?P<task_id>[^/]+)\.json$", views.TaskView.as_view(), name="task"),
    re_path(
        r"^tasks/(?P<task_id>[^/]+)/cancel$", views.CancelTaskView.as_view(), name="task-cancel"
    ),
    re_path(r"^watch/(?P<task_id>[^/]+)\.journal$", views.WatchJournalView.as_view(), name="watch"),
    re_path(
        r"^watch/(?P<task_id>[^/]+)\.events$", views.WatchEventsView.as_view(), name="watch-events"
    ),
]

"""Admin for tasks: the queue and its history, read-only (tasks change through the engine)."""

from django.contrib import admin
from django.http import HttpRequest

from tasks.models import Task


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("id", "instance", "name", "state", "result", "user", "artifact", "submission")
    list_filter = ("instance", "state", "result", "name")
    search_fields = ("=id", "artifact", "user")
    date_hierarchy = "submission"
    ordering = ("-submission",)
    show_full_result_count = False

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        return [field.name for field in Task._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Deleting a row under a running worker would orphan its work; history is purged instead.
        return False

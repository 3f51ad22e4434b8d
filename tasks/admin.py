"""Admin for tasks: the queue and its history, read-only (tasks change through the engine)."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from tasks.engine import TaskNotCancellable, cancel_task
from tasks.models import Task, TaskState


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("id", "instance", "name", "state", "result", "user", "artifact", "submission")
    list_filter = ("instance", "state", "result", "name")
    search_fields = ("=id", "artifact", "user")
    date_hierarchy = "submission"
    ordering = ("-submission",)
    show_full_result_count = False
    actions = ["cancel"]

    @admin.action(description="Cancel selected pending or running tasks")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        canceled = 0
        for task in queryset.exclude(state=TaskState.FINISHED):
            try:
                cancel_task(task, by=request.user.get_username())
            except TaskNotCancellable:
                continue  # Finished meanwhile.
            canceled += 1
        self.message_user(request, f"{canceled} task(s) canceled or being killed.", messages.INFO)

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        return [field.name for field in Task._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Deleting a row under a running worker would orphan its work; history is purged instead.
        return False

"""Admin for roles; users and groups are Django's own admin pages."""

from django.contrib import admin

from accounts.models import Role


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    list_display = ("name", "actions", "users")
    search_fields = ("name", "users")
    filter_horizontal = ("groups",)

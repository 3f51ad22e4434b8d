"""Admin for maintainers: the registry index and keyrings, read-only (instances:
`instances.admin`).
"""

from django.contrib import admin
from django.http import HttpRequest

from registry import models


class ReadOnlyAdminMixin:
    """The registry index mirrors what is on disk: only publishing changes it."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(models.RegistryFormat)
class RegistryFormatAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("instance", "name")
    list_filter = ("instance", "name")


@admin.register(models.RegistryDistribution)
class RegistryDistributionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "format")
    list_filter = ("format__instance", "format__name")
    list_select_related = ("format",)


@admin.register(models.RegistryDerivative)
class RegistryDerivativeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "distribution")
    list_filter = ("distribution__format__instance", "distribution__format__name")
    list_select_related = ("distribution__format",)


class ChangelogEntryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = models.ChangelogEntry
    fields = ("position", "version", "author", "date", "changes")


class ContentEntryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = models.ContentEntry
    fields = ("path", "type", "size")


@admin.register(models.Artifact)
class ArtifactAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "architecture", "version", "size", "derivative")
    list_filter = (
        "derivative__distribution__format__instance",
        "derivative__distribution__format__name",
        "derivative__distribution__name",
        "derivative__name",
        "architecture",
    )
    list_select_related = ("derivative__distribution__format",)
    search_fields = ("name",)
    show_full_result_count = False
    inlines = [ChangelogEntryInline, ContentEntryInline]


@admin.register(models.Keyring)
class KeyringAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Keyrings change only through the keyring tasks; the secret side never leaves gpg."""

    list_display = ("instance", "fingerprint", "algorithm", "created", "expires", "updated")

"""Admin for maintainers: instances and their pipelines (editable)."""

from django.contrib import admin

from instances import models


class PipelineDistributionInline(admin.TabularInline):
    model = models.PipelineDistribution
    extra = 0
    fields = ("position", "format", "name", "environment", "tag", "mirror", "components", "modules")


class PipelineDerivativeInline(admin.TabularInline):
    model = models.PipelineDerivative
    fk_name = "instance"
    extra = 0
    fields = ("position", "name", "formats", "extends")


@admin.register(models.Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "userid", "formats", "updated_at")
    search_fields = ("id", "name")
    # The token key is a secret: never displayed; rotate it with `tokens import-key`.
    exclude = ("token_key",)
    readonly_fields = ("source_file", "created_at", "updated_at")
    inlines = [PipelineDistributionInline, PipelineDerivativeInline]

"""Roles maintained in the admin, on top of the policy file."""

from django.contrib.auth.models import Group
from django.contrib.postgres.fields import ArrayField
from django.db import models

from accounts.constants import Action


class Role(models.Model):
    """A role granted through the admin.

    The policy file (FATBUILDR_POLICY) is read first; a Role row adds its
    actions to whoever it names, and a row named like a file role extends it.
    A row named "anonymous" grants its actions to everyone.
    """

    name = models.CharField(max_length=64, unique=True)
    actions = ArrayField(models.CharField(max_length=32, choices=Action.choices), default=list)
    users = ArrayField(
        models.CharField(max_length=150),
        default=list,
        blank=True,
        help_text="User names (token subject), comma-separated.",
    )
    groups = models.ManyToManyField(Group, blank=True, related_name="fatbuildr_roles")

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["name"], name="role_name"),
        ]

    def __str__(self) -> str:
        return self.name

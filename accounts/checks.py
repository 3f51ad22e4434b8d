"""System checks for the access policy (`manage.py check --database default`)."""

from django.core.checks import CheckMessage, Tags, Warning, register


@register(Tags.security, Tags.database)
def policy_groups_exist(app_configs=None, databases=None, **kwargs) -> list[CheckMessage]:
    """Warn about `@group` members naming no Django group: such roles have no group members."""
    if not databases:
        return []
    from django.contrib.auth.models import Group
    from django.db import connection

    # `migrate` runs database checks before it creates the tables.
    if Group._meta.db_table not in connection.introspection.table_names():
        return []

    from accounts.policy import get_policy

    policy = get_policy()
    wanted = {group for role in policy.roles.values() for group in role.groups}
    existing = set(Group.objects.filter(name__in=wanted).values_list("name", flat=True))
    return [
        Warning(
            f"policy file {policy.path}: group {group!r} does not exist; "
            "its role has no members through it",
            hint="Create the group in the admin, or fix the policy file.",
            id="accounts.W001",
        )
        for group in sorted(wanted - existing)
    ]

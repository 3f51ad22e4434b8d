"""One permission class: the view names its action, the policy decides (compat §1.3)."""

from typing import TYPE_CHECKING, cast

from django.db.models import Q
from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.constants import ANONYMOUS_ROLE
from accounts.identity import Identity
from accounts.models import Role
from accounts.policy import get_policy

if TYPE_CHECKING:
    from rest_framework.views import APIView


class PolicyPermission(BasePermission):
    """Grant a request when the anonymous role or a user role allows `view.permission_action`.

    A view without `permission_action` is public (upstream: /version, /instances.json).
    """

    def has_permission(self, request: Request, view: "APIView") -> bool:
        action = getattr(view, "permission_action", None)
        if action is None:
            return True
        # The authentication and DRF's UNAUTHENTICATED_USER make every user an Identity.
        identity = cast(Identity, request.user)
        if is_allowed(identity, action):
            return True
        if identity.is_anonymous:
            raise exceptions.PermissionDenied(
                f"anonymous role is not allowed to perform action {action}"
            )
        raise exceptions.PermissionDenied(
            f"user {identity.username} is not allowed to perform action {action}"
        )


def is_allowed(identity: Identity, action: str) -> bool:
    """Whether *identity* may perform *action*: policy file first, then admin roles."""
    policy = get_policy()
    if action in policy.anonymous_actions:
        return True
    groups = identity.group_names if identity.is_authenticated and policy.uses_groups else None
    if policy.allows(action, identity.username, groups or frozenset()):
        return True
    return admin_roles_allow(identity, action, policy.roles_of(identity.username, groups))


def admin_roles_allow(identity: Identity, action: str, file_roles: frozenset[str]) -> bool:
    """Whether a Role row (maintained in the admin) grants *action* to *identity*.

    A row applies to its own members and to the holders of the policy-file
    role of the same name.
    """
    holders = Q(name=ANONYMOUS_ROLE) | Q(name__in=file_roles)
    if identity.is_authenticated:
        holders |= Q(users__contains=[identity.username]) | Q(
            groups__user__username=identity.username, groups__user__is_active=True
        )
    return Role.objects.filter(holders, actions__contains=[action]).exists()

"""One permission class: the view names its actions per method, the policy decides (compat §1.3)."""

from collections.abc import Mapping
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
    """Grant a request when the anonymous role or a user role allows the action the view
    declares for its method in `view.permission_actions`.

    A view without `permission_actions` is public (upstream: /version, /instances.json).
    """

    def has_permission(self, request: Request, view: "APIView") -> bool:
        action = required_action(getattr(view, "permission_actions", {}), request.method or "")
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


def required_action(actions: Mapping[str, str], method: str) -> str | None:
    """The action a request with *method* needs, from a view's `permission_actions`.

    HEAD needs what GET needs. A method the view does not map (OPTIONS, or one
    it does not serve, answered 405 only after this check as upstream does)
    needs the view's first action, so that the policy answers before the
    method is looked at. None when the view is public.
    """
    if not actions:
        return None
    if method in actions:
        return actions[method]
    if method == "HEAD" and "GET" in actions:
        return actions["GET"]
    return next(iter(actions.values()))


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

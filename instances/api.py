"""The base of every per-instance API view: it looks the instance up, so it lives with it."""

from collections.abc import Mapping

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.views import APIView

from instances.models import Instance
from instances.selectors import get_instance


class InstanceAPIView(APIView):
    """An API view under `/{instance}/` (or under `/` in mono-instance mode).

    The instance is looked up before authentication, because tokens are
    verified with the instance key; an unknown instance is reported only after
    the permission check, in the order upstream clients observe (compat §1.3).

    `permission_actions` maps each HTTP method the view serves to the policy
    action it requires (`accounts.permissions.PolicyPermission` reads it); an
    empty mapping makes the view public.
    """

    permission_actions: Mapping[str, str] = {}
    instance: Instance

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        # A misspelt method would silently fall back to the view's first action.
        for method in cls.permission_actions:
            if method != method.upper() or method.lower() not in cls.http_method_names:
                raise ImproperlyConfigured(
                    f"{cls.__name__}.permission_actions: {method!r} is not an HTTP method name"
                )

    def initial(self, request: Request, *args, **kwargs) -> None:
        instance_id = kwargs.get("instance") or settings.FATBUILDR_INSTANCE or ""
        instance = get_instance(instance_id)
        # For the authentication (accounts/authentication.py), which needs the instance key;
        # DRF's Request takes attributes of its users, its type does not declare them.
        request.fatbuildr_instance_id = instance_id  # type: ignore[attr-defined]
        request.fatbuildr_instance = instance  # type: ignore[attr-defined]
        super().initial(request, *args, **kwargs)
        if instance is None:
            raise exceptions.NotFound(f"instance {instance_id} not found")
        self.instance = instance

"""The base of every per-instance API view."""

from django.conf import settings
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.views import APIView

from registry.models import Instance
from registry.selectors import get_instance


class InstanceAPIView(APIView):
    """An API view under `/{instance}/` (or under `/` in mono-instance mode).

    The instance is looked up before authentication, because tokens are
    verified with the instance key; an unknown instance is reported only after
    the permission check, in the order upstream clients observe (compat §1.3).
    """

    permission_action: str | None = None
    instance: Instance

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

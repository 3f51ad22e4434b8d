"""Bearer token authentication against the instance named in the URL (compat §1.3)."""

from django.contrib.auth import get_user_model
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework_simplejwt.exceptions import ExpiredTokenError, TokenError

from accounts.identity import Identity
from accounts.tokens import InstanceToken

BEARER_PREFIX = "Bearer "


class InstanceTokenAuthentication(BaseAuthentication):
    """Authenticate `Authorization: Bearer <jwt>` with the key of the requested instance.

    No header: anonymous. Any bad header or token: 403 (never 401, which
    upstream clients read as success). A token sent to an unknown instance:
    404, as upstream does when the instance key is missing.
    """

    def authenticate(self, request: Request) -> tuple[Identity, InstanceToken] | None:
        header = request.META.get("HTTP_AUTHORIZATION")
        if header is None:
            return None
        if not header.startswith(BEARER_PREFIX):
            raise exceptions.AuthenticationFailed("No valid token provided")
        instance = getattr(request, "fatbuildr_instance", None)
        if instance is None:
            instance_id = getattr(request, "fatbuildr_instance_id", "")
            raise exceptions.NotFound(
                f"unable to authenticate with JWT token against {instance_id} instance"
            )
        raw_token = header[len(BEARER_PREFIX) :].strip()
        try:
            token = InstanceToken(raw_token, key=instance.token_key)
        except ExpiredTokenError as error:
            raise exceptions.AuthenticationFailed("token is expired") from error
        except TokenError as error:
            raise exceptions.AuthenticationFailed("token is invalid") from error
        if is_disabled(token.username):
            raise exceptions.AuthenticationFailed(f"user {token.username} is disabled")
        return Identity(username=token.username), token

    def authenticate_header(self, request: Request) -> None:
        # No WWW-Authenticate challenge: refusals are 403 (compat §2.3).
        return None


def is_disabled(username: str) -> bool:
    """Whether a Django account of that name exists and is deactivated.

    Token subjects need no account, but deactivating an account in the admin
    revokes every token issued for it at once.
    """
    return get_user_model().objects.filter(username=username, is_active=False).exists()

"""API tokens: upstream-compatible JWTs signed with each instance's own key.

Upstream fatbuildrd issues HS256 tokens with only `iat`, `exp`, `aud` and
`sub`, keyed by a per-instance secret. simplejwt's Token supplies decoding and
expiry checks; this subclass swaps in the instance key and relaxes the
`token_type`/`jti` requirements that upstream tokens cannot meet.
"""

from datetime import timedelta

from django.conf import settings
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import Token

from registry.models import Instance


class InstanceToken(Token):
    """A bearer token of one instance: HS256 (configurable), audience, subject = user name."""

    token_type = "access"
    lifetime = timedelta(days=30)

    def __init__(self, token: str | bytes | None = None, *, key: str, verify: bool = True):
        self._token_backend = TokenBackend(
            settings.FATBUILDR_TOKEN_ALGORITHM,
            signing_key=key,
            audience=settings.FATBUILDR_TOKEN_AUDIENCE,
        )
        super().__init__(token, verify=verify)  # type: ignore[arg-type]

    def verify(self) -> None:
        self.check_exp()
        if not isinstance(self.payload.get("sub"), str) or not self.payload["sub"]:
            raise TokenError("Token has no subject")

    @property
    def username(self) -> str:
        return self.payload["sub"]


def generate_token(*, instance: Instance, username: str, duration_days: int | None = None) -> str:
    """A signed token for *username* on *instance*, with upstream claims only."""
    days = settings.FATBUILDR_TOKEN_DURATION_DAYS if duration_days is None else duration_days
    token = InstanceToken(key=instance.token_key)
    token.set_exp(lifetime=timedelta(days=days))
    # Upstream tokens carry no token_type and no jti; keep ours identical.
    del token["token_type"]
    del token["jti"]
    token["sub"] = username
    return str(token)

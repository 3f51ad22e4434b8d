"""API tokens: upstream-compatible JWTs signed with each instance's own key.

Upstream fatbuildrd issues HS256 tokens with only `iat`, `exp`, `aud` and
`sub`, keyed by a per-instance secret. simplejwt's Token supplies decoding and
expiry checks; this subclass swaps in the instance key and relaxes the
`token_type`/`jti` requirements that upstream tokens cannot meet.

Tokens come from anyone: whatever the bytes, parsing one either succeeds with
claims of the types upstream issues or raises TokenError. A token longer than
MAX_TOKEN_LENGTH is refused undecoded; what the JSON and JWT decoding can still
raise on hostile input (RecursionError on deeply nested JSON, ValueError,
OverflowError and TypeError on claims of the wrong type or out of range) is a
TokenError too.
"""

from datetime import timedelta

from django.conf import settings
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import Token

from fatbuildr_site.text import is_storable
from instances.models import Instance

# Upstream tokens are about 200 characters long.
MAX_TOKEN_LENGTH = 8 * 1024
# The longest Django user name, which a subject may be matched against.
MAX_SUBJECT_LENGTH = 150
# Time claims are seconds since the epoch, before the year 10000 (Python datetimes end there).
MAX_TIMESTAMP = 253402300799
# What decoding raises on hostile JSON or claims, besides simplejwt's own TokenError.
DECODING_ERRORS = (RecursionError, ValueError, OverflowError, TypeError)


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
        if token is not None and len(token) > MAX_TOKEN_LENGTH:
            raise TokenError("Token is invalid")
        try:
            super().__init__(token, verify=verify)  # type: ignore[arg-type]
        except DECODING_ERRORS as error:
            raise TokenError("Token is invalid") from error

    def verify(self) -> None:
        for claim in ("iat", "exp"):
            if claim in self.payload and not is_timestamp(self.payload[claim]):
                raise TokenError(f"Token claim {claim} is not a time")
        self.check_exp()
        if not isinstance(self.payload.get("aud"), str):
            raise TokenError("Token audience is not a string")
        if not is_valid_subject(self.payload.get("sub")):
            raise TokenError("Token has no valid subject")

    @property
    def username(self) -> str:
        return self.payload["sub"]


def is_timestamp(value: object) -> bool:
    """Whether a time claim is a number of seconds a datetime can hold (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return 0 <= value <= MAX_TIMESTAMP  # False for NaN and the infinities too.


def is_valid_subject(value: object) -> bool:
    """Whether a token subject is a user name the server can look up and store."""
    return isinstance(value, str) and 0 < len(value) <= MAX_SUBJECT_LENGTH and is_storable(value)


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

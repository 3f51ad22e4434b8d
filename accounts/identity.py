"""Who is asking: the user name carried by a token, or nobody."""

from dataclasses import dataclass, field
from functools import cached_property

from django.contrib.auth.models import Group


@dataclass
class Identity:
    """The identity behind a request; `username` is None for anonymous requests.

    Token subjects need no Django account: upstream tokens name Unix users.
    A Django user of the same name brings its groups, used by `@group` members.
    """

    username: str | None = None
    is_active: bool = field(default=True, init=False)

    @property
    def is_authenticated(self) -> bool:
        return self.username is not None

    @property
    def is_anonymous(self) -> bool:
        return self.username is None

    @cached_property
    def group_names(self) -> frozenset[str]:
        """Names of the Django groups of the user of that name (one query, cached)."""
        if self.username is None:
            return frozenset()
        names = Group.objects.filter(user__username=self.username, user__is_active=True)
        return frozenset(names.values_list("name", flat=True))

    def __str__(self) -> str:
        return self.username or "anonymous"


def anonymous_identity() -> Identity:
    """DRF UNAUTHENTICATED_USER factory."""
    return Identity()

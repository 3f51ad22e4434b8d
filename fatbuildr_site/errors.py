"""Domain errors: what services and selectors raise when they refuse a request.

They carry a message for the client and no HTTP status: the one exception
handler (`fatbuildr_site.exceptions`) maps each kind to its status. Apps
subclass the kind that fits (canceling a finished task is a conflict, an
unknown registry distribution is not found), so the code that refuses never
knows it serves HTTP, and management commands report the same errors.
"""


class DomainError(Exception):
    """A refusal whose message is meant for the client."""


class NotFoundError(DomainError):
    """What the request names does not exist (404)."""


class InvalidError(DomainError):
    """The request is malformed, or names something that cannot be done (400)."""


class ConflictError(DomainError):
    """The request does not fit the current state of what it names (409)."""

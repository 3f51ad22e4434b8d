"""Middleware of the API: refusals that must happen before any view runs."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin

from fatbuildr_site.exceptions import error_response, not_found
from fatbuildr_site.text import is_storable

INVALID = "holds a NUL or invalid character"


class UnstorableInputMiddleware(MiddlewareMixin):
    """Answer URL arguments and query parameters that PostgreSQL cannot store with an Error
    object, so that they never reach a query (where they would be a 500).

    It runs once the URL is resolved, so an unknown route is still the 404 of any unknown
    path, and it never reads the body, so the policy still refuses a caller before an
    upload is read. A URL argument holding such a character names nothing that can exist:
    404, the answer of an unknown path. A query parameter holding one is malformed: 400.

    A view may list in `self_checked_url_arguments` the URL arguments it refuses itself
    without sending them to the database (the registry files answer every impossible path
    with the 404 of a missing file).
    """

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable,
        view_args: tuple,
        view_kwargs: dict,
    ) -> HttpResponse | None:
        view_class = getattr(view_func, "view_class", None)
        self_checked: frozenset[str] = getattr(
            view_class, "self_checked_url_arguments", frozenset()
        )
        arguments = [
            *view_args,
            *(value for name, value in view_kwargs.items() if name not in self_checked),
        ]
        if not all(is_storable(value) for value in arguments if isinstance(value, str)):
            return not_found(request)
        for name, values in request.GET.lists():
            if not is_storable(name):
                return error_response(f"A query parameter name {INVALID}", 400)
            if not all(is_storable(value) for value in values):
                return error_response(f"Query parameter {name} {INVALID}", 400)
        return None

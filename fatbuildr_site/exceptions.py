"""One place that turns every API error into the Error object `{"error": "..."}`.

Upstream clients read `response.json()["error"]` on 403 and 404 and crash on
anything else, and they treat 401 as a success, so authentication failures are
always answered with 403 (compat §2.3).

Services raise domain errors (`fatbuildr_site.errors`), which carry no HTTP
status; `DOMAIN_ERROR_STATUS` maps each kind to its status here, and the
views never translate them.
"""

from typing import Any

from django.http import HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from fatbuildr_site import errors

# The status of each kind of domain error; a subclass gets the status of its nearest kind.
DOMAIN_ERROR_STATUS: dict[type[errors.DomainError], int] = {
    errors.NotFoundError: status.HTTP_404_NOT_FOUND,
    errors.InvalidError: status.HTTP_400_BAD_REQUEST,
    errors.ConflictError: status.HTTP_409_CONFLICT,
}


def flatten_detail(detail: Any) -> str:
    """Reduce a DRF error detail (string, list or mapping) to one readable sentence."""
    if isinstance(detail, dict):
        parts = []
        for field, value in detail.items():
            text = flatten_detail(value)
            parts.append(text if field == "non_field_errors" else f"{field}: {text}")
        return "; ".join(parts)
    if isinstance(detail, (list, tuple)):
        return "; ".join(flatten_detail(item) for item in detail)
    return str(detail)


def domain_error_status(error: errors.DomainError) -> int:
    """The HTTP status of a domain error, from the nearest kind in its class hierarchy."""
    for kind in type(error).__mro__:
        if kind in DOMAIN_ERROR_STATUS:
            return DOMAIN_ERROR_STATUS[kind]
    # A DomainError outside the known kinds is a programming error, not the client's.
    raise TypeError(f"no HTTP status for domain error {type(error).__name__}") from error


def as_api_exception(error: errors.DomainError) -> exceptions.APIException:
    """The DRF exception answering a domain error: its message, the status of its kind."""
    api_error = exceptions.APIException(str(error))
    api_error.status_code = domain_error_status(error)
    return api_error


def error_object_handler(exc: Exception, context: dict) -> Response | None:
    """DRF exception handler answering with the Error object."""
    if isinstance(exc, errors.DomainError):
        exc = as_api_exception(exc)
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        exc.status_code = status.HTTP_403_FORBIDDEN
    response = exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    detail = data.get("detail", data) if isinstance(data, dict) else data
    response.data = {"error": flatten_detail(detail)}
    if response.status_code == status.HTTP_401_UNAUTHORIZED:
        response.status_code = status.HTTP_403_FORBIDDEN
    response.headers.pop("WWW-Authenticate", None)
    return response


def error_response(message: str, status_code: int) -> JsonResponse:
    """An Error object answer for plain Django views."""
    return JsonResponse({"error": message}, status=status_code)


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """handler404: unknown paths answer the Error object too."""
    return error_response(f"{request.path} not found", 404)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """handler400."""
    return error_response("bad request", 400)


def forbidden(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """handler403."""
    return error_response("Access forbidden", 403)


def server_error(request: HttpRequest) -> JsonResponse:
    """handler500: no traceback leaks to clients; fatbuildrctl ignores the body anyway."""
    return error_response("Remote server internal error", 500)

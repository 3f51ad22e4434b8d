"""Content negotiation: every route has one representation, whatever `Accept` says."""

from collections.abc import Iterable

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class FirstRendererNegotiation(DefaultContentNegotiation):
    """Render with the view's first renderer, never answer 406 (parsers are chosen as usual).

    Upstream (Flask) ignores `Accept`: `Accept: application/pgp-keys` on
    keyring.asc, or a browser's header on a JSON route, gets the resource.
    """

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        first = next(iter(renderers))
        return first, first.media_type

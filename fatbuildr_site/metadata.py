"""What `OPTIONS` answers on every API view."""

from typing import TYPE_CHECKING, Any

from rest_framework.metadata import SimpleMetadata
from rest_framework.request import Request

if TYPE_CHECKING:  # rest_framework.views reads the settings that name this module.
    from rest_framework.views import APIView


class NoDescriptionMetadata(SimpleMetadata):
    """DRF's metadata without the `description` it takes from the view docstring, which is
    written for the developers of this server, not for its clients."""

    def determine_metadata(self, request: Request, view: "APIView") -> dict[str, Any]:
        metadata = super().determine_metadata(request, view)
        metadata.pop("description", None)
        return metadata

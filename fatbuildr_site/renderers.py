"""JSON rendering in the shape upstream Flask `jsonify` produces."""

import json
from typing import Any

from rest_framework.renderers import JSONRenderer


class CompactJSONRenderer(JSONRenderer):
    """Compact JSON with sorted keys and a trailing newline, like upstream fatbuildrweb."""

    charset = None

    def render(self, data: Any, accepted_media_type=None, renderer_context=None) -> bytes:
        return render_json(data)


def render_json(data: Any) -> bytes:
    """Serialize *data* exactly as every JSON endpoint answers."""
    return (
        json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    ).encode()

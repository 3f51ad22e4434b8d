"""Text that PostgreSQL cannot store, defined once for every input boundary.

A `text` or `varchar` value cannot hold NUL (psycopg refuses it), and a lone
surrogate cannot be encoded in UTF-8 at all: either one reaching a query is a
500. URL arguments and query values are checked by
`fatbuildr_site.middleware.UnstorableInputMiddleware`, build form fields by
`builds.services`, token claims by `accounts.tokens`, YAML scalars by
`fatbuildr_site.yaml_loader`; all of them with this predicate.
"""

import re

UNSTORABLE_CHARACTERS = re.compile("[\x00\ud800-\udfff]")


def is_storable(text: str) -> bool:
    """Whether *text* holds no character that PostgreSQL text refuses."""
    return UNSTORABLE_CHARACTERS.search(text) is None

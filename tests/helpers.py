"""Assertions and set-up steps shared by the test modules."""

from io import StringIO

from django.core.management import call_command

from accounts.policy import _load


def assert_error(
    response, status: int | None = None, *fragments: str, exactly: str | None = None
) -> None:
    """An Error object answer: JSON `{"error": str}` and nothing else, with *status* if
    given, an error text that holds each of *fragments*, or is *exactly* this one."""
    if status is not None:
        assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response.content
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert isinstance(body["error"], str), body
    for fragment in fragments:
        assert fragment in body["error"], body
    if exactly is not None:
        assert body["error"] == exactly, body


def write_policy(settings, tmp_path, text: str) -> None:
    """Make *text* the policy file of the test, read afresh on the next request."""
    path = tmp_path / "policy.acl"
    path.write_text(text, encoding="utf-8")
    settings.FATBUILDR_POLICY = path
    _load.cache_clear()


def run_command(name: str, *args: str, **options) -> str:
    """What `manage.py name args...` prints on its standard output."""
    out = StringIO()
    call_command(name, *args, stdout=out, **options)
    return out.getvalue()

"""The service answers its public endpoints."""

import pytest


def test_version_is_plain_text(anonymous_client, db):
    response = anonymous_client.get("/version")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content == b"Fatbuildr v2.1.0"


def test_default_instance_pipelines(anonymous_client, default_instance):
    response = anonymous_client.get("/default/pipelines/formats.json")
    assert response.status_code == 200
    assert set(response.json()) == {"deb", "rpm"}


@pytest.mark.parametrize(
    ("path", "accept", "status"),
    [
        ("/default/queue.json", "text/html", 200),
        # The default instance has no keyring until one is created.
        ("/default/keyring.asc", "application/pgp-keys", 404),
        ("/version", "application/xml", 200),
        ("/default/watch/c8c9935e-44c9-48de-a318-b6060c08b8c8.journal", "text/plain", 404),
    ],
)
def test_accept_header_never_gives_406(anonymous_client, default_instance, path, accept, status):
    response = anonymous_client.get(path, HTTP_ACCEPT=accept)
    assert response.status_code == status, response.content
    if status == 404:
        assert set(response.json()) == {"error"}

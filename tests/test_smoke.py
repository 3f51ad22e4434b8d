"""The service answers its public endpoints."""


def test_version_is_plain_text(anonymous_client, db):
    response = anonymous_client.get("/version")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content == b"Fatbuildr v2.1.0"


def test_default_instance_pipelines(anonymous_client, default_instance):
    response = anonymous_client.get("/default/pipelines/formats.json")
    assert response.status_code == 200
    assert set(response.json()) == {"deb", "rpm"}

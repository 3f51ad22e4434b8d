"""API tokens: upstream compatibility (compat §5) and the `tokens` management command."""

import base64
import json
import secrets
import time
from io import StringIO

import jwt
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from accounts.policy import _load

DAY = 86400

# Anonymous may not see tasks: a request succeeds only if the token authenticates alice.
POLICY = """
[roles]
anonymous
readers=alice

[anonymous]
actions=view-pipeline

[readers]
actions=view-task
"""


@pytest.fixture(autouse=True)
def restricted_policy(settings, tmp_path, multi_mode):
    path = tmp_path / "policy.acl"
    path.write_text(POLICY, encoding="utf-8")
    settings.FATBUILDR_POLICY = path
    _load.cache_clear()
    yield
    _load.cache_clear()


def get_running(token: str | None):
    client = APIClient()
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get("/default/running.json")


def upstream_token(key: str | bytes, sub: str = "alice", days: int = 30) -> str:
    """A token as upstream `TokensManager.generate` mints it: PyJWT, four claims."""
    now = int(time.time())
    return jwt.encode(
        {"iat": now, "exp": now + days * DAY, "aud": "fatbuildr", "sub": sub},
        key,
        algorithm="HS256",
    )


def segments(token: str) -> tuple[dict, dict]:
    header, payload, _ = token.split(".")

    def decode(part: str) -> dict:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

    return decode(header), decode(payload)


def run_tokens(*args: str) -> str:
    out = StringIO()
    call_command("tokens", *args, stdout=out)
    return out.getvalue()


# --- Upstream tokens -----------------------------------------------------------------------


def test_policy_refuses_anonymous(default_instance):
    # The premise of the tests below: without a valid token for alice, 403.
    response = get_running(None)
    assert response.status_code == 403
    assert response.json() == {"error": "anonymous role is not allowed to perform action view-task"}


def test_upstream_minted_token_is_accepted(default_instance):
    token = upstream_token(default_instance.token_key)
    header, payload = segments(token)
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert "token_type" not in payload and "jti" not in payload
    response = get_running(token)
    assert response.status_code == 200, response.content
    assert response.json() is None


def test_upstream_token_of_another_user_is_that_user(default_instance):
    response = get_running(upstream_token(default_instance.token_key, sub="bob"))
    assert response.status_code == 403
    assert response.json() == {"error": "user bob is not allowed to perform action view-task"}


def test_token_of_another_instance_is_invalid(default_instance):
    from tests.factories import InstanceFactory

    other = InstanceFactory(id="other")
    assert other.token_key != default_instance.token_key
    response = get_running(upstream_token(other.token_key))
    assert response.status_code == 403
    assert response.json() == {"error": "token is invalid"}


# --- generate_token ------------------------------------------------------------------------


def test_generated_token_has_exactly_the_upstream_claims(default_instance, token_for):
    before = int(time.time())
    token = token_for(default_instance, "alice")
    after = int(time.time())
    header, payload = segments(token)
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert set(payload) == {"iat", "exp", "aud", "sub"}
    assert payload["aud"] == "fatbuildr"
    assert payload["sub"] == "alice"
    assert isinstance(payload["iat"], int) and isinstance(payload["exp"], int)
    assert before <= payload["iat"] <= after
    assert payload["exp"] - payload["iat"] == 30 * DAY
    # Exactly what upstream `TokensManager.decode` would accept.
    decoded = jwt.decode(
        token, default_instance.token_key, audience="fatbuildr", algorithms=["HS256"]
    )
    assert decoded == payload


def test_generated_token_authenticates(default_instance, token_for):
    response = get_running(token_for(default_instance, "alice"))
    assert response.status_code == 200, response.content


def test_generated_token_follows_the_duration_setting(default_instance, token_for, settings):
    settings.FATBUILDR_TOKEN_DURATION_DAYS = 7
    _, payload = segments(token_for(default_instance, "alice"))
    assert payload["exp"] - payload["iat"] == 7 * DAY


# --- manage.py tokens generate -------------------------------------------------------------


def test_tokens_generate_prints_a_working_token(default_instance):
    output = run_tokens("generate", "--instance", "default", "--user", "alice", "--duration", "2")
    token = output.strip()
    assert output.count("\n") <= 1 and token.count(".") == 2
    header, payload = segments(token)
    assert header["alg"] == "HS256"
    assert payload["sub"] == "alice"
    assert payload["exp"] - payload["iat"] == 2 * DAY
    assert abs(payload["exp"] - (time.time() + 2 * DAY)) < 60
    response = get_running(token)
    assert response.status_code == 200, response.content


def test_tokens_generate_unknown_instance(default_instance):
    with pytest.raises(CommandError, match="instance nope not found"):
        run_tokens("generate", "--instance", "nope", "--user", "alice")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--user", "alice", "--duration", "0"), "--duration"),
        (("--user", "alice", "--duration", "-3"), "--duration"),
        (("--user", "  "), "--user"),
    ],
)
def test_tokens_generate_refuses_bad_arguments(default_instance, args, message):
    with pytest.raises(CommandError, match=message):
        run_tokens("generate", "--instance", "default", *args)


# --- manage.py tokens import-key -----------------------------------------------------------


def test_import_key_accepts_upstream_tokens_and_refuses_old_ones(default_instance, tmp_path):
    old_token = upstream_token(default_instance.token_key)
    assert get_running(old_token).status_code == 200

    key = secrets.token_hex(32)  # upstream key file: 64 hex characters, used as text
    key_file = tmp_path / "key"
    key_file.write_text(key + "\n", encoding="ascii")
    output = run_tokens("import-key", "--instance", "default", str(key_file))
    assert "default" in output

    default_instance.refresh_from_db()
    assert default_instance.token_key == key

    response = get_running(upstream_token(key))
    assert response.status_code == 200, response.content

    response = get_running(old_token)
    assert response.status_code == 403
    assert response.json() == {"error": "token is invalid"}

    # The key is the text itself, not the 32 bytes it spells in hex.
    response = get_running(upstream_token(bytes.fromhex(key)))
    assert response.status_code == 403
    assert response.json() == {"error": "token is invalid"}


def test_import_key_refuses_a_short_key(default_instance, tmp_path):
    before = default_instance.token_key
    key_file = tmp_path / "key"
    key_file.write_text("0123456789abcdef\n", encoding="ascii")
    with pytest.raises(CommandError, match="at least 32"):
        run_tokens("import-key", "--instance", "default", str(key_file))
    default_instance.refresh_from_db()
    assert default_instance.token_key == before


def test_import_key_refuses_a_missing_file(default_instance, tmp_path):
    before = default_instance.token_key
    with pytest.raises(CommandError, match="cannot read key file"):
        run_tokens("import-key", "--instance", "default", str(tmp_path / "absent"))
    default_instance.refresh_from_db()
    assert default_instance.token_key == before


def test_import_key_unknown_instance(default_instance, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(secrets.token_hex(32), encoding="ascii")
    with pytest.raises(CommandError, match="instance nope not found"):
        run_tokens("import-key", "--instance", "nope", str(key_file))


def test_tokens_of_a_deactivated_account_are_refused(default_instance, client_for):
    user = User.objects.create_user("alice")
    client = client_for(default_instance, "alice")
    first = client.get("/default/queue.json")
    assert first.status_code == 200, first.content
    user.is_active = False
    user.save()
    response = client.get("/default/queue.json")
    assert response.status_code == 403
    assert response.json() == {"error": "user alice is disabled"}


def test_rotate_key_revokes_every_token(default_instance, client_for):
    old_client = client_for(default_instance, "alice")
    assert old_client.get("/default/queue.json").status_code == 200
    out = StringIO()
    call_command("tokens", "rotate-key", "--instance", "default", stdout=out)
    assert "replaced" in out.getvalue()
    default_instance.refresh_from_db()
    response = old_client.get("/default/queue.json")
    assert response.status_code == 403
    assert response.json() == {"error": "token is invalid"}
    assert client_for(default_instance, "alice").get("/default/queue.json").status_code == 200

"""Hostile input never reaches a 500 (issue 11): NUL bytes, nested JSON and YAML, claims of
the wrong type, and a property-based test driving every route with generated values."""

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import re
import time
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from rest_framework_simplejwt.exceptions import TokenError

from accounts.constants import Action
from accounts.tokens import MAX_TOKEN_LENGTH, InstanceToken
from builds.api.serializers import BuildSubmissionSerializer
from builds.definition import MAX_DEFINITION_SIZE, DefinitionError, parse_definition
from fatbuildr_site.yaml_loader import MAX_SIZE
from instances.instance_files import InstanceFileError, parse_instance_file
from tests import factories
from tests.helpers import assert_error

REPO_ROOT = Path(__file__).resolve().parent.parent
TASK_ID = "0b5f1b8e-5a86-4d2a-9a63-6f1e0c7b4a11"
DEFAULT_YAML = (REPO_ROOT / "instance-files" / "default.yml").read_text()

# Moderate, so that the whole module runs in seconds; no example database on disk.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Characters that break naive code: NUL and controls, path and query syntax, escapes,
# non-ASCII, a BOM, a right-to-left override, a non-character, an astral emoji.
HOSTILE_CHARACTERS = list("\x00\x01\x1b\x7f\n\r\t %./\\?#&=;:'\"<>{}[]*~é€\ufeff\u202e\uffff😀")
hostile_characters = st.sampled_from(HOSTILE_CHARACTERS) | st.characters(codec="utf-8")
hostile_text = st.text(hostile_characters, max_size=40) | st.sampled_from(
    ["\x00", "%00", "..", "../..", "a" * 2000, "été", "-1", "0" * 400, "1e400", "NaN"]
)
numbers = st.integers(-(10**100), 10**100)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(key: str, payload: bytes, header: bytes = b'{"alg":"HS256","typ":"JWT"}') -> str:
    """A token with exactly these header and payload bytes, signed with *key* as the server
    signs (HS256, the key's text as the secret): the claims get past the signature."""
    message = f"{b64(header)}.{b64(payload)}"
    digest = hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
    return f"{message}.{b64(digest)}"


def claims(**overrides: Any) -> bytes:
    now = int(time.time())
    payload = {"iat": now, "exp": now + 3600, "aud": "fatbuildr", "sub": "alice", **overrides}
    return json.dumps(payload).encode()  # Python writes Infinity and NaN, as a forger may.


@pytest.fixture
def registry_rows(default_instance, data_dir):
    """deb bookworm/main with a source and a binary, and a pending task: data on every route."""
    factories.source_and_binary(default_instance)
    return factories.TaskFactory(id=TASK_ID, instance=default_instance)


# --- NUL and other characters PostgreSQL refuses ------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/%00/instance.json",
        "/default%00/instance.json",
        "/default/registry/%00.json",
        "/default/registry/deb/%00.json",
        "/default/registry/deb/bookworm/%00.json",
        "/default/registry/deb/bookworm/main/x86_64/%00.json",
        "/default/registry/deb/bookworm/main/%00/fatbuildr.json",
        "/default/tasks/%00.json",
        "/default/watch/%00.journal",
        "/%00/deb/dists/",
    ],
)
def test_nul_in_a_path_segment_is_404(registry_rows, multi_mode, url):
    response = APIClient().get(url)
    assert_error(response, 404, exactly=f"{response.wsgi_request.path} not found")


def test_nul_in_a_registry_file_path_is_the_404_of_a_missing_file(registry_rows, multi_mode):
    response = APIClient().get("/default/deb/dists/%00/Release")
    assert_error(response, 404, exactly="File not found in registry")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/default/search.json?artifact=%00", "Query parameter artifact"),
        ("/default/search.json?artifact=fat&artifact=%00", "Query parameter artifact"),
        ("/default/history.json?artifact=a%00b", "Query parameter artifact"),
        ("/default/pipelines/formats.json?format=%00", "Query parameter format"),
        ("/default/instance.json?%00=1", "A query parameter name"),
    ],
)
def test_nul_in_a_query_value_is_400(registry_rows, multi_mode, url, message):
    response = APIClient().get(url)
    assert_error(response, 400, exactly=f"{message} holds a NUL or invalid character")


def test_nul_in_a_query_of_an_unknown_route_is_still_404(registry_rows, multi_mode):
    assert_error(APIClient().get("/default/nowhere.json?artifact=%00"), 404)


def test_nul_in_the_query_of_a_refused_build_is_answered_before_any_body_is_read(
    registry_rows, multi_mode, monkeypatch
):
    def must_not_run(*args, **kwargs):
        raise AssertionError("the body was parsed")

    monkeypatch.setattr("rest_framework.parsers.MultiPartParser.parse", must_not_run)
    response = APIClient().post("/default/build?x=%00", {"format": "deb"}, format="multipart")
    assert_error(response, 400)
    response = APIClient().post("/default/build", {"format": "\x00"}, format="multipart")
    assert_error(response, 403, exactly="anonymous role is not allowed to perform action build")


def test_nul_in_the_object_id_of_an_admin_page_is_404(default_instance, multi_mode):
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.org", "-"))
    response = client.get("/admin/instances/instance/%00/change/")
    assert_error(response, 404)


def test_nul_in_mono_instance_mode(registry_rows, mono_mode):
    assert_error(APIClient().get("/registry/deb/%00.json"), 404)
    assert_error(APIClient().get("/search.json?artifact=%00"), 400)


# --- Tokens --------------------------------------------------------------------------------


def nested_header(instance) -> str:
    return f"{b64(b'[' * 5000)}.{b64(claims())}.c2lnbmF0dXJl"


def nested_payload(instance) -> str:
    # Under MAX_TOKEN_LENGTH once encoded: the JSON decoding itself meets the nesting.
    return signed(instance.token_key, b"[" * 5000)


BAD_CLAIMS = {
    "exp 1e20": claims(exp=1e20),
    "exp 10**30": claims(exp=10**30),
    "exp Infinity": claims(exp=float("inf")),
    "exp -Infinity": claims(exp=float("-inf")),
    "exp NaN": claims(exp=float("nan")),
    "exp string": claims(exp="tomorrow"),
    "exp list": claims(exp=[1]),
    "iat Infinity": claims(iat=float("inf")),
    "iat list": claims(iat=[]),
    "sub number": claims(sub=42),
    "sub list": claims(sub=["alice"]),
    "sub object": claims(sub={"name": "alice"}),
    "sub NUL": claims(sub="ali\x00ce"),
    "sub lone surrogate": claims(sub="\ud800"),
    "sub too long": claims(sub="a" * 151),
    "aud list": claims(aud=["fatbuildr"]),
    "aud number": claims(aud=1),
    "payload list": b"[1, 2]",
    "payload string": b'"alice"',
    "payload not JSON": b"\xff\xfe",
}

TOKENS = {
    "nested header": nested_header,
    "nested payload": nested_payload,
    "nested claim": lambda i: signed(i.token_key, claims(sub=json.loads("[" * 200 + "]" * 200))),
    "too long": lambda i: signed(i.token_key, claims(pad="x" * MAX_TOKEN_LENGTH)),
    "header not an object": lambda i: f"{b64(b'[]')}.{b64(claims())}.c2ln",
    "header alg list": lambda i: signed(i.token_key, claims(), b'{"alg":["HS256"]}'),
    "header alg object": lambda i: signed(i.token_key, claims(), b'{"alg":{"a":1}}'),
    "header b64 false": lambda i: signed(i.token_key, claims(), b'{"alg":"HS256","b64":false}'),
    "NUL": lambda i: "\x00",
    **{
        name: (lambda i, payload=payload: signed(i.token_key, payload))
        for name, payload in BAD_CLAIMS.items()
    },
}


@pytest.mark.parametrize("name", TOKENS)
def test_hostile_token_is_403_token_is_invalid(default_instance, multi_mode, name):
    token = TOKENS[name](default_instance)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    for url in ("/default/instance.json", "/default/deb/dists/", "/default/running.json"):
        assert_error(client.get(url), 403, exactly="token is invalid")


@pytest.mark.parametrize("name", TOKENS)
def test_token_parser_raises_token_error_only(default_instance, name):
    with pytest.raises(TokenError):
        InstanceToken(TOKENS[name](default_instance), key=default_instance.token_key)


def test_well_formed_claims_still_authenticate(default_instance, multi_mode):
    # The premise of the cases above: the same signing with sound claims is accepted.
    token = signed(default_instance.token_key, claims(sub="a" * 150, exp=253402300799))
    assert InstanceToken(token, key=default_instance.token_key).username == "a" * 150
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/default/instance.json").status_code == 200


@pytest.mark.parametrize("user", ["a" * 151, "ali\x00ce"])
def test_no_token_is_generated_for_a_subject_the_parser_refuses(default_instance, user):
    with pytest.raises(CommandError, match="--user must be at most 150 characters"):
        call_command("tokens", "generate", "--instance", "default", "--user", user)


# --- YAML: definitions and instance files ------------------------------------------------

BILLION_LAUGHS = "\n".join(
    ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    + [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 10)]
)

HOSTILE_YAML = {
    "nested sequences": ("[" * 5000, "nested deeper than 32 levels"),
    "nested mappings": ("{a: " * 5000, "nested deeper than 32 levels"),
    "nested block sequences": ("- " * 100 + "x", "nested deeper than 32 levels"),
    "billion laughs": (BILLION_LAUGHS, "more than 100000 nodes"),
    "recursive alias": ("a: &a [*a]", "recursive alias"),
    "NUL escape": ('version: "1\\0"', "NUL or invalid character"),
    "surrogate escape": ('version: "\\ud800"', "NUL or invalid character"),
}


@pytest.mark.parametrize("name", HOSTILE_YAML)
def test_hostile_definition_is_a_definition_error(name):
    text, message = HOSTILE_YAML[name]
    with pytest.raises(DefinitionError, match=message):
        parse_definition(text, artifact="hello")


def test_oversized_definition_is_a_definition_error():
    with pytest.raises(DefinitionError, match=f"larger than {MAX_DEFINITION_SIZE} bytes"):
        parse_definition("version: 1\n" + "#" * MAX_DEFINITION_SIZE, artifact="hello")


@pytest.mark.parametrize("name", HOSTILE_YAML)
def test_hostile_instance_file_is_an_instance_file_error(tmp_path, name):
    text, message = HOSTILE_YAML[name]
    path = tmp_path / "default.yml"
    path.write_text(text)
    with pytest.raises(InstanceFileError, match=re.escape(message)) as error:
        parse_instance_file(path)
    assert str(path) in str(error.value)


def test_oversized_instance_file_is_an_instance_file_error(tmp_path):
    path = tmp_path / "default.yml"
    path.write_text(DEFAULT_YAML + "#" * MAX_SIZE)
    with pytest.raises(InstanceFileError, match=f"larger than {MAX_SIZE} bytes"):
        parse_instance_file(path)


def test_instance_file_not_in_utf8_is_an_instance_file_error(tmp_path):
    path = tmp_path / "default.yml"
    path.write_bytes(DEFAULT_YAML.encode() + b"\n# \xff\xfe\n")
    with pytest.raises(InstanceFileError, match="invalid YAML"):
        parse_instance_file(path)


def test_instances_load_reports_a_nested_file(db, tmp_path, sent):
    path = tmp_path / "nested.yml"
    path.write_text("[" * 5000)
    err = StringIO()
    with pytest.raises(CommandError, match="1 instance file"):
        call_command("instances", "load", str(path), stdout=StringIO(), stderr=err)
    assert f"{path}: refused: nested deeper than 32 levels" in err.getvalue()


# --- Tidy edges ----------------------------------------------------------------------------


def test_bad_host_header_logs_one_line(default_instance, multi_mode, caplog):
    with caplog.at_level(logging.ERROR, logger="django.security.DisallowedHost"):
        response = Client().get("/default/instance.json", HTTP_HOST="evil.example")
    assert_error(response, 400, exactly="bad request")
    records = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    assert len(records) == 1
    assert records[0].exc_info is None and records[0].exc_text is None
    assert "\n" not in logging.Formatter().format(records[0])


def test_options_does_not_expose_view_docstrings(registry_rows, multi_mode, client_with_role):
    builder = client_with_role(registry_rows.instance, Action.BUILD)
    for client, url in [
        (APIClient(), "/default/instance.json"),
        (APIClient(), "/default/registry/deb/bookworm/main/x86_64/fatbuildr.json"),
        (APIClient(), "/version"),
        (APIClient(), "/instances.json"),
        (builder, "/default/build"),
    ]:
        response = client.options(url)
        assert response.status_code == 200, response.content
        assert set(response.json()) == {"name", "parses", "renders"}, response.json()


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("/default/registry/deb/bookworm/main/x86_64/%C3%A9t%C3%A9.json", "Artifact été "),
        ("/default/registry/deb/bookworm/main/x86_64/été.json", "Artifact été "),
        ("/default/registry/deb/bookworm/d%C3%A9riv%C3%A9e.json", "Derivative dérivée "),
        ("/%C3%A9t%C3%A9/instance.json", "instance été not found"),
        ("/default/tasks/%E2%82%AC.json", "Unable to find task € on server"),
        ("/default/%E2%82%AC.json", "/default/€.json not found"),
    ],
)
def test_non_ascii_in_error_messages_comes_back_as_sent(registry_rows, multi_mode, url, fragment):
    response = APIClient().get(url)
    assert_error(response)
    assert fragment in response.json()["error"]


# --- Every route, generated values ---------------------------------------------------------


def route_patterns(patterns: list, prefix: str = "") -> list[tuple[str, str]]:
    """(name, full regex) of every route of a URL configuration, read from its resolver."""
    routes = []
    for pattern in patterns:
        regex = pattern.pattern.regex.pattern.removeprefix("^").removesuffix(r"\Z")
        regex = regex.removesuffix("$")
        if isinstance(pattern, URLResolver):
            routes += route_patterns(pattern.url_patterns, prefix + regex)
        elif isinstance(pattern, URLPattern):
            routes.append((pattern.name or pattern.lookup_str, prefix + regex))
    return routes


MODES = {"multi": "tests.urls_multi", "mono": "tests.urls_mono"}
ROUTES = {
    mode: route_patterns(get_resolver(urlconf).url_patterns) for mode, urlconf in MODES.items()
}
# GET and POST, which most routes take, more often than the others.
METHODS = ["GET", "GET", "GET", "POST", "POST", "POST", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"]
# URL arguments that name rows of `registry_rows`: drawn half of the time, so that requests
# get past the lookups into the code behind them.
KNOWN_ARGUMENTS = {
    "instance": "default",
    "fmt": "deb",
    "distribution": "bookworm",
    "derivative": "main",
    "architecture": "x86_64",
    "artifact": "fatbuildr",
    "task_id": TASK_ID,
}
# Query parameters the views read.
# The text fields of a build submission, in fatbuildrctl's order.
FORM_FIELDS = tuple(BuildSubmissionSerializer().fields)
KNOWN_PARAMETERS = ["artifact", "format", "distribution", "derivative", "environment"]
KNOWN_PARAMETERS += ["version", "name", "result", "page", "page_size", "next"]


def with_known_arguments(regex: str) -> str:
    """*regex* with each known URL argument matching its real value too."""
    for name, value in KNOWN_ARGUMENTS.items():
        regex = regex.replace(f"(?P<{name}>", f"(?P<{name}>{re.escape(value)}|")
    return regex


def test_every_route_is_driven():
    names = {mode: {name for name, _ in routes} for mode, routes in ROUTES.items()}
    api = {"build", "instance", "artifact", "search", "registry-file", "task-cancel", "watch"}
    assert api | {"version", "instances"} <= names["multi"]
    assert api | {"version"} <= names["mono"] and "instances" not in names["mono"]
    assert all(any(regex.startswith("admin/") for _, regex in ROUTES[mode]) for mode in MODES)


@st.composite
def hostile_requests(draw, mode: str) -> dict[str, Any]:
    """One request: a route's path with generated segments, query, form and credentials.

    The admin has many routes that all answer an anonymous caller alike: one request in
    five goes there."""
    admin = [route for route in ROUTES[mode] if route[1].startswith("admin/")]
    api = [route for route in ROUTES[mode] if route not in admin]
    _, regex = draw(st.sampled_from(admin if draw(st.integers(0, 4)) == 0 else api))
    path = draw(
        st.from_regex(with_known_arguments(regex), fullmatch=True, alphabet=hostile_characters)
    )
    keys = st.sampled_from(KNOWN_PARAMETERS) | hostile_text
    query = draw(st.lists(st.tuples(keys, hostile_text), max_size=3))
    method = draw(st.sampled_from(METHODS))
    fields = st.sampled_from(FORM_FIELDS) | hostile_text
    form = draw(st.dictionaries(fields, hostile_text, max_size=len(FORM_FIELDS)))
    # Two in three requests carry no credentials or sound ones, and get past authentication.
    credentials = st.sampled_from(["anonymous", "all actions"])
    if draw(st.integers(0, 2)) == 0:
        credentials = hostile_text.map(lambda text: "Bearer " + text) | st.sampled_from(
            ["Bearer", "Basic eA==", "Bearer a.b.c", "Bearer " + "[" * 9000]
        )
    return {
        "method": method,
        "url": "/" + quote(path, safe="/") + ("?" + urlencode(query) if query else ""),
        "form": form,
        "multipart": draw(st.booleans()),
        "credentials": draw(credentials),
    }


def send(request: dict[str, Any], token: str) -> Any:
    headers = {}
    if request["credentials"] == "all actions":
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    elif request["credentials"] != "anonymous":
        headers["HTTP_AUTHORIZATION"] = request["credentials"]
    body, content_type = b"", "application/octet-stream"
    if request["method"] in {"POST", "PUT", "PATCH"} and request["form"]:
        if request["multipart"]:
            body, content_type = encode_multipart(BOUNDARY, request["form"]), MULTIPART_CONTENT
        else:
            body = urlencode(request["form"]).encode()
            content_type = "application/x-www-form-urlencoded"
    return Client().generic(
        request["method"], request["url"], body, content_type=content_type, **headers
    )


@pytest.fixture(params=list(MODES))
def mode(request, settings, registry_rows, sent) -> str:
    settings.ROOT_URLCONF = MODES[request.param]
    settings.FATBUILDR_INSTANCE = "default" if request.param == "mono" else None
    return request.param


@pytest.fixture
def all_actions_token(default_instance, client_with_role, token_for) -> str:
    client_with_role(default_instance, *Action.values, username="fuzzer")
    return token_for(default_instance, "fuzzer")


@FUZZ
@given(data=st.data())
def test_no_route_answers_5xx_to_hostile_requests(mode, all_actions_token, data):
    request = data.draw(hostile_requests(mode))
    response = send(request, all_actions_token)
    assert response.status_code < 500, (request, response.status_code)
    is_admin = request["url"].startswith("/admin/")
    if response.status_code >= 400 and request["method"] != "HEAD" and not is_admin:
        if response["Content-Type"].startswith("text/html"):  # a web page: its error page
            assert f"({response.status_code})</p>" in response.content.decode()
        else:
            assert_error(response)


@FUZZ
@given(
    header=st.recursive(
        st.none() | st.booleans() | st.floats() | numbers | hostile_text,
        lambda children: st.lists(children, max_size=3)
        | st.dictionaries(hostile_text, children, max_size=3),
        max_leaves=8,
    ),
    payload=st.dictionaries(
        st.sampled_from(["iat", "exp", "aud", "sub", "nbf", "jti", "token_type"]),
        st.none() | st.booleans() | st.floats() | numbers | hostile_text | st.lists(hostile_text),
    ),
    raw=st.text(hostile_characters, max_size=200) | st.binary(max_size=200).map(b64),
)
def test_token_parser_never_raises_anything_but_token_error(default_instance, header, payload, raw):
    key = default_instance.token_key
    header_bytes = json.dumps({"alg": "HS256", "x": header}).encode()
    for token in (raw, signed(key, json.dumps(payload).encode(), header_bytes)):
        try:
            parsed = InstanceToken(token, key=key)
        except TokenError:
            continue
        assert isinstance(parsed.username, str) and "\x00" not in parsed.username


yaml_documents = st.recursive(
    st.none() | st.booleans() | st.floats() | numbers | hostile_text,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(hostile_text | st.integers(), children, max_size=4),
    max_leaves=20,
)
yaml_texts = (
    st.text(st.sampled_from(list("[]{}:,-&*!|>'\"\\?#%@ \n\t\x00a1é")), max_size=300)
    | yaml_documents.map(json.dumps)
    | st.integers(30, 3000).map(lambda depth: "[" * depth + "]" * depth)
    | st.integers(30, 3000).map(lambda depth: "- " * depth + "x")
)


@FUZZ
@given(text=yaml_texts)
def test_definition_parser_never_raises_anything_but_definition_error(text):
    with contextlib.suppress(DefinitionError):
        parse_definition(text, artifact="hello")


@FUZZ
@given(text=yaml_texts)
def test_instance_file_loader_never_raises_anything_but_instance_file_error(tmp_path, text):
    path = tmp_path / "default.yml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    with contextlib.suppress(InstanceFileError):
        parse_instance_file(path)

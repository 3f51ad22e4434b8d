"""The permission matrix: every endpoint x every kind of caller, in both URL modes.

Order of the checks (compat §1.3): the token is verified first, then the
policy decides, and only then an unknown instance is reported. Every refusal is
a 403 Error object (never a 401, never a WWW-Authenticate challenge).
"""

import base64
import html
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
from django.contrib.auth.models import Group, User
from django.urls import URLResolver, get_resolver, resolve
from rest_framework.test import APIClient

from accounts.constants import Action
from tasks.journal import log_frame
from tasks.models import Task, TaskName, TaskResult, TaskState
from tests import factories
from tests.helpers import assert_error, write_policy

pytestmark = pytest.mark.usefixtures("fresh_policy_cache")

ALLOWED = "allowed"
FINISHED_TASK_ID = "c8c9935e-44c9-48de-a318-b6060c08b8c8"
JOURNAL = log_frame("Running build") + log_frame("Task succeeded")
BINARY_VERSION = "2.1.0-1"
REGISTRY_FILE = "deb/dists/bookworm/Release"
REGISTRY_FILE_CONTENT = b"Origin: Default Fatbuildr Instance\n"
WEB_ACTIONS = (
    Action.VIEW_PIPELINE,
    Action.VIEW_REGISTRY,
    Action.VIEW_TASK,
    Action.VIEW_KEYRING,
    Action.BUILD,
    Action.EDIT_REGISTRY,
    Action.CANCEL_TASK,
)
# What the anonymous role of the vendor policy (accounts/policy.acl) grants to everyone.
VENDOR_ANONYMOUS_ACTIONS = frozenset(
    {Action.VIEW_PIPELINE, Action.VIEW_REGISTRY, Action.VIEW_TASK, Action.VIEW_KEYRING}
)


# --- Endpoints -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """An endpoint; `path` is relative to the instance prefix unless `public`. `{task}` in
    the path is the pending task of the seeded data."""

    id: str
    path: str
    action: str | None
    method: str = "get"
    status: int = 200
    error: str | None = None  # expected Error object when the allowed answer is not a 200
    public: bool = False
    multi_only: bool = False
    page: str | None = None  # an HTML page: a text its allowed answer shows


ENDPOINTS = [
    Endpoint("instance", "instance.json", Action.VIEW_REGISTRY),
    Endpoint("architectures", "pipelines/architectures.json", Action.VIEW_PIPELINE),
    Endpoint("formats", "pipelines/formats.json", Action.VIEW_PIPELINE),
    Endpoint("registry", "registry.json", Action.VIEW_REGISTRY),
    Endpoint("registry-format", "registry/deb.json", Action.VIEW_REGISTRY),
    Endpoint("registry-distribution", "registry/deb/bookworm.json", Action.VIEW_REGISTRY),
    Endpoint("registry-derivative", "registry/deb/bookworm/main.json", Action.VIEW_REGISTRY),
    Endpoint("artifact", "registry/deb/bookworm/main/x86_64/fatbuildr.json", Action.VIEW_REGISTRY),
    # Allowed: the deletion of the version is queued; refused: no task is.
    Endpoint(
        "artifact-delete",
        f"registry/deb/bookworm/main/x86_64/fatbuildr.json?version={BINARY_VERSION}",
        Action.EDIT_REGISTRY,
        method="delete",
    ),
    Endpoint("search", "search.json?artifact=fat", Action.VIEW_REGISTRY),
    Endpoint("running", "running.json", Action.VIEW_TASK),
    Endpoint("queue", "queue.json", Action.VIEW_TASK),
    Endpoint("task", "tasks/{task}.json", Action.VIEW_TASK),
    Endpoint("watch", f"watch/{FINISHED_TASK_ID}.journal", Action.VIEW_TASK),
    Endpoint("watch-events", f"watch/{FINISHED_TASK_ID}.events", Action.VIEW_TASK),
    Endpoint(
        "watch-page", f"watch/{FINISHED_TASK_ID}.html", Action.VIEW_TASK, page="Running build"
    ),
    Endpoint("history", "history.json", Action.VIEW_TASK),
    # Allowed: the pending task is canceled at once (200); refused: it stays pending.
    Endpoint("cancel", "tasks/{task}/cancel", Action.CANCEL_TASK, method="post"),
    # Allowed with an empty body: the answer names the first missing field.
    Endpoint(
        "build", "build", Action.BUILD, method="post", status=400, error="Missing field format"
    ),
    # No keyring task has run: the allowed answer is the documented 404.
    Endpoint(
        "keyring",
        "keyring.asc",
        Action.VIEW_KEYRING,
        status=404,
        error="No keyring available on this instance",
    ),
    # The registry folders served to apt and dnf.
    Endpoint("registry-file", REGISTRY_FILE, Action.VIEW_REGISTRY),
    # The HTML pages (compat §1.6): refusals are HTML error pages.
    Endpoint("page-index", "/", None, public=True, page='href="/default/registry/"'),
    Endpoint("page-registry", "registry/", Action.VIEW_REGISTRY, page="registry/deb/"),
    Endpoint("page-format", "registry/deb/", Action.VIEW_REGISTRY, page="deb/bookworm/"),
    Endpoint(
        "page-distribution", "registry/deb/bookworm/", Action.VIEW_REGISTRY, page="bookworm/main/"
    ),
    Endpoint(
        "page-derivative",
        "registry/deb/bookworm/main/",
        Action.VIEW_REGISTRY,
        page="main/x86_64/fatbuildr/",
    ),
    Endpoint(
        "page-artifact",
        "registry/deb/bookworm/main/x86_64/fatbuildr/",
        Action.VIEW_REGISTRY,
        page="main/src/fatbuildr/",
    ),
    Endpoint("page-search", "search?artifact=fat", Action.VIEW_REGISTRY, page="x86_64/fatbuildr/"),
    Endpoint("page-task", "tasks/{task}.html", Action.VIEW_TASK, page="pending"),
    Endpoint("page-history", "history.html", Action.VIEW_TASK, page=FINISHED_TASK_ID[:8]),
    Endpoint("version", "/version", None, public=True),
    Endpoint("instances", "/instances.json", None, public=True, multi_only=True),
]


# --- Policies ------------------------------------------------------------------------------


def others(action: str) -> str:
    return ",".join(a for a in WEB_ACTIONS if a != action)


def restricted_policy(action: str) -> str:
    """Everyone gets every web action but *action*, except through the roles granting it."""
    return f"""
[roles]
anonymous
staff=mallory
readers=alice
grouped=@viewers
base
inheritors=carol

[anonymous]
actions={others(action)}

[staff]
actions={others(action)}

[readers]
actions={action}

[grouped]
actions={action}

[base]
actions={action}

[inheritors]
actions=@base
"""


def no_anonymous_policy(action: str) -> str:
    return f"""
[roles]
readers=alice

[readers]
actions={",".join(WEB_ACTIONS)}
"""


# --- Tokens --------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    payload = {"iat": now, "exp": now + 3600, "aud": "fatbuildr", "sub": "alice"}
    for name, value in overrides.items():
        if value is None:
            payload.pop(name, None)
        else:
            payload[name] = value
    return payload


def signed(instance, algorithm: str = "HS256", key: str | None = None, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), key or instance.token_key, algorithm=algorithm)


def alg_none(instance) -> str:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(claims()).encode())}."


BAD_TOKENS: dict[str, tuple[Callable[[Any], str], str]] = {
    "garbage": (lambda i: "not-a-jwt", "token is invalid"),
    "garbage-three-parts": (lambda i: "aaa.bbb.ccc", "token is invalid"),
    "expired": (
        lambda i: signed(i, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
        "token is expired",
    ),
    "wrong-audience": (lambda i: signed(i, aud="someone-else"), "token is invalid"),
    "missing-audience": (lambda i: signed(i, aud=None), "token is invalid"),
    "wrong-key": (lambda i: signed(i, key="f" * 64), "token is invalid"),
    "alg-none": (alg_none, "token is invalid"),
    "hs512": (lambda i: signed(i, algorithm="HS512"), "token is invalid"),
    "missing-sub": (lambda i: signed(i, sub=None), "token is invalid"),
    "missing-exp": (lambda i: signed(i, exp=None), "token is invalid"),
}

BAD_HEADERS = {
    "basic": "Basic x",
    "lowercase-bearer": "bearer x",
    "bearer-alone": "Bearer",
}


# --- Cases ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """Who calls, under which policy, on which instance, and what the answer must be.

    `policy` builds the policy text for an action (None: the vendor policy);
    `client` builds the client; `expect` maps the action to ALLOWED or
    (status, error message).
    """

    id: str
    client: Callable[["Context"], APIClient]
    expect: Callable[[str], Any]
    policy: Callable[[str], str] | None = None
    instance: str = "default"


@dataclass
class Context:
    instance: Any
    action: str
    client_for: Callable[..., APIClient]
    client_with_role: Callable[..., APIClient]


def anonymous(ctx: Context) -> APIClient:
    return APIClient()


def user(name: str) -> Callable[[Context], APIClient]:
    return lambda ctx: ctx.client_for(ctx.instance, name)


def fatbuildr_member(ctx: Context) -> APIClient:
    """A member of group "fatbuildr": the `users` role of the vendor policy."""
    member = User.objects.create_user("builder")
    member.groups.add(Group.objects.get_or_create(name="fatbuildr")[0])
    return ctx.client_for(ctx.instance, "builder")


def group_member(ctx: Context) -> APIClient:
    member = User.objects.create_user("dave")
    member.groups.add(Group.objects.get_or_create(name="viewers")[0])
    return ctx.client_for(ctx.instance, "dave")


def raw_header(header: str | Callable[[Any], str]) -> Callable[[Context], APIClient]:
    def make(ctx: Context) -> APIClient:
        client = APIClient()
        value = header(ctx.instance) if callable(header) else header
        client.credentials(HTTP_AUTHORIZATION=value)
        return client

    return make


def bearer(token: Callable[[Any], str]) -> Callable[[Context], APIClient]:
    return raw_header(lambda instance: f"Bearer {token(instance)}")


def allowed(action: str) -> str:
    return ALLOWED


def anonymous_refused(action: str) -> tuple[int, str]:
    return 403, f"anonymous role is not allowed to perform action {action}"


def refused(name: str) -> Callable[[str], tuple[int, str]]:
    return lambda action: (403, f"user {name} is not allowed to perform action {action}")


def fixed(status: int, message: str) -> Callable[[str], tuple[int, str]]:
    return lambda action: (status, message)


def vendor(granted: Callable[[str], Any], refusal: Callable[[str], Any]) -> Callable[[str], Any]:
    """Under the vendor policy: *granted* for the anonymous role's actions, else *refusal*."""
    return lambda action: granted(action) if action in VENDOR_ANONYMOUS_ACTIONS else refusal(action)


CASES = [
    Case("anonymous-vendor-policy", anonymous, vendor(allowed, anonymous_refused)),
    Case("anonymous-lacks-action", anonymous, anonymous_refused, restricted_policy),
    Case("no-anonymous-role", anonymous, anonymous_refused, no_anonymous_policy),
    Case("no-anonymous-role-user", user("alice"), allowed, no_anonymous_policy),
    Case("user-vendor-policy", user("mallory"), vendor(allowed, refused("mallory"))),
    Case("fatbuildr-group-vendor-policy", fatbuildr_member, allowed),
    Case("user-lacks-action", user("mallory"), refused("mallory"), restricted_policy),
    Case("user-unknown-to-policy", user("zoe"), refused("zoe"), restricted_policy),
    Case("user-by-name", user("alice"), allowed, restricted_policy),
    Case("user-by-group", group_member, allowed, restricted_policy),
    Case("user-by-role-inclusion", user("carol"), allowed, restricted_policy),
    Case(
        "user-by-admin-role",
        lambda ctx: ctx.client_with_role(ctx.instance, ctx.action, username="maintainer"),
        allowed,
        restricted_policy,
    ),
    *(
        Case(f"token-{name}", bearer(make), fixed(403, message))
        for name, (make, message) in BAD_TOKENS.items()
    ),
    *(
        Case(f"header-{name}", raw_header(header), fixed(403, "No valid token provided"))
        for name, header in BAD_HEADERS.items()
    ),
    Case(
        "unknown-instance-anonymous",
        anonymous,
        vendor(fixed(404, "instance nope not found"), anonymous_refused),
        instance="nope",
    ),
    Case(
        "unknown-instance-anonymous-lacks-action",
        anonymous,
        anonymous_refused,
        restricted_policy,
        instance="nope",
    ),
    Case(
        "unknown-instance-token",
        user("alice"),
        fixed(404, "unable to authenticate with JWT token against nope instance"),
        instance="nope",
    ),
    Case(
        "unknown-instance-token-lacking-action",
        user("mallory"),
        fixed(404, "unable to authenticate with JWT token against nope instance"),
        restricted_policy,
        instance="nope",
    ),
    Case(
        "unknown-instance-bad-header",
        raw_header("Basic x"),
        fixed(403, "No valid token provided"),
        instance="nope",
    ),
]


def matrix() -> list:
    params = []
    for mode in ("multi", "mono"):
        for endpoint in ENDPOINTS:
            for case in CASES:
                if endpoint.public and case.instance != "default":
                    continue  # no instance in the path of a public endpoint
                case_id = f"{mode}-{endpoint.id}-{case.id}"
                params.append(pytest.param(mode, endpoint, case, id=case_id))
    return params


# --- Fixtures ------------------------------------------------------------------------------


@pytest.fixture
def registry_data(default_instance, data_dir, sent):
    """A deb source and its binary in bookworm/main, a registry file, a finished task with
    its journal and a pending one: every GET has data. Task messages are not sent."""
    source, binary = factories.source_and_binary(default_instance, version=BINARY_VERSION)
    factories.ChangelogEntryFactory(artifact=source)
    factories.ContentEntryFactory(artifact=binary)
    finished = factories.TaskFactory(
        id=FINISHED_TASK_ID,
        instance=default_instance,
        state=TaskState.FINISHED,
        result=TaskResult.SUCCESS,
    )
    finished.journal_path.parent.mkdir(parents=True, exist_ok=True)
    finished.journal_path.write_bytes(JOURNAL)
    registry_file = data_dir / "registry" / default_instance.id / REGISTRY_FILE
    registry_file.parent.mkdir(parents=True)
    registry_file.write_bytes(REGISTRY_FILE_CONTENT)
    return factories.TaskFactory(instance=default_instance)


URLCONFS = {"multi": "tests.urls_multi", "mono": "tests.urls_mono"}


def endpoint_url(mode: str, instance_id: str, endpoint: Endpoint) -> str:
    """The URL of an endpoint for the instance *instance_id* in URL mode *mode*."""
    if endpoint.public:
        return endpoint.path
    return f"/{instance_id}/{endpoint.path}" if mode == "multi" else f"/{endpoint.path}"


def use_mode(settings, mode: str, instance_id: str) -> Callable[[Endpoint], str]:
    """Switch URL mode; return the URL of an endpoint for the instance *instance_id*."""
    settings.FATBUILDR_INSTANCE = None if mode == "multi" else instance_id
    settings.ROOT_URLCONF = URLCONFS[mode]
    return lambda endpoint: endpoint_url(mode, instance_id, endpoint)


def assert_no_challenge(response) -> None:
    assert response.status_code != 401
    assert "WWW-Authenticate" not in response.headers


def assert_refused(response, status: int, message: str | None = None) -> None:
    """An Error object with *status* and exactly *message*, if given, and no challenge."""
    assert_no_challenge(response)
    assert_error(response, status, exactly=message)


def assert_refused_page(response, status: int, message: str) -> None:
    """An HTML error page `Error: <message> (<status>)`, and no challenge."""
    assert_no_challenge(response)
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("text/html"), response.content
    assert f"Error: {html.escape(message)} ({status})" in response.content.decode()


# --- The matrix ----------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "endpoint", "case"), matrix())
def test_permission_matrix(
    mode, endpoint, case, settings, tmp_path, registry_data, client_for, client_with_role
):
    action = endpoint.action or Action.VIEW_REGISTRY
    if case.policy is not None:
        write_policy(settings, tmp_path, case.policy(action))
    ctx = Context(registry_data.instance, action, client_for, client_with_role)
    client = case.client(ctx)
    url = use_mode(settings, mode, case.instance)(endpoint)
    response = getattr(client, endpoint.method)(url.format(task=registry_data.id))

    if endpoint.public:
        if mode == "mono" and endpoint.multi_only:
            assert_refused(response, 404)
            return
        expected = ALLOWED  # no token or policy check at all
    else:
        expected = case.expect(endpoint.action)

    if expected != ALLOWED:
        status, message = expected
        if endpoint.page is not None:
            assert_refused_page(response, status, message)
        else:
            assert_refused(response, status, message)
        if endpoint.method != "get":  # a refused request changes nothing
            task = Task.objects.get(pk=registry_data.pk)
            assert (task.state, task.cancel_requested_by) == (TaskState.PENDING, "")
            assert Task.objects.count() == 2, "a refused request queued a task"
        return
    assert_no_challenge(response)
    if endpoint.id == "page-index" and mode == "mono":
        assert (response.status_code, response["Location"]) == (302, "/registry/")
        return
    assert response.status_code == endpoint.status, response.content
    if endpoint.error is not None:
        assert response.json() == {"error": endpoint.error}
    elif endpoint.page is not None:
        assert response["Content-Type"].startswith("text/html")
        assert endpoint.page in response.content.decode()
    elif endpoint.id == "version":
        assert response.content == b"Fatbuildr v2.1.0"
    elif endpoint.id == "watch":
        assert response["Content-Type"] == "application/octet-stream"
        assert b"".join(response.streaming_content) == JOURNAL
    elif endpoint.id == "watch-events":
        assert response["Content-Type"] == "text/event-stream"
        assert b"event: end" in b"".join(response.streaming_content)
    elif endpoint.id == "registry-file":
        assert b"".join(response.streaming_content) == REGISTRY_FILE_CONTENT
    else:
        assert response["Content-Type"].startswith("application/json")
        check_allowed_body(endpoint, response.json(), registry_data)


def check_allowed_body(endpoint: Endpoint, body: Any, task) -> None:
    """The allowed answer is the endpoint's real payload (so the seeded data was reached)."""
    expected: dict[str, Any] = {
        "instance": lambda: body["id"] == "default",
        "architectures": lambda: "x86_64" in body,
        "formats": lambda: set(body) == {"deb", "rpm"},
        "registry": lambda: body == ["deb"],
        "registry-format": lambda: body == ["bookworm"],
        "registry-distribution": lambda: body == ["main"],
        "registry-derivative": lambda: {a["architecture"] for a in body} == {"src", "x86_64"},
        "artifact": lambda: body["artifact"] == "fatbuildr" and body["source"]["version"],
        "artifact-delete": lambda: Task.objects.filter(
            pk=body["task"],
            name=TaskName.ARTIFACT_DELETION,
            artifact="fatbuildr",
            artifact_version=BINARY_VERSION,
        ).exists(),
        "search": lambda: "fatbuildr" in str(body["deb"]["bookworm"]["main"]),
        "running": lambda: body is None,
        "queue": lambda: [t["id"] for t in body] == [str(task.id)],
        "task": lambda: body["id"] == str(task.id),
        "history": lambda: [t["id"] for t in body["results"]] == [FINISHED_TASK_ID],
        "cancel": lambda: (body["id"], body["state"], body["result"])
        == (str(task.id), "finished", "canceled")
        and Task.objects.get(pk=task.pk).result == TaskResult.CANCELED,
        "instances": lambda: [i["id"] for i in body] == ["default"],
    }
    assert expected[endpoint.id](), body


# --- Every route is in the matrix ---------------------------------------------------------


def routes(patterns: list) -> set[tuple[str, str]]:
    """(URL name, method) of every route of a URL configuration but the admin's, for each
    method its view answers (HEAD and OPTIONS follow GET and the framework)."""
    found: set[tuple[str, str]] = set()
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.app_name != "admin":
                found |= routes(pattern.url_patterns)
            continue
        view = pattern.callback.view_class
        methods = {m for m in view.http_method_names if m not in ("head", "options")}
        found |= {(pattern.name, m) for m in methods if hasattr(view, m)}
    return found


def matrix_routes(mode: str) -> set[tuple[str, str]]:
    """(URL name, method) of every endpoint of the matrix, as the URL mode resolves it."""
    found = set()
    for endpoint in ENDPOINTS:
        if mode == "mono" and endpoint.multi_only:
            continue
        url = endpoint_url(mode, "default", endpoint).format(task=FINISHED_TASK_ID)
        match = resolve(urlsplit(url).path, urlconf=URLCONFS[mode])
        found.add((match.url_name, endpoint.method))
    return found


@pytest.mark.parametrize("mode", URLCONFS)
def test_every_route_and_method_is_in_the_matrix(mode):
    served = routes(get_resolver(URLCONFS[mode]).url_patterns)
    assert ("artifact", "delete") in served and ("registry-file", "get") in served
    assert all(name for name, _ in served), "every route has a name"
    assert served - matrix_routes(mode) == set(), "routes without a permission matrix entry"
    assert matrix_routes(mode) <= served


# --- Methods and paths ---------------------------------------------------------------------


@pytest.fixture(params=["multi", "mono"])
def prefix(request, settings, default_instance) -> str:
    use_mode(settings, request.param, default_instance.id)
    return "/default" if request.param == "multi" else ""


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/running.json"),
        ("put", "/registry/deb/bookworm/main/x86_64/fatbuildr.json"),
        ("patch", "/queue.json"),
        ("post", "/instance.json"),
        ("post", "/history.json"),
    ],
)
def test_wrong_method_is_405_error_object(registry_data, prefix, method, path):
    response = getattr(APIClient(), method)(f"{prefix}{path}")
    assert_refused(response, 405)


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_wrong_method_on_cancel_is_405_after_the_policy_check(
    registry_data, prefix, client_for, method
):
    url = f"{prefix}/tasks/{registry_data.id}/cancel"
    assert_refused(getattr(APIClient(), method)(url), *anonymous_refused(Action.CANCEL_TASK))
    ctx = Context(registry_data.instance, Action.CANCEL_TASK, client_for, None)
    assert_refused(getattr(fatbuildr_member(ctx), method)(url), 405)
    assert Task.objects.get(pk=registry_data.pk).state == TaskState.PENDING


@pytest.mark.parametrize(
    "path",
    # (Without its trailing slash, .../x86_64.json/x would be redirected to an artifact page.)
    ["/unknown.json", "/registry/deb/bookworm/main/x86_64.json/x/y", "/tasks/"],
)
def test_unknown_path_is_404_error_object(registry_data, prefix, path):
    assert_refused(APIClient().get(f"{prefix}{path}"), 404)


def test_a_page_without_its_slash_is_redirected(registry_data, prefix):
    response = APIClient().get(f"{prefix}/registry/deb")
    assert response.status_code in (301, 308)
    assert response["Location"] == f"{prefix}/registry/deb/"


def test_unknown_top_level_path_is_404_error_object(settings, db):
    use_mode(settings, "multi", "default")
    assert_refused(APIClient().get("/nope"), 404)

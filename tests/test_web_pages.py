"""The HTML pages with the Django test client: status, content, policy refusals as HTML
error pages, and query counts flat in the size of the registry."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.constants import Action
from registry.models import RegistryDerivative, RegistryDistribution, RegistryFormat
from tasks.models import TaskResult, TaskState
from tests import factories
from tests.helpers import write_policy
from tests.test_query_counts import LARGE, SMALL, _build_registry, _build_tasks, _load_instance

pytestmark = pytest.mark.usefixtures("fresh_policy_cache")

VERSION = "2.1.0-1"


@pytest.fixture
def seeded(default_instance, sent):
    """A deb source and its binary in bookworm/main with a changelog and content, a finished
    task, a running one and a pending one."""
    source, binary = factories.source_and_binary(default_instance, version=VERSION)
    factories.ChangelogEntryFactory(artifact=source)
    factories.ContentEntryFactory(artifact=binary)
    finished = factories.TaskFactory(
        instance=default_instance,
        state=TaskState.FINISHED,
        result=TaskResult.SUCCESS,
        artifact="fatbuildr",
    )
    running = factories.TaskFactory(instance=default_instance, state=TaskState.RUNNING)
    pending = factories.TaskFactory(instance=default_instance)
    return {
        "instance": default_instance,
        "source": source,
        "binary": binary,
        "finished": finished,
        "running": running,
        "pending": pending,
    }


def html(response, status: int = 200) -> str:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("text/html")
    return response.content.decode()


def title(body: str) -> str:
    match = re.search(r"<title>(.*?)</title>", body, re.S)
    assert match
    return match.group(1)


# --- Pages, multi-instance mode ----------------------------------------------------------------


def test_index_lists_instances(multi_mode, default_instance, client):
    body = html(client.get("/"))
    assert title(body).startswith("Instances")
    assert 'href="/default/registry/"' in body
    assert 'href="/instances.json"' in body


def test_mono_index_redirects_to_the_registry(mono_mode, client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/registry/"


def test_registry_page(multi_mode, seeded, client):
    body = html(client.get("/default/registry/"))
    assert "Registry of" in title(body)
    assert 'href="/default/registry/deb/"' in body
    for task in ("running", "pending", "finished"):
        assert f"/default/tasks/{seeded[task].id}.html" in body
    assert f"/default/watch/{seeded['running'].id}.html" in body
    assert 'href="/default/keyring.asc"' in body
    assert 'href="/default/registry.json"' in body
    assert "curl http://testserver/default/keyring.asc | gpg --dearmor -o " in body
    assert "/usr/share/keyrings/default.gpg" in body
    assert (
        "deb [signed-by=/usr/share/keyrings/default.gpg] http://testserver/default/deb "
        "bookworm main" in body
    )
    assert "<time datetime=" in body


def test_registry_page_shows_every_running_task(multi_mode, seeded, client):
    other = factories.TaskFactory(instance=seeded["instance"], state=TaskState.RUNNING)
    body = html(client.get("/default/registry/"))
    assert f"/default/watch/{seeded['running'].id}.html" in body
    assert f"/default/watch/{other.id}.html" in body


def test_rpm_repo_file(multi_mode, default_instance, client):
    rpm = RegistryFormat.objects.create(instance=default_instance, name="rpm")
    el8 = RegistryDistribution.objects.create(format=rpm, name="el8")
    RegistryDerivative.objects.create(distribution=el8, name="main")
    body = html(client.get("/default/registry/"))
    assert "baseurl=http://testserver/default/rpm/el8/main/$basearch" in body
    assert "gpgkey=http://testserver/default/keyring.asc" in body


def test_format_distribution_derivative_pages(multi_mode, seeded, client):
    body = html(client.get("/default/registry/deb/"))
    assert "deb" in title(body)
    assert 'href="/default/registry/deb/bookworm/"' in body
    assert 'href="/default/registry/deb.json"' in body
    body = html(client.get("/default/registry/deb/bookworm/"))
    assert "bookworm" in title(body)
    assert 'href="/default/registry/deb/bookworm/main/"' in body
    body = html(client.get("/default/registry/deb/bookworm/main/"))
    assert "main" in title(body)
    assert 'href="/default/registry/deb/bookworm/main/x86_64/fatbuildr/"' in body
    assert 'href="/default/registry/deb/bookworm/main/src/fatbuildr/"' in body
    assert VERSION in body
    assert 'href="/default/registry/deb/bookworm/main.json"' in body


def test_source_page(multi_mode, seeded, client):
    body = html(client.get("/default/registry/deb/bookworm/main/src/fatbuildr/"))
    assert title(body).startswith("Source fatbuildr")
    assert "Binaries" in body and "Changelog" in body
    assert 'href="/default/registry/deb/bookworm/main/x86_64/fatbuildr/"' in body
    assert 'href="/default/registry/deb/bookworm/main/src/fatbuildr.json"' in body
    assert "<time datetime=" in body


def test_binary_page(multi_mode, seeded, client):
    body = html(client.get("/default/registry/deb/bookworm/main/x86_64/fatbuildr/"))
    assert title(body).startswith("Binary fatbuildr")
    assert 'href="/default/registry/deb/bookworm/main/src/fatbuildr/"' in body
    content = seeded["binary"].content.get()
    assert content.path in body
    assert "Content" in body


def test_search_page(multi_mode, seeded, client):
    body = html(client.get("/default/search?artifact=fatb"))
    assert "fatb" in title(body)
    assert 'href="/default/registry/deb/bookworm/main/"' in body
    assert 'href="/default/registry/deb/bookworm/main/x86_64/fatbuildr/"' in body
    assert 'href="/default/search.json?artifact=fatb"' in body
    body = html(client.get("/default/search?artifact=nothing-like-it"))
    assert "No artifact matches" in body
    html(client.get("/default/search"))


def test_task_page(multi_mode, seeded, client):
    task = seeded["finished"]
    body = html(client.get(f"/default/tasks/{task.id}.html"))
    assert str(task.id) in title(body)
    assert f'href="/default/watch/{task.id}.html"' in body
    assert f'href="/default/tasks/{task.id}.json"' in body
    assert "success" in body
    body = html(client.get("/default/tasks/not-a-task.html"), 404)
    assert "Error: task not-a-task not found (404)" in body


def test_history_page_filters(multi_mode, seeded, client):
    failed = factories.TaskFactory(
        instance=seeded["instance"],
        state=TaskState.FINISHED,
        result=TaskResult.FAILED,
        artifact="other",
    )
    body = html(client.get("/default/history.html"))
    assert str(seeded["finished"].id)[:8] in body and str(failed.id)[:8] in body
    body = html(client.get("/default/history.html?result=failed"))
    assert str(failed.id)[:8] in body and str(seeded["finished"].id)[:8] not in body
    body = html(client.get("/default/history.html?artifact=fatbuildr"))
    assert str(seeded["finished"].id)[:8] in body and str(failed.id)[:8] not in body
    body = html(client.get("/default/history.html?result=nope"), 400)
    assert "Error: Unknown task result nope (400)" in body


def test_derivative_page_is_paginated_and_filtered(multi_mode, db, tmp_path, client):
    dataset = _build_registry(_load_instance(tmp_path, "big"), LARGE)
    base = f"/{dataset.instance.id}/registry/deb/bookworm/main/"
    body = html(client.get(base))
    assert f"{3 * LARGE + 1} artifacts" in body
    assert body.count("<tr><td><a ") == 100
    assert "page=2" in body
    body = html(client.get(base + "?page=2"))
    assert "page 2 of" in body
    body = html(client.get(base + "?name=libbig&architecture=noarch"))
    assert f"{(LARGE - 1) // 2} artifacts" in body
    assert "pkg1/" not in body
    assert "name=libbig&amp;architecture=noarch&amp;page=" not in body  # one page only


# --- Mono-instance mode ------------------------------------------------------------------------


def test_mono_pages(mono_mode, seeded, client):
    body = html(client.get("/registry/"))
    assert 'href="/registry/deb/"' in body
    assert "http://testserver/deb bookworm main" in body
    body = html(client.get("/registry/deb/bookworm/main/"))
    assert 'href="/registry/deb/bookworm/main/x86_64/fatbuildr/"' in body
    html(client.get("/registry/deb/bookworm/main/x86_64/fatbuildr/"))
    html(client.get("/search?artifact=fat"))
    html(client.get(f"/tasks/{seeded['finished'].id}.html"))
    html(client.get("/history.html"))


# --- Errors and policy -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/default/registry/nope/", "Format nope not supported by registries"),
        ("/default/registry/deb/sid/", "Distribution sid not found in deb registry"),
        (
            "/default/registry/deb/bookworm/nope/",
            "Derivative nope not found in deb registry for distribution bookworm",
        ),
        ("/nope/registry/", "instance nope not found"),
    ],
)
def test_unknown_objects_are_html_error_pages(multi_mode, seeded, client, url, message):
    body = html(client.get(url), 404)
    assert f"Error: {message} (404)" in body
    assert title(body).startswith("Error 404")


@pytest.mark.parametrize(
    ("url", "action"),
    [
        ("/default/registry/", Action.VIEW_REGISTRY),
        ("/default/registry/deb/bookworm/main/", Action.VIEW_REGISTRY),
        ("/default/search?artifact=fat", Action.VIEW_REGISTRY),
        ("/default/history.html", Action.VIEW_TASK),
    ],
)
def test_refused_pages_are_html_error_pages(
    multi_mode, seeded, settings, tmp_path, client, url, action
):
    write_policy(settings, tmp_path, "[roles]\nreaders=alice\n\n[readers]\nactions=view-task\n")
    if action == Action.VIEW_TASK:
        write_policy(
            settings, tmp_path, "[roles]\nreaders=alice\n\n[readers]\nactions=view-registry\n"
        )
    body = html(client.get(url), 403)
    assert f"Error: anonymous role is not allowed to perform action {action} (403)" in body


def test_a_refused_json_route_keeps_the_error_object(
    multi_mode, seeded, settings, tmp_path, client
):
    write_policy(settings, tmp_path, "[roles]\nreaders=alice\n\n[readers]\nactions=view-task\n")
    response = client.get("/default/registry.json")
    assert response.status_code == 403
    assert response.json() == {
        "error": "anonymous role is not allowed to perform action view-registry"
    }


def test_a_page_with_a_token_of_an_allowed_user(multi_mode, seeded, settings, tmp_path, client_for):
    write_policy(settings, tmp_path, "[roles]\nreaders=alice\n\n[readers]\nactions=view-registry\n")
    html(client_for(seeded["instance"], "alice").get("/default/registry/"))


def test_wrong_method_is_an_html_405(multi_mode, seeded, client):
    body = html(client.post("/default/registry/"), 405)
    assert "(405)" in body


# --- Query counts ------------------------------------------------------------------------------


PAGES = [
    ("registry", lambda i: f"/{i}/registry/"),
    ("format", lambda i: f"/{i}/registry/deb/"),
    ("distribution", lambda i: f"/{i}/registry/deb/bookworm/"),
    ("derivative", lambda i: f"/{i}/registry/deb/bookworm/main/"),
    ("derivative-filtered", lambda i: f"/{i}/registry/deb/bookworm/main/?name=pkg&page=2"),
    ("source", lambda i: f"/{i}/registry/deb/bookworm/main/src/libbig/"),
    ("binary", lambda i: f"/{i}/registry/deb/bookworm/main/x86_64/libbig-bin/"),
    ("search", lambda i: f"/{i}/search?artifact=pkg"),
]


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, (url, response.content[:300])
    return len(captured)


@pytest.mark.parametrize("url_for", [pytest.param(u, id=n) for n, u in PAGES])
def test_page_queries_do_not_grow_with_the_registry(multi_mode, db, tmp_path, client, url_for):
    small = _build_registry(_load_instance(tmp_path, "small"), SMALL)
    large = _build_registry(_load_instance(tmp_path, "large"), LARGE)
    client.get(url_for(small.instance.id))  # warm the per-process caches
    counts = [_queries(client, url_for(d.instance.id)) for d in (small, large)]
    assert counts[0] == counts[1], counts
    assert counts[1] <= 8


@pytest.mark.parametrize(
    "url_for",
    [
        pytest.param(lambda d: f"/{d.instance.id}/registry/", id="registry"),
        pytest.param(lambda d: f"/{d.instance.id}/history.html", id="history"),
        pytest.param(lambda d: f"/{d.instance.id}/tasks/{d.finished_task}.html", id="task"),
    ],
)
def test_task_page_queries_do_not_grow(multi_mode, db, tmp_path, client, url_for):
    small = _build_tasks(_load_instance(tmp_path, "small"), SMALL)
    large = _build_tasks(_load_instance(tmp_path, "large"), LARGE)
    client.get(url_for(small))
    counts = [_queries(client, url_for(d)) for d in (small, large)]
    assert counts[0] == counts[1], counts


def test_a_page_asked_for_json_is_still_html(multi_mode, seeded, client):
    html(client.get("/default/registry/", HTTP_ACCEPT="application/json"))
    body = html(client.get("/default/registry/nope/", HTTP_ACCEPT="application/json"), 404)
    assert "Error: Format nope not supported by registries (404)" in body


def test_site_templates_are_searched_before_the_project_s(
    multi_mode, default_instance, client, settings, tmp_path
):
    """FATBUILDR_TEMPLATES_DIRS (upstream `[web] templates`): a site's `web/base.html`
    restyles every page, the project's templates fill in the rest."""
    site = tmp_path / "site-templates" / "web"
    site.mkdir(parents=True)
    (site / "base.html").write_text(
        "<!DOCTYPE html><title>{% block title %}{% endblock %}</title>"
        "<p>Our farm</p>{% block content %}{% endblock %}"
    )
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [str(tmp_path / "site-templates")]},
    ]
    html = client.get("/").content.decode()
    assert "<p>Our farm</p>" in html
    assert 'href="/default/registry/"' in html  # the project's page, in the site's layout

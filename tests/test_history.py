"""`GET /{instance}/history.json`: finished tasks, newest first, filtered and paginated."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks.history import history_queryset
from tasks.models import Task, TaskName, TaskResult, TaskState
from tasks.wire import task_to_wire
from tests.factories import InstanceFactory, make_task
from tests.helpers import assert_error, write_policy

pytestmark = pytest.mark.usefixtures("data_dir", "fresh_policy_cache", "multi_mode")

URL = "/default/history.json"


def ids(tasks) -> list[str]:
    return [str(task.id) for task in tasks]


def result_ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [task["id"] for task in response.json()["results"]]


# --- Selector ------------------------------------------------------------------------------


def test_history_queryset_is_finished_tasks_newest_first_with_id_as_tie_breaker(default_instance):
    tasks = [make_task(default_instance, hours_ago=h) for h in (3, 1, 2)]
    twins = [make_task(default_instance, hours_ago=5) for _ in range(3)]
    make_task(default_instance, hours_ago=0, state=TaskState.RUNNING)
    make_task(default_instance, hours_ago=0, state=TaskState.PENDING)
    make_task(InstanceFactory(id="other"), hours_ago=0)
    expected = [tasks[1], tasks[2], tasks[0], *sorted(twins, key=lambda t: t.id, reverse=True)]
    assert list(history_queryset(default_instance)) == expected
    assert list(history_queryset("default")) == expected


# --- Endpoint ------------------------------------------------------------------------------


def test_history_lists_finished_tasks_newest_first_in_wire_form(default_instance, anonymous_client):
    old = make_task(default_instance, hours_ago=2)
    new = make_task(default_instance, hours_ago=1, result=TaskResult.FAILED)
    make_task(default_instance, hours_ago=0, state=TaskState.RUNNING)
    make_task(default_instance, hours_ago=0, state=TaskState.PENDING)
    response = anonymous_client.get(URL)
    assert response.status_code == 200
    assert response.json() == {
        "count": 2,
        "next": None,
        "previous": None,
        "results": [task_to_wire(new), task_to_wire(old)],
    }


def test_history_of_an_empty_instance_is_an_empty_first_page(default_instance, anonymous_client):
    response = anonymous_client.get(URL)
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}
    assert_error(anonymous_client.get(URL + "?page=2"), 404, "page 2 not found")


def test_history_filters(default_instance, anonymous_client):
    build_ok = make_task(default_instance, hours_ago=1, artifact="hello")
    build_failed = make_task(
        default_instance, hours_ago=2, artifact="hello", result=TaskResult.FAILED
    )
    other_build = make_task(default_instance, hours_ago=3, artifact="hello-extra")
    renewal = make_task(
        default_instance, hours_ago=4, name=TaskName.KEYRING_RENEWAL, artifact="", duration="1y"
    )
    canceled = make_task(
        default_instance,
        hours_ago=5,
        name=TaskName.IMAGE_UPDATE,
        artifact="",
        result=TaskResult.CANCELED,
    )
    get = anonymous_client.get
    assert result_ids(get(URL, {"name": "artifact build"})) == ids(
        [build_ok, build_failed, other_build]
    )
    assert result_ids(get(URL, {"name": "keyring renewal"})) == ids([renewal])
    assert result_ids(get(URL, {"result": "failed"})) == ids([build_failed])
    assert result_ids(get(URL, {"result": "canceled"})) == ids([canceled])
    assert result_ids(get(URL, {"result": "success"})) == ids([build_ok, other_build, renewal])
    assert result_ids(get(URL, {"artifact": "hello"})) == ids([build_ok, build_failed])
    assert result_ids(get(URL, {"artifact": "hello", "result": "success"})) == ids([build_ok])
    assert result_ids(get(URL, {"artifact": "nothing"})) == []
    assert get(URL, {"name": "image update", "result": "failed"}).json()["count"] == 0


def test_history_pagination_and_links(default_instance, anonymous_client):
    tasks = [make_task(default_instance, hours_ago=h) for h in range(5)]
    first = anonymous_client.get(URL, {"page_size": 2}).json()
    assert first["count"] == 5
    assert [t["id"] for t in first["results"]] == ids(tasks[:2])
    assert first["previous"] is None
    assert first["next"] == "http://testserver/default/history.json?page=2&page_size=2"

    second = anonymous_client.get(first["next"]).json()
    assert [t["id"] for t in second["results"]] == ids(tasks[2:4])
    assert second["previous"] == "http://testserver/default/history.json?page_size=2"
    assert second["next"] == "http://testserver/default/history.json?page=3&page_size=2"

    third = anonymous_client.get(second["next"]).json()
    assert [t["id"] for t in third["results"]] == ids(tasks[4:])
    assert third["next"] is None
    assert third["previous"] == "http://testserver/default/history.json?page=2&page_size=2"

    assert anonymous_client.get(URL, {"page_size": 2, "page": "last"}).json() == third
    assert_error(anonymous_client.get(URL, {"page_size": 2, "page": 4}), 404, "page 4 not found")


def test_history_links_keep_the_filters(default_instance, anonymous_client):
    for h in range(3):
        make_task(default_instance, hours_ago=h, artifact="hello")
    body = anonymous_client.get(URL, {"artifact": "hello", "page_size": 1}).json()
    assert body["next"] == (
        "http://testserver/default/history.json?artifact=hello&page=2&page_size=1"
    )


def test_history_default_and_maximum_page_sizes(default_instance, anonymous_client):
    Task.objects.bulk_create(
        Task(
            instance=default_instance,
            name=TaskName.HISTORY_PURGE,
            user="u",
            state=TaskState.FINISHED,
        )
        for _ in range(501)
    )
    default = anonymous_client.get(URL).json()
    assert (default["count"], len(default["results"])) == (501, 50)
    largest = anonymous_client.get(URL, {"page_size": 500}).json()
    assert len(largest["results"]) == 500
    assert largest["next"].endswith("page=2&page_size=500")


@pytest.mark.parametrize(
    ("params", "fragments"),
    [
        ({"name": "build"}, ("name", '"build" is not a valid choice')),
        ({"result": "unknown"}, ("result", '"unknown" is not a valid choice')),
        ({"result": "running"}, ("result",)),
        ({"page": "0"}, ("page must be an integer of at least 1",)),
        ({"page": "-1"}, ("page must be an integer",)),
        ({"page": "two"}, ("page must be an integer of at least 1, not 'two'",)),
        ({"page_size": "0"}, ("page_size must be an integer between 1 and 500",)),
        ({"page_size": "501"}, ("page_size must be an integer between 1 and 500, not '501'",)),
        ({"page_size": "ten"}, ("page_size must be an integer between 1 and 500",)),
        ({"page_size": "2.5"}, ("page_size",)),
    ],
)
def test_history_bad_parameters_are_400_error_objects(
    default_instance, anonymous_client, params, fragments
):
    make_task(default_instance, hours_ago=1)
    assert_error(anonymous_client.get(URL, params), 400, *fragments)


def test_history_empty_parameters_mean_the_defaults(default_instance, anonymous_client):
    tasks = [make_task(default_instance, hours_ago=h) for h in range(2)]
    params = {"name": "", "result": "", "artifact": "", "page": "", "page_size": ""}
    assert result_ids(anonymous_client.get(URL, params)) == ids(tasks)


def test_history_of_an_unknown_instance_is_404(default_instance, anonymous_client):
    assert_error(anonymous_client.get("/nope/history.json"), 404, "instance nope not found")


def test_history_is_scoped_to_the_instance(default_instance, anonymous_client):
    mine = make_task(default_instance, hours_ago=1)
    make_task(InstanceFactory(id="other"), hours_ago=0)
    assert result_ids(anonymous_client.get(URL)) == ids([mine])


def test_history_in_mono_instance_mode(mono_mode, anonymous_client):
    task = make_task(mono_mode, hours_ago=1)
    assert result_ids(anonymous_client.get("/history.json")) == ids([task])


# --- Permission ----------------------------------------------------------------------------


RESTRICTED_POLICY = """
[roles]
anonymous
readers=alice

[anonymous]
actions=view-pipeline,view-registry

[readers]
actions=view-task
"""


def test_anonymous_may_read_the_history_under_the_vendor_policy(default_instance, anonymous_client):
    make_task(default_instance, hours_ago=1)
    assert anonymous_client.get(URL).json()["count"] == 1


def test_history_needs_view_task(
    default_instance, settings, tmp_path, anonymous_client, client_for
):
    make_task(default_instance, hours_ago=1)
    write_policy(settings, tmp_path, RESTRICTED_POLICY)
    assert_error(
        anonymous_client.get(URL), 403, "anonymous role is not allowed to perform action view-task"
    )
    assert_error(
        client_for(default_instance, "bob").get(URL),
        403,
        "user bob is not allowed to perform action view-task",
    )
    assert client_for(default_instance, "alice").get(URL).json()["count"] == 1


def test_history_permission_is_checked_before_parameters(
    default_instance, settings, tmp_path, anonymous_client
):
    write_policy(settings, tmp_path, RESTRICTED_POLICY)
    assert_error(anonymous_client.get(URL, {"page": "x"}), 403)


# --- Query count ---------------------------------------------------------------------------


def test_history_queries_are_constant_in_the_page_size(
    default_instance, anonymous_client, django_assert_max_num_queries
):
    Task.objects.bulk_create(
        Task(
            instance=default_instance,
            name=list(TaskName)[i % len(TaskName)],
            user="john",
            state=TaskState.FINISHED,
            result=TaskResult.SUCCESS,
            artifact=f"pkg{i}",
            archives=[{"id": "pkg", "path": f"/tmp/pkg{i}.tar.xz"}],
        )
        for i in range(60)
    )
    anonymous_client.get(URL)  # warm per-process caches (policy file, URL resolvers)
    counts = {}
    for page_size in (5, 50):
        with CaptureQueriesContext(connection) as captured:
            response = anonymous_client.get(URL, {"page_size": page_size})
        assert len(response.json()["results"]) == page_size
        counts[page_size] = len(captured)
    assert counts[5] == counts[50], counts
    with django_assert_max_num_queries(3):
        anonymous_client.get(URL, {"page_size": 50, "name": "artifact build", "page": 1})

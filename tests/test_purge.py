"""The history purge (compat §6.4): policy parsing, selection, removal, `tasks purge` and
the daily job.

Selection tests run the pure `iter_tasks_to_purge` on unsaved tasks; removal tests
create real rows and workspaces under a private data root.
"""

import os
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from instances.models import Instance
from tasks import history
from tasks.history import (
    PurgeKind,
    PurgePolicy,
    parse_purge_policy,
    purge_history,
    workspace_size,
)
from tasks.models import Task, TaskName, TaskResult, TaskState
from tests.factories import NOW, InstanceFactory, make_task
from tests.helpers import run_command

MiB = 1024**2


# --- Policy parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("older:2h", PurgeKind.OLDER, 2 * 3600),
        ("older:3d", PurgeKind.OLDER, 3 * 86400),
        ("older:1m", PurgeKind.OLDER, 30 * 86400),
        ("older:2y", PurgeKind.OLDER, 2 * 365 * 86400),
        ("last:100", PurgeKind.LAST, 100),
        ("last:0", PurgeKind.LAST, 0),
        ("each:5", PurgeKind.EACH, 5),
        ("size:1MB", PurgeKind.SIZE, MiB),
        ("size:1.5GB", PurgeKind.SIZE, int(1.5 * 1024**3)),
        ("size:2TB", PurgeKind.SIZE, 2 * 1024**4),
        ("size:8Mb", PurgeKind.SIZE, 10**6),
        ("size:4Gb", PurgeKind.SIZE, 4 * 10**9 // 8),
        ("size:0.5Tb", PurgeKind.SIZE, 10**12 // 16),
        ("  last:3 ", PurgeKind.LAST, 3),
    ],
)
def test_valid_policies(text, kind, value):
    policy = parse_purge_policy(text)
    assert (policy.kind, policy.value) == (kind, value)
    assert str(policy) == text.strip()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "last",
        "last:",
        "last:-1",
        "last:abc",
        "last:10x",
        "last:1.5",
        "each:",
        "older:5",
        "older:5w",
        "older:d",
        "older:1.5d",
        "size:10",
        "size:10kB",
        "size:10mb",
        "size:1.GB",
        "size:GB",
        "newest:3",
        "LAST:3",
    ],
)
def test_invalid_policies_name_the_accepted_forms(text):
    with pytest.raises(ValueError, match=r"older:<n><h\|d\|m\|y>, last:<n>, each:<n> or size:"):
        parse_purge_policy(text)


def test_policy_is_frozen():
    policy = parse_purge_policy("last:3")
    with pytest.raises(AttributeError):
        policy.value = 4  # type: ignore[misc]


# --- Selection -----------------------------------------------------------------------------


def task(name: str = TaskName.ARTIFACT_BUILD, *, age: timedelta = timedelta(0), **fields) -> Task:
    """An unsaved finished task submitted *age* before NOW."""
    return Task(
        id=uuid.uuid4(),
        name=name,
        state=TaskState.FINISHED,
        submission=NOW - age,
        **fields,
    )


def tasks_to_purge(tasks: list[Task], policy: PurgePolicy, **options) -> list[Task]:
    return list(history.iter_tasks_to_purge(tasks, policy, **options))


def select(tasks: list[Task], text: str, sizes: dict | None = None) -> list[Task]:
    return tasks_to_purge(
        tasks,
        parse_purge_policy(text),
        now=NOW,
        workspace_size=lambda t: (sizes or {})[t.id],
    )


def test_older_removes_tasks_submitted_strictly_before_the_cutoff():
    ages = [timedelta(hours=h) for h in (1, 23, 24, 25, 48)]
    tasks = [task(age=age) for age in ages]
    assert select(tasks, "older:1d") == tasks[3:]
    assert select(tasks, "older:24h") == tasks[3:]
    assert select(tasks, "older:1m") == []


def test_older_month_and_year_units():
    tasks = [task(age=timedelta(days=d)) for d in (29, 31, 364, 366)]
    assert select(tasks, "older:1m") == tasks[1:]
    assert select(tasks, "older:1y") == tasks[3:]


def test_last_keeps_the_n_newest():
    tasks = [task(age=timedelta(hours=h)) for h in range(5)]
    assert select(tasks, "last:2") == tasks[2:]
    assert select(tasks, "last:0") == tasks
    assert select(tasks, "last:5") == []
    assert select(tasks, "last:100") == []


def build(age_hours: int, **fields) -> Task:
    values = {
        "format": "deb",
        "distribution": "bookworm",
        "derivative": "main",
        "artifact": "hello",
    }
    return task(age=timedelta(hours=age_hours), **{**values, **fields})


def test_each_groups_builds_by_name_format_distribution_derivative_artifact():
    tasks = [
        hello_new := build(1),
        other := build(2, artifact="other"),
        hello_rpm := build(3, format="rpm", distribution="el8"),
        hello_foox := build(4, derivative="foox"),
        hello_old := build(5),
        hello_older := build(6),
    ]
    assert select(tasks, "each:1") == [hello_old, hello_older]
    assert select(tasks, "each:2") == [hello_older]
    assert select(tasks, "each:3") == []
    assert select(tasks, "each:0") == tasks
    assert {hello_new, other, hello_rpm, hello_foox}.isdisjoint(select(tasks, "each:1"))


def test_each_groups_other_tasks_by_name_only():
    tasks = [
        renewal_new := task(TaskName.KEYRING_RENEWAL, age=timedelta(hours=1), duration="1y"),
        update_deb := task(TaskName.IMAGE_UPDATE, age=timedelta(hours=2), format="deb"),
        update_rpm := task(TaskName.IMAGE_UPDATE, age=timedelta(hours=3), format="rpm"),
        deletion := task(
            TaskName.ARTIFACT_DELETION, age=timedelta(hours=4), format="deb", artifact="hello"
        ),
        deletion_other := task(
            TaskName.ARTIFACT_DELETION, age=timedelta(hours=5), format="rpm", artifact="other"
        ),
        renewal_old := task(TaskName.KEYRING_RENEWAL, age=timedelta(hours=6), duration="2y"),
    ]
    assert select(tasks, "each:1") == [update_rpm, deletion_other, renewal_old]
    assert {renewal_new, update_deb, deletion}.isdisjoint(select(tasks, "each:1"))


def test_each_does_not_confuse_groups_that_join_to_the_same_string():
    # Upstream joins with "-": both would be "artifact build-deb-x-y-z-hello".
    first = build(1, distribution="x-y", derivative="z")
    second = build(2, distribution="x", derivative="y-z")
    assert select([first, second], "each:1") == []


def test_size_removes_the_task_that_reaches_the_limit_and_all_older():
    tasks = [task(age=timedelta(hours=h)) for h in range(5)]
    sizes = dict(zip([t.id for t in tasks], [MiB // 2, MiB // 2 - 1, 1, 10, 10], strict=True))
    # Running totals: 0.5 MiB, 1 MiB - 1 byte (below), exactly 1 MiB (reached).
    assert select(tasks, "size:1MB", sizes) == tasks[2:]
    # One byte more of room keeps that task too.
    sizes[tasks[2].id] = 0
    assert select(tasks, "size:1MB", sizes) == tasks[3:]


def test_size_with_a_single_task_at_the_limit_removes_everything():
    tasks = [task(age=timedelta(hours=h)) for h in range(3)]
    sizes = {tasks[0].id: MiB, tasks[1].id: 1, tasks[2].id: 1}
    assert select(tasks, "size:1MB", sizes) == tasks


def test_size_with_decimal_and_bit_units():
    tasks = [task(age=timedelta(hours=h)) for h in range(3)]
    sizes = {tasks[0].id: 10**6 // 8, tasks[1].id: 10**6 // 8, tasks[2].id: 1}
    # 1Mb = 125000 bytes: the first task alone reaches it.
    assert select(tasks, "size:1Mb", sizes) == tasks
    assert select(tasks, "size:2Mb", sizes) == tasks[1:]
    assert select(tasks, "size:0.25MB", {**sizes, tasks[0].id: MiB // 4 - 1}) == tasks[1:]


def test_size_stops_measuring_once_the_limit_is_reached():
    tasks = [task(age=timedelta(hours=h)) for h in range(6)]
    measured = []

    def measure(t: Task) -> int:
        measured.append(t)
        return MiB // 2

    policy = parse_purge_policy("size:1MB")
    assert tasks_to_purge(tasks, policy, now=NOW, workspace_size=measure) == tasks[1:]
    assert measured == tasks[:2]


def test_selection_is_lazy_and_keeps_the_input_order():
    tasks = [task(age=timedelta(hours=h)) for h in range(4)]
    selected = history.iter_tasks_to_purge(
        iter(tasks), PurgePolicy(PurgeKind.LAST, 1, "last:1"), now=NOW, workspace_size=len
    )
    assert next(selected) is tasks[1]
    assert list(selected) == tasks[2:]


# --- Removal -------------------------------------------------------------------------------


@pytest.fixture
def purged_instance(db, data_dir) -> Instance:
    """An instance of its own, with a private data root for its task workspaces."""
    return InstanceFactory(id="purged")


def remaining(instance: Instance) -> list[Task]:
    return list(Task.objects.filter(instance=instance).order_by("-submission"))


def purge(instance: Instance, text: str, **options) -> history.PurgeReport:
    return purge_history(instance, parse_purge_policy(text), now=NOW, **options)


def test_purge_removes_rows_and_workspaces_of_selected_tasks(purged_instance):
    tasks = [
        make_task(purged_instance, hours_ago=h, size=100 * (h + 1), workspace=True)
        for h in range(4)
    ]
    report = purge(purged_instance, "last:1")
    assert remaining(purged_instance) == tasks[:1]
    assert Path(tasks[0].place).is_dir()
    assert not any(Path(t.place).exists() for t in tasks[1:])
    assert (report.removed, report.bytes_freed) == (3, 200 + 300 + 400)
    assert report.failed == [] and report.workspaces_skipped == []
    # The purged_instance directory itself stays.
    assert Path(tasks[0].place).parent.is_dir()


def test_pending_and_running_tasks_are_never_purged(purged_instance):
    pending = make_task(
        purged_instance, hours_ago=1000, state=TaskState.PENDING, size=10, workspace=True
    )
    running = make_task(
        purged_instance, hours_ago=2000, state=TaskState.RUNNING, size=10, workspace=True
    )
    finished = make_task(purged_instance, hours_ago=1, size=10, workspace=True)
    for text in ("last:0", "each:0", "older:1h", "size:0MB"):
        purge(purged_instance, text)
    assert set(remaining(purged_instance)) == {pending, running}
    assert Path(pending.place).is_dir() and Path(running.place).is_dir()
    assert not Path(finished.place).exists()


def test_purge_only_touches_the_given_instance(purged_instance):
    other = InstanceFactory(id="other")
    mine = make_task(purged_instance, hours_ago=1, workspace=True)
    theirs = make_task(other, hours_ago=1, workspace=True)
    report = purge(purged_instance.id, "last:0")
    assert report.instance == "purged" and report.removed == 1
    assert remaining(other) == [theirs] and Path(theirs.place).is_dir()
    assert not Path(mine.place).exists()


def test_symlinks_inside_a_workspace_are_not_followed(purged_instance, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    precious = outside / "precious.txt"
    precious.write_bytes(b"x" * 5000)
    doomed = make_task(purged_instance, hours_ago=2, size=10, workspace=True)
    place = Path(doomed.place)
    (place / "build" / "escape-dir").symlink_to(outside, target_is_directory=True)
    (place / "escape-file").symlink_to(precious)
    make_task(purged_instance, hours_ago=1, workspace=True)
    assert workspace_size(place) == 10
    report = purge(purged_instance, "last:1")
    assert report.bytes_freed == 10
    assert not os.path.lexists(place)
    assert precious.read_bytes() == b"x" * 5000


def test_a_workspace_that_is_a_symlink_is_unlinked_not_followed(purged_instance, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    doomed = make_task(purged_instance, hours_ago=1)
    Path(doomed.place).parent.mkdir(parents=True)
    Path(doomed.place).symlink_to(outside, target_is_directory=True)
    assert workspace_size(doomed.place) == 0
    report = purge(purged_instance, "last:0")
    assert report.removed == 1 and report.bytes_freed == 0
    assert not os.path.lexists(doomed.place)
    assert (outside / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "place",
    [
        "{tmp}/elsewhere/{id}",
        "{root}/{id}/../../../elsewhere/{id}",
        "{root}/../other/{id}",
        "{root}",
        "{root}/..",
        "relative/{id}",
    ],
)
def test_workspaces_outside_the_instance_root_are_left_alone(
    purged_instance, tmp_path, data_dir, place
):
    doomed = make_task(purged_instance, hours_ago=1)
    root = data_dir / "workspaces" / purged_instance.id
    path = place.format(tmp=tmp_path, root=root, id=doomed.id)
    (tmp_path / "elsewhere" / str(doomed.id)).mkdir(parents=True)
    (tmp_path / "elsewhere" / str(doomed.id) / "data").write_text("keep me")
    (data_dir / "workspaces" / "other" / str(doomed.id)).mkdir(parents=True)
    root.mkdir(parents=True, exist_ok=True)
    Task.objects.filter(pk=doomed.pk).update(place=path)
    report = purge(purged_instance, "last:0")
    # The row goes (its history entry is purged) but nothing outside the root is touched.
    assert remaining(purged_instance) == []
    assert report.workspaces_skipped == [str(doomed.id)]
    assert (tmp_path / "elsewhere" / str(doomed.id) / "data").read_text() == "keep me"
    assert (data_dir / "workspaces" / "other" / str(doomed.id)).is_dir()
    assert root.is_dir()


def test_missing_workspaces_count_zero_bytes(purged_instance):
    make_task(purged_instance, hours_ago=1)
    report = purge(purged_instance, "last:0")
    assert (report.removed, report.bytes_freed) == (1, 0)
    assert remaining(purged_instance) == []


def test_a_workspace_that_cannot_be_removed_keeps_its_row(purged_instance, monkeypatch):
    stuck, removable = (
        make_task(purged_instance, hours_ago=2, workspace=True),
        make_task(purged_instance, hours_ago=3, workspace=True),
    )
    real_remove = history._remove_workspace

    def remove(path: Path) -> None:
        if path.name == str(stuck.id):
            raise PermissionError(13, "Permission denied", str(path))
        real_remove(path)

    monkeypatch.setattr(history, "_remove_workspace", remove)
    lines: list[str] = []
    report = purge(purged_instance, "last:0", log=lines.append)
    assert remaining(purged_instance) == [stuck]
    assert not Path(removable.place).exists()
    assert report.failed == [str(stuck.id)] and report.removed == 1
    assert any("unable to remove workspace" in line for line in lines)
    assert "could not be removed, rows kept" in report.summary()


def _deletes_of_tasks(captured: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith('DELETE FROM "tasks_task" ')
    ]


def test_purge_deletes_in_batches_with_one_delete_per_batch(purged_instance):
    tasks = [make_task(purged_instance, hours_ago=h, size=1, workspace=True) for h in range(5)]
    with CaptureQueriesContext(connection) as captured:
        report = purge(purged_instance, "last:0", batch_size=2)
    assert report.removed == 5 and report.bytes_freed == 5
    assert remaining(purged_instance) == []
    assert not any(Path(t.place).exists() for t in tasks)
    assert len(_deletes_of_tasks(captured)) == 3


def test_the_number_of_queries_per_batch_does_not_grow_with_the_batch(purged_instance):
    other = InstanceFactory(id="bigger")
    for h in range(3):
        make_task(purged_instance, hours_ago=h)
    for h in range(30):
        make_task(other, hours_ago=h)
    counts = []
    for target, batch_size in ((purged_instance, 3), (other, 30)):
        with CaptureQueriesContext(connection) as captured:
            assert purge(target, "last:0", batch_size=batch_size).removed == batch_size
        counts.append(len(captured))
    assert counts[0] == counts[1], counts


def test_dry_run_removes_nothing_and_reports_what_it_would(purged_instance):
    tasks = [make_task(purged_instance, hours_ago=h, size=7, workspace=True) for h in range(3)]
    lines: list[str] = []
    with CaptureQueriesContext(connection) as captured:
        report = purge(purged_instance, "last:1", dry_run=True, log=lines.append)
    assert not any(q["sql"].startswith("DELETE") for q in captured.captured_queries)
    assert remaining(purged_instance) == tasks
    assert all(Path(t.place).is_dir() for t in tasks)
    assert (report.dry_run, report.removed, report.bytes_freed) == (True, 2, 14)
    assert sum("would remove task" in line for line in lines) == 2
    assert lines[-1] == report.summary()
    assert "would remove 2 task(s), 14 bytes" in report.summary()


def test_size_policy_on_real_workspaces(purged_instance):
    newest = make_task(purged_instance, hours_ago=1, size=MiB // 2, workspace=True)
    boundary = make_task(purged_instance, hours_ago=2, size=MiB // 2, workspace=True)
    oldest = make_task(purged_instance, hours_ago=3, size=1, workspace=True)
    report = purge(purged_instance, "size:1MB")
    assert remaining(purged_instance) == [newest]
    assert report.bytes_freed == MiB // 2 + 1
    assert not Path(boundary.place).exists() and not Path(oldest.place).exists()


def test_purge_logs_to_the_module_logger_by_default(purged_instance, caplog):
    make_task(purged_instance, hours_ago=1, workspace=True)
    with caplog.at_level("INFO", logger="tasks.history"):
        purge(purged_instance, "last:0")
    assert "removed 1 task(s)" in caplog.text


def test_report_str_is_its_summary(purged_instance):
    make_task(purged_instance, hours_ago=1, size=3, workspace=True)
    report = purge(purged_instance, "last:0")
    assert (
        str(report)
        == report.summary()
        == ("instance purged (last:0): removed 1 task(s), 3 bytes (0.000 MiB)")
    )


def test_batch_size_must_be_positive(purged_instance):
    with pytest.raises(ValueError, match="batch_size"):
        purge(purged_instance, "last:0", batch_size=0)


# --- The command ---------------------------------------------------------------------------


def test_purge_command_uses_the_policy_from_settings_on_every_instance(purged_instance, settings):
    other = InstanceFactory(id="other")
    settings.FATBUILDR_TASKS_PURGE = "last:1"
    for h in range(3):
        make_task(purged_instance, hours_ago=h, size=10, workspace=True)
        make_task(other, hours_ago=h, size=20, workspace=True)
    output = run_command("tasks", "purge")
    assert "instance other (last:1): removed 2 task(s), 40 bytes" in output
    assert "instance purged (last:1): removed 2 task(s), 20 bytes" in output
    assert len(remaining(purged_instance)) == len(remaining(other)) == 1


def test_purge_command_on_chosen_instances_with_a_policy(purged_instance):
    other = InstanceFactory(id="other")
    third = InstanceFactory(id="third")
    for target in (purged_instance, other, third):
        make_task(target, hours_ago=1, workspace=True)
    output = run_command(
        "tasks", "purge", "--instance", "purged", "--instance", "other", "--policy", "last:0"
    )
    assert output.splitlines() == [
        "instance purged (last:0): removed 1 task(s), 0 bytes (0.000 MiB)",
        "instance other (last:0): removed 1 task(s), 0 bytes (0.000 MiB)",
    ]
    assert remaining(purged_instance) == remaining(other) == []
    assert len(remaining(third)) == 1


def test_purge_command_dry_run_and_verbose(purged_instance):
    tasks = [make_task(purged_instance, hours_ago=h, size=3, workspace=True) for h in range(2)]
    output = run_command("tasks", "purge", "--policy", "last:1", "--dry-run", verbosity=2)
    assert f"would remove task {tasks[1].id}" in output
    assert output.strip().endswith("would remove 1 task(s), 3 bytes (0.000 MiB)")
    assert remaining(purged_instance) == tasks


def test_purge_command_batch_size(purged_instance):
    for h in range(5):
        make_task(purged_instance, hours_ago=h, workspace=True)
    with CaptureQueriesContext(connection) as captured:
        run_command("tasks", "purge", "--policy", "last:0", "--batch-size", "2")
    assert len(_deletes_of_tasks(captured)) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--policy", "last:many"), "invalid value 'many' for purge policy last"),
        (("--policy", "keep:3"), "unknown purge policy 'keep'"),
        (("--instance", "nope"), "instance nope not found"),
        (("--batch-size", "0"), "--batch-size must be at least 1"),
    ],
)
def test_purge_command_errors(purged_instance, args, message):
    with pytest.raises(CommandError, match=message):
        run_command("tasks", "purge", *args)


def test_purge_command_refuses_a_bad_policy_in_settings(purged_instance, settings):
    settings.FATBUILDR_TASKS_PURGE = "forever"
    with pytest.raises(CommandError, match="invalid purge policy 'forever'"):
        run_command("tasks", "purge")


# --- The daily job -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_daily_job_queues_a_history_purge_task_that_purges_with_the_setting(
    data_dir, settings, monkeypatch
):
    from tasks import engine
    from tasks.tasks import purge_histories

    sent = []
    monkeypatch.setattr(engine, "enqueue_message", sent.append)
    settings.FATBUILDR_TASKS_PURGE = "last:1"
    instance = InstanceFactory(id="purged")
    old = [make_task(instance, hours_ago=h, workspace=True) for h in (1, 2, 3)]

    purge_histories()  # What beat runs daily.
    job = Task.objects.get(instance=instance, name=TaskName.HISTORY_PURGE)
    assert sent == [job.pk]
    assert engine.execute(str(job.pk)) is True
    job.refresh_from_db()
    assert job.result == TaskResult.SUCCESS
    # The newest finished task stays (the purge itself was running, so not counted).
    assert set(remaining(instance)) == {job, old[0]}
    assert b"removed 2 task(s)" in job.journal_path.read_bytes()

"""`POST /{instance}/build`: what fatbuildrctl sends is queued, anything else refused cleanly.

Archives are built the way fatbuildrctl builds them (compat §2.6): the
definition directory as an xz tarball with arcname ".", each source as
`<id>-<version>.tar.xz` with one top folder. A refused submission answers an
Error object and leaves no task and no file behind. No worker runs here: the
tests use the `db` fixture, whose transaction never commits, so no task
message is sent unless a test runs the on-commit callbacks itself.
"""

import uuid
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.parsers import MultiPartParser
from rest_framework.test import APIClient

from accounts.policy import _load
from builds import services
from fatbuildr_site.exceptions import domain_error_status
from tasks.models import Task, TaskLock, TaskName, workspace_path
from tests.build_requests import (
    BUILD,
    FIELDS,
    FOOX_YML,
    UNVERSIONED_YML,
    assert_refused_cleanly,
    build_url,
    definition_tarball,
    files_under,
    post_build,
    raw_multipart,
    source_archive,
)
from tests.helpers import assert_error

pytestmark = pytest.mark.usefixtures("fresh_policy_cache")


# --- Success -------------------------------------------------------------------------------


def test_build_is_queued_with_its_uploads_in_the_workspace(
    builder, default_instance, data_dir, tmp_path, sent, django_capture_on_commit_callbacks
):
    tarball = definition_tarball(tmp_path)
    source = source_archive(tmp_path)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_build(builder, tarball, sources={"hello": source})

    assert response.status_code == 200, response.content
    assert set(response.json()) == {"task"}
    task = Task.objects.get(pk=uuid.UUID(response.json()["task"]))
    assert sent == [task.pk]
    assert (task.name, task.user, task.format, task.distribution, task.derivative) == (
        TaskName.ARTIFACT_BUILD, "builder", "deb", "bookworm", "main"
    )  # fmt: skip
    assert (task.artifact, task.architectures) == ("hello", ["x86_64"])
    assert (task.author, task.email, task.message) == (
        "John Doe", "john.doe@example.org", "Test build"
    )  # fmt: skip

    workspace = workspace_path(default_instance.pk, task.pk)
    assert task.place == str(workspace)
    assert workspace.is_relative_to(data_dir)
    saved_source = workspace / "upload" / "sources" / "hello" / "hello-2.10.tar.xz"
    assert task.archives == [{"id": "hello", "path": str(saved_source)}]
    assert saved_source.read_bytes() == source.read_bytes()
    # Saved under the server's name whatever the client called it, and never extracted.
    assert services.uploaded_tarball(workspace) == workspace / "upload" / "artifact.tar"
    assert (workspace / "upload" / "artifact.tar").read_bytes() == tarball.read_bytes()
    assert files_under(workspace) == {saved_source, workspace / "upload" / "artifact.tar"}
    assert (workspace / "upload").stat().st_mode & 0o077 == 0

    locks = set(TaskLock.objects.filter(task=task).values_list("resource", "exclusive"))
    assert locks == {
        ("artifact:default:deb:bookworm:main:hello", True),
        ("environment:default:deb:bookworm:x86_64", False),
    }
    wire = builder.get(f"/default/tasks/{task.pk}.json").json()
    assert wire["archives"] == [{"id": "hello", "path": str(saved_source)}]
    assert wire["architectures"] == ["x86_64"] and wire["state"] == "pending"


def test_build_without_sources_takes_the_declared_version(builder, tmp_path, data_dir):
    response = post_build(builder, definition_tarball(tmp_path), message="")
    assert response.status_code == 200, response.content
    task = Task.objects.get()
    assert (task.archives, task.message) == ([], "")


def test_every_architecture_holds_its_build_environment(builder, tmp_path, settings):
    settings.FATBUILDR_HOST_ARCHITECTURE = "aarch64"
    response = post_build(
        builder, definition_tarball(tmp_path), architectures="x86_64,aarch64,x86_64"
    )
    assert response.status_code == 200, response.content
    task = Task.objects.get()
    assert task.architectures == ["x86_64", "aarch64"]
    shared = TaskLock.objects.filter(task=task, exclusive=False).values_list("resource", flat=True)
    assert set(shared) == {
        "environment:default:deb:bookworm:x86_64",
        "environment:default:deb:bookworm:aarch64",
    }


def test_derivative_build_of_an_artifact_that_accepts_it(builder, tmp_path):
    response = post_build(
        builder, definition_tarball(tmp_path, FOOX_YML), distribution="bookworm", derivative="foox"
    )
    assert response.status_code == 200, response.content
    locks = TaskLock.objects.filter(task=Task.objects.get(), exclusive=True)
    assert list(locks.values_list("resource", flat=True)) == [
        "artifact:default:deb:bookworm:foox:hello"
    ]


def test_unversioned_artifact_builds_from_its_uploaded_main_source(builder, tmp_path):
    tarball = definition_tarball(tmp_path, UNVERSIONED_YML)
    response = post_build(builder, tarball, sources={"hello": source_archive(tmp_path)})
    assert response.status_code == 200, response.content


def test_unversioned_artifact_needs_its_main_source(builder, tmp_path, data_dir, sent):
    response = post_build(builder, definition_tarball(tmp_path, UNVERSIONED_YML))
    assert_error(response, 400, "source/hello")
    assert_refused_cleanly(data_dir, sent)


def test_build_in_mono_instance_mode(builder, mono_mode, tmp_path):
    response = post_build(builder, definition_tarball(tmp_path), url="/build")
    assert response.status_code == 200, response.content
    assert Task.objects.get().instance_id == "default"


def test_source_file_name_is_reduced_to_its_basename(builder, tmp_path, data_dir):
    fields = dict(FIELDS)
    body, content_type = raw_multipart(
        fields,
        [
            (
                "tarball",
                "../../fatbuildr-artifact.tar.xz",
                definition_tarball(tmp_path).read_bytes(),
            ),
            ("source/hello", "../../hello-2.10.tar.xz", source_archive(tmp_path).read_bytes()),
        ],
    )
    response = builder.generic("POST", build_url(), body, content_type=content_type)
    assert response.status_code == 200, response.content
    task = Task.objects.get()
    path = Path(task.archives[0]["path"])
    assert path == Path(task.place) / "upload" / "sources" / "hello" / "hello-2.10.tar.xz"
    assert path.is_file()
    assert all(saved.is_relative_to(task.place) for saved in files_under(data_dir))


# --- Fields --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*FIELDS])
def test_missing_field_is_refused(builder, tmp_path, data_dir, sent, name):
    response = post_build(builder, definition_tarball(tmp_path), **{name: None})
    assert_error(response, 400, f"Missing field {name}")
    assert_refused_cleanly(data_dir, sent)


@pytest.mark.parametrize("name", [name for name in FIELDS if name != "message"])
def test_empty_field_is_refused(builder, tmp_path, data_dir, sent, name):
    response = post_build(builder, definition_tarball(tmp_path), **{name: ""})
    assert_error(response, 400, f"Missing field {name}")
    assert_refused_cleanly(data_dir, sent)


def test_missing_tarball_is_refused(builder, data_dir, sent):
    assert_error(post_build(builder, None), 400, "Missing field tarball")
    assert_refused_cleanly(data_dir, sent)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"artifact": "../hello"}, "Invalid artifact name ../hello"),
        ({"artifact": ".hello"}, "Invalid artifact name .hello"),
        ({"architectures": "x86_64,"}, "Invalid architectures list"),
        ({"user_name": "John\nDoe"}, "Field user_name holds a control character"),
        ({"message": "nul \x00 byte"}, "Field message holds a NUL or invalid character"),
        ({"user_email": "x" * 256}, "Field user_email is longer than 255 characters"),
    ],
)
def test_malformed_field_is_refused(builder, tmp_path, data_dir, sent, overrides, message):
    response = post_build(builder, definition_tarball(tmp_path), **overrides)
    assert_error(response, 400, message)
    assert_refused_cleanly(data_dir, sent)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"format": "zip"}, "Format zip not supported by instance pipelines"),
        ({"distribution": "bookworm2"}, "Distribution bookworm2 not found in deb pipelines"),
        # el8 exists, but in the rpm pipelines.
        ({"distribution": "el8"}, "Distribution el8 not found in deb pipelines"),
        (
            {"derivative": "nope"},
            "Derivative nope not found in deb pipelines for distribution bookworm",
        ),
        ({"architectures": "sparc"}, "Architecture sparc not found in instance pipelines"),
        ({"architectures": "x86_64,sparc"}, "Architecture sparc not found in instance pipelines"),
    ],
)
def test_unknown_pipeline_item_is_404(builder, tmp_path, data_dir, sent, overrides, message):
    response = post_build(builder, definition_tarball(tmp_path), **overrides)
    assert response.status_code == 404
    assert response.json() == {"error": message}
    assert_refused_cleanly(data_dir, sent)


# --- Permissions and methods ---------------------------------------------------------------


def test_anonymous_cannot_build_under_the_vendor_policy(default_instance, data_dir, tmp_path, sent):
    response = post_build(APIClient(), definition_tarball(tmp_path))
    assert response.status_code == 403
    assert response.json() == {"error": "anonymous role is not allowed to perform action build"}
    assert_refused_cleanly(data_dir, sent)


def test_user_outside_the_build_roles_cannot_build(
    default_instance, data_dir, tmp_path, client_for, sent
):
    response = post_build(client_for(default_instance, "mallory"), definition_tarball(tmp_path))
    assert response.status_code == 403
    assert response.json() == {"error": "user mallory is not allowed to perform action build"}
    assert_refused_cleanly(data_dir, sent)


def test_anonymous_build_is_submitted_as_anonymous(
    default_instance, data_dir, tmp_path, settings, sent
):
    policy = tmp_path / "policy.acl"
    policy.write_text("[roles]\nanonymous\n\n[anonymous]\nactions=build\n")
    settings.FATBUILDR_POLICY = policy
    _load.cache_clear()
    response = post_build(APIClient(), definition_tarball(tmp_path))
    assert response.status_code == 200, response.content
    assert Task.objects.get().user == "anonymous"


def test_get_is_405_for_a_builder_and_403_for_anonymous(builder, default_instance):
    # Upstream's catch-all answered 404 here (compat §1.2); a 405 names the real mistake.
    assert_error(builder.get(build_url()), 405)
    response = APIClient().get(build_url())
    assert response.status_code == 403
    assert "build" in response.json()["error"]


def test_json_body_is_refused(builder, data_dir, sent):
    assert_error(builder.post(build_url(), FIELDS, format="json"), 415)
    assert_refused_cleanly(data_dir, sent)


def test_malformed_multipart_is_an_error_object(builder, data_dir, sent):
    response = builder.generic(
        "POST", build_url(), b"garbage", content_type="multipart/form-data; boundary="
    )
    assert_error(response, 400)
    assert_refused_cleanly(data_dir, sent)


# --- Sizes ---------------------------------------------------------------------------------


def test_request_larger_than_the_limit_is_refused_before_reading(
    builder, tmp_path, data_dir, sent, settings, monkeypatch
):
    settings.FATBUILDR_BUILD_UPLOAD_MAX_SIZE = 1000

    def must_not_run(*args, **kwargs):
        raise AssertionError("the body was read")

    monkeypatch.setattr(MultiPartParser, "parse", must_not_run)
    response = post_build(builder, definition_tarball(tmp_path))
    assert_error(response, 413, "Build submission larger than 1000 bytes")
    assert_refused_cleanly(data_dir, sent)


def test_uploads_larger_than_the_limit_are_refused_without_content_length(
    default_instance, data_dir, settings, sent
):
    settings.FATBUILDR_BUILD_UPLOAD_MAX_SIZE = 10
    with pytest.raises(services.SubmissionError, match="larger than 10 bytes") as error:
        services.submit_build(
            default_instance,
            user="builder",
            build=BUILD,
            tarball=SimpleUploadedFile("t.tar.xz", b"x" * 11),
            sources={},
        )
    assert domain_error_status(error.value) == 400
    assert_refused_cleanly(data_dir, sent)


def test_workspace_is_removed_when_the_task_cannot_be_queued(
    default_instance, data_dir, tmp_path, monkeypatch, sent
):
    def broken_submit(*args, **kwargs):
        raise RuntimeError("database down")

    monkeypatch.setattr(services, "submit", broken_submit)
    with pytest.raises(RuntimeError):
        services.submit_build(
            default_instance,
            user="builder",
            build=BUILD,
            tarball=SimpleUploadedFile("t.tar.xz", definition_tarball(tmp_path).read_bytes()),
            sources={},
        )
    assert_refused_cleanly(data_dir, sent)

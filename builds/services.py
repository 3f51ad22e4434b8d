"""Build submission: check a `POST /{instance}/build` request and queue its `artifact build` task.

Everything that can be refused is refused before a task exists: the form
fields by `builds.api.serializers`, then here the fields against the instance
pipelines, the uploaded archives against hostile
members, and the artifact definition against the requested format and
derivative. Uploads are saved (never extracted) into the workspace of the
task-to-be, so the worker finds them by path, as fatbuildrd does upstream
(compat §1.5, §2.6); a refused submission leaves nothing behind.
"""

import os
import re
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from builds import environments
from builds.archives import ArchiveError, check_archive, read_member, single_top_folder
from builds.definition import (
    DEFINITION_FILES,
    MAX_DEFINITION_SIZE,
    ArtifactDefinition,
    DefinitionError,
    parse_definition,
)
from builds.locks import build_locks, environment_lock
from fatbuildr_site.errors import InvalidError, NotFoundError
from instances.models import Instance
from instances.selectors import get_pipelines
from registry.publishing import Target
from tasks.engine import submit
from tasks.models import Task, TaskName
from tasks.workspaces import instance_workspaces

# Artifact names and source ids end up in file names, lock names and package names.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
# Versions of uploaded sources: what Debian and RPM versions use, `~` included
# (fatbuildrctl names pre-releases `1.0~rc1`), nothing that means something in a path.
VERSION_PATTERN = r"[A-Za-z0-9][A-Za-z0-9.+~_-]*"
SOURCE_EXTENSION_PATTERN = r"\.tar(?:\.(?:xz|gz|bz2))?"

UPLOAD_FOLDER = "upload"
# The client's name for the tarball is never used: it says nothing the server needs.
TARBALL_NAME = "artifact.tar"
SOURCES_FOLDER = "sources"


class SubmissionError(InvalidError):
    """A build submission was refused: malformed, or not buildable as sent."""


class UnknownBuildTarget(NotFoundError):
    """The submission names a format, distribution, derivative or architecture the
    instance pipelines do not declare."""


@dataclass(frozen=True)
class BuildRequest:
    """The text fields of a submission, checked by `builds.api.serializers`."""

    format: str
    distribution: str
    derivative: str
    artifact: str
    architectures: list[str]
    author: str
    email: str
    message: str


def submit_build(
    instance: Instance,
    *,
    user: str,
    build: BuildRequest,
    tarball: UploadedFile | None,
    sources: Mapping[str, UploadedFile],
) -> Task:
    """Check a build submission, save its uploads in the task workspace and queue the task.

    Raises SubmissionError (malformed or refused request) or UnknownBuildTarget
    (format, distribution, derivative or architecture unknown to the pipelines).
    On any failure the workspace is removed and no Task row exists.
    """
    if tarball is None:
        raise SubmissionError("Missing field tarball")
    source_names = {
        source_id: _source_file_name(source_id, upload) for source_id, upload in sources.items()
    }
    _check_upload_size([tarball, *sources.values()])
    environment = _check_pipelines(instance, build)

    # The id comes first: the uploads go straight into the workspace of the task.
    task_id = uuid.uuid4()
    # In a folder shared with the workers, who may have made it (tasks/workspaces.py).
    workspace = instance_workspaces(instance.pk) / str(task_id)
    workspace.mkdir(mode=0o755)
    try:
        upload = workspace / UPLOAD_FOLDER
        # The uploads are the submitter's files: only the server reads them.
        upload.mkdir(mode=0o700)
        tarball_path = uploaded_tarball(workspace)
        _save_upload(tarball, tarball_path)
        source_paths: dict[str, Path] = {}
        for source_id, upload_file in sources.items():
            folder = upload / SOURCES_FOLDER / source_id
            folder.mkdir(mode=0o700, parents=True)
            source_paths[source_id] = folder / source_names[source_id]
            _save_upload(upload_file, source_paths[source_id])

        definition = _check_tarball(tarball_path, build)
        for source_id, path in source_paths.items():
            _check_source(source_id, path)
        if definition.main_version(build.derivative) is None and build.artifact not in sources:
            raise SubmissionError(
                f"artifact {build.artifact} declares no version for derivative "
                f"{build.derivative}: its main source must be uploaded as "
                f"source/{build.artifact}"
            )

        target = Target(instance, build.format, build.distribution, build.derivative)
        # A distribution without a build environment (osi) has no build root to share.
        locked_architectures = build.architectures if environment else []
        return submit(
            instance,
            TaskName.ARTIFACT_BUILD,
            id=task_id,
            user=user,
            locks=build_locks(target, build.artifact, environment or "", locked_architectures),
            format=build.format,
            distribution=build.distribution,
            derivative=build.derivative,
            artifact=build.artifact,
            architectures=build.architectures,
            archives=[
                {"id": source_id, "path": str(path)} for source_id, path in source_paths.items()
            ],
            author=build.author,
            email=build.email,
            message=build.message,
        )
    except BaseException:
        shutil.rmtree(workspace, ignore_errors=True)
        raise


def uploaded_tarball(workspace: Path) -> Path:
    """Where the definition tarball of a build waits in its workspace: the task carries
    only its sources in `archives` (upstream's field set), so the place is a convention."""
    return workspace / UPLOAD_FOLDER / TARBALL_NAME


def uploaded_source_version(source_id: str, file_name: str) -> str | None:
    """The version in the name of an uploaded source, `<id>-<version>.tar[.xz|.gz|.bz2]`;
    None when the name is not of that shape.

    Upstream takes the main version of a build from the name of the uploaded
    main source (compat §2.6), so the name is part of the contract.
    """
    match = re.fullmatch(
        rf"{re.escape(source_id)}-(?P<version>{VERSION_PATTERN}?){SOURCE_EXTENSION_PATTERN}",
        file_name,
    )
    return match["version"] if match else None


# --- Uploads and pipelines ---------------------------------------------------------------


def _source_file_name(source_id: str, upload: UploadedFile) -> str:
    """The name an uploaded source is saved under: the basename of the client's name,
    which must be `<id>-<version>.tar[.<compression>]`."""
    if not NAME_PATTERN.fullmatch(source_id):
        raise SubmissionError(f"Invalid source id {source_id}")
    # Django already reduces upload names to a basename; this does not rely on it.
    file_name = os.path.basename((upload.name or "").replace("\\", "/"))
    if file_name in {"", ".", ".."} or uploaded_source_version(source_id, file_name) is None:
        raise SubmissionError(
            f"Invalid file name {file_name!r} of source {source_id}: expected "
            f"{source_id}-<version>.tar.xz (or .tar, .tar.gz, .tar.bz2)"
        )
    return file_name


def _check_upload_size(uploads: list[UploadedFile]) -> None:
    """The view refuses large bodies by their Content-Length; this also covers requests
    that did not announce one."""
    limit = settings.FATBUILDR_BUILD_UPLOAD_MAX_SIZE
    if sum(upload.size or 0 for upload in uploads) > limit:
        raise SubmissionError(f"Build submission larger than {limit} bytes")


def _check_pipelines(instance: Instance, request: BuildRequest) -> str | None:
    """Refuse (UnknownBuildTarget) what the instance pipelines do not declare; the
    distribution's build environment otherwise (None for formats without one)."""
    pipelines = get_pipelines(instance)
    if request.format not in pipelines.formats:
        raise UnknownBuildTarget(f"Format {request.format} not supported by instance pipelines")
    distribution = pipelines.distribution(request.distribution)
    if distribution is None or distribution.format != request.format:
        raise UnknownBuildTarget(
            f"Distribution {request.distribution} not found in {request.format} pipelines"
        )
    if request.derivative not in pipelines.dist_derivatives(distribution):
        raise UnknownBuildTarget(
            f"Derivative {request.derivative} not found in {request.format} pipelines for "
            f"distribution {request.distribution}"
        )
    known = instance.pipeline_architectures()
    for architecture in request.architectures:
        if architecture not in known:
            raise UnknownBuildTarget(f"Architecture {architecture} not found in instance pipelines")
    return distribution.environment


# --- Saving and checking uploads ---------------------------------------------------------


def _save_upload(upload: UploadedFile, path: Path) -> None:
    """Copy an upload chunk by chunk into a new file: never over an existing file, never
    through a symlink."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(path, flags, 0o600), "wb") as output:
        for chunk in upload.chunks():
            output.write(chunk)


def _check_tarball(path: Path, request: BuildRequest) -> ArtifactDefinition:
    """The artifact definition in the tarball, once the tarball is known to be harmless and
    the definition to build *request*."""
    try:
        names = check_archive(path, label="tarball")
        # First found in the order of preference (compat §7.1; meta.yml is deprecated).
        member = next((name for name in DEFINITION_FILES if name in names), None)
        text = (
            read_member(path, member, max_size=MAX_DEFINITION_SIZE, label="tarball")
            if member
            else None
        )
    except ArchiveError as error:
        raise SubmissionError(str(error)) from error
    if text is None:
        raise SubmissionError(f"tarball has no {DEFINITION_FILES[0]}")
    try:
        definition = parse_definition(text, artifact=request.artifact)
    except DefinitionError as error:
        raise SubmissionError(str(error)) from error
    if not definition.supports(request.format):
        raise SubmissionError(f"artifact {request.artifact} has no {request.format} packaging")
    if not definition.accepts(request.derivative):
        raise SubmissionError(
            f"artifact {request.artifact} does not accept derivative {request.derivative}"
        )
    return definition


def _check_source(source_id: str, path: Path) -> None:
    label = f"source {source_id}"
    try:
        names = check_archive(path, label=label)
    except ArchiveError as error:
        raise SubmissionError(str(error)) from error
    # Builds enter the source tree through its one top folder (compat §2.6).
    if single_top_folder(names) is None:
        raise SubmissionError(f"{label} archive has no single top folder")


def queue_environment_task(
    instance: Instance, name: str, *, fmt: str, environment: str, architecture: str, user: str
) -> Task:
    """Queue an `image build environment creation|update` task; it holds the environment
    exclusively, so it waits for the builds using it and the builds after it wait."""
    environments.check_environment_name(environment)
    return submit(
        instance,
        name,
        user=user,
        locks=[environment_lock(instance, fmt, environment, architecture, exclusive=True)],
        format=fmt,
        environment=environment,
        architecture=architecture,
    )

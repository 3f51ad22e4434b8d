"""Step 1 of a build, in the worker: a build request becomes what a build works on.

Extract the definition, gather the sources (uploaded, or downloaded once into
the instance cache with their checksums), choose the version (`+buildN` when
that version is published already). The format's builder (builds/formats/)
then lays out the build folder from this `Build`.
"""

import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from builds import environments
from builds.archives import ArchiveError, extract_archive, single_top_folder
from builds.definition import ArtifactDefinition, DefinitionError, load_definition
from builds.environments import BuildEnvironment
from builds.sandbox import BUILD_MOUNT, Sandbox
from builds.services import uploaded_source_version, uploaded_tarball
from builds.sources import SourceError, cached_source
from builds.versions import ArtifactVersion
from instances.models import Instance
from instances.selectors import get_pipelines
from registry.constants import SOURCE_ARCHITECTURE
from registry.indexing import find_derivative
from registry.models import Artifact
from registry.publishing import Target
from tasks.runner import CommandError

Log = Callable[..., None]
Run = Callable[..., None]

ARCHIVE_SUFFIXES = (".tar.xz", ".tar.gz", ".tar.bz2", ".tar")


@dataclass(frozen=True)
class BuildRequest:
    """An `artifact build` task in plain values: what the build handler hands the builders
    (they never see the Task row or the tasks engine)."""

    instance: Instance
    format: str
    distribution: str
    derivative: str
    artifact: str
    architectures: tuple[str, ...]
    archives: tuple[tuple[str, Path], ...]  # the uploaded sources: (source id, file)
    author: str
    email: str
    message: str
    task_id: str
    workspace: Path

    @property
    def target(self) -> Target:
        return Target(self.instance, self.format, self.distribution, self.derivative)


class TemplateVersion:
    """`version` in templates: prints as the main version, with the parts as attributes
    (compat §7.3)."""

    def __init__(self, version: ArtifactVersion) -> None:
        self.main = version.main
        self.release = version.release
        self.dist = version.dist
        self.major = version.major
        self.full = version.full
        self.fullrelease = version.fullrelease

    def __str__(self) -> str:
        return self.main


@dataclass
class Source:
    """One source archive of the build: its id, file and version."""

    id: str
    path: Path
    version: str

    @property
    def suffix(self) -> str:
        return next(s for s in ARCHIVE_SUFFIXES if self.path.name.endswith(s))

    @property
    def component(self) -> str:
        """Folder and orig component name of a supplementary source (dpkg-source rules)."""
        return re.sub(r"[^A-Za-z0-9-]", "", self.id.replace("/", "-")) or "extra"


@dataclass
class Build:
    """What a build works on, decided before anything is built, with the journal (*log*)
    and the command runner (*run*) of its task."""

    request: BuildRequest
    target: Target
    definition: ArtifactDefinition
    definition_dir: Path
    environment: str
    architectures: list[str]
    sources: list[Source]  # the main source first
    version: ArtifactVersion
    workspace: Path
    log: Log
    run: Run
    previous: Artifact | None = None

    @property
    def artifact(self) -> str:
        return self.definition.name

    @property
    def build_dir(self) -> Path:
        return self.workspace / "build"

    def template_context(self) -> dict[str, object]:
        return {
            "pkg": self.artifact,
            "version": TemplateVersion(self.version),
            "distribution": self.target.distribution,
            "derivative": self.target.derivative,
        }

    def sandbox(self, architecture: str) -> Sandbox:
        env = self.build_environment(architecture)
        return Sandbox(
            root=env.root,
            place=self.workspace / f"sandbox-{architecture}",
            build_dir=self.build_dir,
            uid=settings.FATBUILDR_BUILD_UID,
            label=env.name,
        )

    def run_sandboxed(
        self,
        sandbox: Sandbox,
        cmd: list[str],
        *,
        privileged: bool = False,
        cwd: str = BUILD_MOUNT,
        env: dict[str, str] | None = None,
        read_only: list[tuple[Path, str]] | None = None,
    ) -> None:
        """Run a command in the sandbox, named in the journal by its own command line."""
        self.run(
            sandbox.command(
                cmd, privileged=privileged, cwd=cwd, env=env, read_only=read_only or ()
            ),
            display=sandbox.describe(cmd, privileged=privileged),
        )

    def run_report(self, sandbox: Sandbox, cmd: list[str], what: str) -> None:
        """Run a checker (lintian, rpmlint) whose findings are reported, not fatal."""
        try:
            self.run_sandboxed(sandbox, cmd)
        except CommandError:
            self.log(f"{what} reported issues (above); they do not fail the build", logging.WARNING)

    def build_environment(self, architecture: str) -> BuildEnvironment:
        return BuildEnvironment(
            self.target.instance.pk, self.target.format, self.environment, architecture
        )

    def entry_lines(self) -> list[str]:
        """The lines of the new changelog entry."""
        request = self.request
        message = request.message.strip() or f"Build of {self.artifact} {self.version.full}"
        return [message, f"Fatbuildr task {request.task_id}@{self.target.instance.name}"]


def prepare(request: BuildRequest, *, run: Run, log: Log) -> Build:
    """Extract the definition, gather the sources and choose the version."""
    target = request.target
    workspace = request.workspace
    pipelines = get_pipelines(target.instance)
    distribution = pipelines.distribution(target.distribution)
    environment = environments.environment_of(target.instance, target.format, target.distribution)
    assert distribution is not None, "environment_of refuses a distribution not in pipelines"
    definition_dir = workspace / "definition"
    shutil.rmtree(definition_dir, ignore_errors=True)
    definition_dir.mkdir()
    log("Extracting the artifact definition")
    extract_archive(uploaded_tarball(workspace), definition_dir, label="tarball")
    definition = load_definition(definition_dir, artifact=request.artifact)
    if not definition.supports(target.format):
        raise DefinitionError(f"artifact {request.artifact} has no {target.format} packaging")
    if not definition.accepts(target.derivative):
        raise DefinitionError(
            f"artifact {request.artifact} does not accept derivative {target.derivative}"
        )
    sources = gather_sources(request, definition, log=log)
    derivative = find_derivative(
        target.instance, target.format, target.distribution, target.derivative
    )
    previous = None
    if derivative is not None:
        previous = derivative.artifacts.filter(
            name=definition.name, architecture=SOURCE_ARCHITECTURE
        ).first()
    version = ArtifactVersion(
        sources[0].version, definition.release(target.format), distribution.tag or ""
    ).next_build([previous.version] if previous else [])
    log(
        f"Building {definition.name} {version.full} for {target} on "
        f"{', '.join(request.architectures)}"
        + (f" (published version: {previous.version})" if previous else "")
    )
    return Build(
        request=request,
        target=target,
        definition=definition,
        definition_dir=definition_dir,
        environment=environment,
        architectures=list(request.architectures),
        sources=sources,
        version=version,
        workspace=workspace,
        log=log,
        run=run,
        previous=previous,
    )


def gather_sources(
    request: BuildRequest, definition: ArtifactDefinition, *, log: Log
) -> list[Source]:
    """The uploaded sources, then the declared ones not uploaded (from the cache); main first."""
    workspace = request.workspace.resolve()
    uploads: dict[str, Path] = {}
    for source_id, path in request.archives:
        if not path.resolve().is_relative_to(workspace) or path.is_symlink():
            raise SourceError(f"source {source_id}: not in the task workspace")
        uploads[source_id] = path
    derivative = request.derivative
    versions = definition.source_versions(derivative)
    sources: list[Source] = []
    for source_id, path in uploads.items():
        version = uploaded_source_version(source_id, path.name)
        if version is None:
            raise SourceError(f"source {source_id}: unexpected file name {path.name}")
        sources.append(Source(source_id, path, version))
    for spec in definition.sources:
        if spec.id in uploads:
            continue
        version = versions.get(spec.id)
        if version is None:
            raise DefinitionError(f"source {spec.id} has no version for derivative {derivative}")
        path = cached_source(definition, spec, version, instance=request.instance.pk, log=log)
        sources.append(Source(spec.id, path, version))
    main = [s for s in sources if s.id == definition.name]
    if not main:
        raise SourceError(
            f"no source archive for {definition.name}: upload source/{definition.name} or "
            "declare its `source` URL in artifact.yml"
        )
    for source in sources:
        if not source.path.name.endswith(ARCHIVE_SUFFIXES):
            raise SourceError(f"source {source.id}: {source.path.name} is not a tar archive")
    return main + [s for s in sources if s.id != definition.name]


def unpack_source(source: Source, destination: Path, scratch: Path) -> None:
    """Extract a source archive so that its content (below its top folder) is *destination*."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    names = extract_archive(source.path, scratch, label=f"source {source.id}")
    top = single_top_folder(names)
    content = scratch / top if top else scratch
    if content.is_symlink() or not content.is_dir():
        raise ArchiveError(f"source {source.id}: its top folder is not a folder")
    content.rename(destination)
    shutil.rmtree(scratch, ignore_errors=True)


def copy_definition_folder(source: Path, destination: Path) -> None:
    """Copy a folder of the definition; links are refused: the worker writes into the copy."""
    if not source.is_dir() or source.is_symlink():
        raise DefinitionError(f"the definition has no {source.name}/ folder")
    for folder, dirs, files in os.walk(source):
        for name in dirs + files:
            if os.path.islink(os.path.join(folder, name)):
                relative = os.path.relpath(os.path.join(folder, name), source.parent)
                raise DefinitionError(f"{relative}: links are not allowed in packaging files")
    shutil.copytree(source, destination)


def remove_path(path: Path) -> None:
    """Remove a file, link or folder without following links."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)

"""The `artifact build` task: definition and sources to signed, published packages.

Steps (compat §7, DESIGN Builds), each in the task journal:
1. prepare, in the worker: extract the definition, gather the sources
   (uploaded, or downloaded once into the instance cache with their
   checksums), choose the version (`+buildN` when that version is published
   already), lay out the build folder;
2. build, in the sandbox (builds/sandbox.py): build dependencies installed
   with the network as root, then the artifact's own code without network as
   an unprivileged uid, one overlay of the build root per architecture;
3. collect the results out of the build folder without following any link
   the build may have planted, then sign and publish them through the
   registry service, in the worker.

The workspace holds `upload/` (what the request sent), `definition/`,
`build/` (the only folder a sandbox sees, mounted at /build), `output/`
(the checked results) and `sandbox-<arch>/` (overlay layers, discarded).
"""

import glob
import logging
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from debian import deb822
from django.conf import settings

from builds import environments
from builds.archives import (
    ArchiveError,
    check_archive,
    content_digest,
    extract_archive,
    single_top_folder,
)
from builds.definition import (
    ArtifactDefinition,
    DefinitionError,
    load_definition,
    patches,
)
from builds.environments import BuildEnvironment, BuildEnvironmentError
from builds.sandbox import BUILD_MOUNT, Sandbox, SandboxError
from builds.services import uploaded_source_version, uploaded_tarball
from builds.sources import SourceError, cached_source
from builds.templates import TemplateError, render_template, render_tree
from builds.versions import ArtifactVersion
from registry import publishing
from registry.constants import SOURCE_ARCHITECTURE
from registry.indexing import find_derivative
from registry.keyrings import armored_public_key
from registry.models import Artifact
from registry.packages import PackageError, debian_changelog_from_tarball
from registry.publishing import PublishError, Target
from registry.repositories.rpm import RpmRepository, rpm_file_name
from registry.selectors import get_pipelines
from registry.signing import SigningError
from registry.storage import deb_architecture, format_root
from tasks.engine import TaskContext, TaskFailure
from tasks.runner import CommandError, command_environment

# Where a deb build's dependency installation sees the instance's own deb registry.
INSTANCE_REPOSITORY = "/srv/fatbuildr/registry"
ARCHIVE_SUFFIXES = (".tar.xz", ".tar.gz", ".tar.bz2", ".tar")
# Errors of the build's own making: they end the task with their message.
BUILD_ERRORS = (
    ArchiveError,
    DefinitionError,
    SourceError,
    TemplateError,
    BuildEnvironmentError,
    SandboxError,
    PublishError,
    SigningError,
    PackageError,
)


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
    """What a build works on, decided before anything is built."""

    context: TaskContext
    target: Target
    definition: ArtifactDefinition
    definition_dir: Path
    environment: str
    architectures: list[str]
    sources: list[Source]  # the main source first
    version: ArtifactVersion
    workspace: Path
    previous: Artifact | None = None

    @property
    def artifact(self) -> str:
        return self.definition.name

    @property
    def build_dir(self) -> Path:
        return self.workspace / "build"

    @property
    def log(self) -> Callable[..., None]:
        return self.context.log

    @property
    def run(self) -> Callable[..., None]:
        return self.context.run

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

    def build_environment(self, architecture: str) -> BuildEnvironment:
        return BuildEnvironment(
            self.target.instance.pk, self.target.format, self.environment, architecture
        )

    def entry_lines(self) -> list[str]:
        """The lines of the new changelog entry."""
        task = self.context.task
        message = task.message.strip() or f"Build of {self.artifact} {self.version.full}"
        return [message, f"Fatbuildr task {task.pk}@{self.target.instance.name}"]


def build_artifact(context: TaskContext) -> None:
    """Handler of `artifact build` tasks."""
    task = context.task
    target = Target(context.instance, task.format, task.distribution, task.derivative)
    try:
        publishing.check_target(target)
        build = prepare(context, target)
        builder = DebBuilder(build) if target.format == "deb" else RpmBuilder(build)
        for architecture in build.architectures:
            environments.check_architecture(architecture)
        for architecture in build.architectures:
            environments.ensure(
                build.build_environment(architecture), run=context.run, log=context.log
            )
        builder.prepare()
        builder.build()
        outputs = collect_outputs(build.build_dir, build.workspace / "output", builder.results())
        publishing.publish(
            target, outputs, run=context.run, log=context.log, workspace=context.workspace
        )
    except BUILD_ERRORS as error:
        raise TaskFailure(str(error)) from error
    context.log(f"Artifact {build.artifact} {build.version.full} built and published in {target}")


# --- Preparation ------------------------------------------------------------------------


def prepare(context: TaskContext, target: Target) -> Build:
    """Extract the definition, gather the sources and choose the version."""
    task = context.task
    workspace = context.workspace
    pipelines = get_pipelines(target.instance)
    distribution = pipelines.distribution(target.distribution)
    environment = environments.environment_of(target.instance, target.format, target.distribution)
    definition_dir = workspace / "definition"
    shutil.rmtree(definition_dir, ignore_errors=True)
    definition_dir.mkdir()
    context.log("Extracting the artifact definition")
    extract_archive(uploaded_tarball(workspace), definition_dir, label="tarball")
    definition = load_definition(definition_dir, artifact=task.artifact)
    if not definition.supports(target.format):
        raise DefinitionError(f"artifact {task.artifact} has no {target.format} packaging")
    if not definition.accepts(target.derivative):
        raise DefinitionError(
            f"artifact {task.artifact} does not accept derivative {target.derivative}"
        )
    sources = gather_sources(context, definition, target)
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
    context.log(
        f"Building {definition.name} {version.full} for {target} on "
        f"{', '.join(task.architectures)}"
        + (f" (published version: {previous.version})" if previous else "")
    )
    return Build(
        context=context,
        target=target,
        definition=definition,
        definition_dir=definition_dir,
        environment=environment,
        architectures=list(task.architectures),
        sources=sources,
        version=version,
        workspace=workspace,
        previous=previous,
    )


def gather_sources(
    context: TaskContext, definition: ArtifactDefinition, target: Target
) -> list[Source]:
    """The uploaded sources, then the declared ones not uploaded (from the cache); main first."""
    workspace = context.workspace.resolve()
    uploads: dict[str, Path] = {}
    for archive in context.task.archives:
        path = Path(archive["path"])
        if not path.resolve().is_relative_to(workspace) or path.is_symlink():
            raise SourceError(f"source {archive['id']}: not in the task workspace")
        uploads[archive["id"]] = path
    versions = definition.source_versions(target.derivative)
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
            raise DefinitionError(
                f"source {spec.id} has no version for derivative {target.derivative}"
            )
        path = cached_source(
            definition, spec, version, instance=target.instance.pk, log=context.log
        )
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


def run_report(build: Build, sandbox: Sandbox, cmd: list[str], what: str) -> None:
    """Run a checker (lintian, rpmlint) whose findings are reported, not fatal."""
    try:
        build.run_sandboxed(sandbox, cmd)
    except CommandError:
        build.log(f"{what} reported issues (above); they do not fail the build", logging.WARNING)


# --- deb ------------------------------------------------------------------------------------


class DebBuilder:
    """dpkg-buildpackage in the sandbox (compat §7.5, without cowbuilder)."""

    def __init__(self, build: Build) -> None:
        self.build_ = build
        self.changes: list[Path] = []

    @property
    def source_dir_name(self) -> str:
        build = self.build_
        return f"{build.artifact}-{build.version.main}"

    def prepare(self) -> None:
        build = self.build_
        build_dir = build.build_dir
        shutil.rmtree(build_dir, ignore_errors=True)
        build_dir.mkdir()
        source_dir = build_dir / self.source_dir_name
        main, *extra = build.sources
        build.log(f"Extracting source {main.path.name}")
        unpack_source(main, source_dir, build.workspace / "unpack")
        upstream = f"{build.artifact}_{build.version.main}"
        self.place_orig(main, build_dir / f"{upstream}.orig{main.suffix}")
        for source in extra:
            build.log(f"Extracting supplementary source {source.path.name}")
            target = source_dir / source.component
            remove_path(target)
            unpack_source(source, target, build.workspace / "unpack")
            self.place_orig(
                source, build_dir / f"{upstream}.orig-{source.component}{source.suffix}"
            )
        debian = source_dir / "debian"
        remove_path(debian)
        copy_definition_folder(build.definition_dir / "deb", debian)
        render_tree(debian, **build.template_context())
        self.add_patches(debian)
        self.write_changelog(debian / "changelog")

    def place_orig(self, source: Source, orig: Path) -> None:
        """The orig tarball of a source, reusing the published one of the same name.

        One upstream version has one orig tarball in the pool (reprepro refuses
        another file of the same name), but clients remake the tarball of a
        source tree at every build: the published file is reused when it holds
        the same tree, and a different tree under the same version is refused.
        """
        published = self.published_files(glob.escape(orig.name))
        if not published:
            shutil.copyfile(source.path, orig)
            return
        same = content_digest(published[0], label=f"published {orig.name}") == content_digest(
            source.path, label=f"source {source.id}"
        )
        if not same:
            raise SourceError(
                f"source {source.id} {source.version} differs from the published {orig.name}: "
                "a changed source needs a new upstream version"
            )
        self.build_.log(f"Using the published {orig.name} (same content as the source)")
        shutil.copyfile(published[0], orig)

    def published_files(self, pattern: str) -> list[Path]:
        """Files of this source package in the pool of the target's component."""
        build = self.build_
        pool = format_root(build.target.instance.pk, "deb") / "pool" / build.target.derivative
        return sorted(pool.glob(f"*/{glob.escape(build.artifact)}/{pattern}"))

    def add_patches(self, debian: Path) -> None:
        build = self.build_
        selected = patches(build.definition_dir, build.version.main)
        if not selected:
            return
        folder = debian / "patches"
        remove_path(folder)
        folder.mkdir()
        for patch in selected:
            shutil.copyfile(patch, folder / patch.name)
        (folder / "series").write_text("".join(f"{p.name}\n" for p in selected))
        build.log(f"Patches: {', '.join(p.name for p in selected)}")

    def write_changelog(self, changelog: Path) -> None:
        """The published entries of this source, then the new one, written by debchange."""
        build = self.build_
        remove_path(changelog)
        previous = self.previous_changelog()
        task = build.context.task
        env = command_environment(
            {
                "DEBEMAIL": task.email,
                "DEBFULLNAME": task.author,
                "EDITOR": "true",
                "VISUAL": "true",
            }
        )
        first, *more = build.entry_lines()
        common = [
            "debchange",
            "--no-conf",
            "--changelog",
            str(changelog),
            "--newversion",
            build.version.full,
            "--distribution",
            build.target.distribution,
            "--force-distribution",
        ]
        if previous:
            build.log("Changelog: the published entries, then a new one")
            fd = os.open(changelog, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "w") as handle:
                handle.write(previous)
            build.run([*common, "--force-bad-version", first], env=env)
        else:
            build.run([*common, "--create", "--package", build.artifact, first], env=env)
        for line in more:
            build.run(
                ["debchange", "--no-conf", "--changelog", str(changelog), "--append", line],
                env=env,
            )

    def previous_changelog(self) -> str | None:
        """debian/changelog of the published source of this artifact, if any."""
        build = self.build_
        if build.previous is None:
            return None
        version = build.previous.version.partition(":")[2] or build.previous.version
        stem = glob.escape(f"{build.artifact}_{version}")
        for pattern in (f"{stem}.debian.tar.*", f"{stem}.tar.*"):
            for tarball in self.published_files(pattern):
                return debian_changelog_from_tarball(tarball)
        build.log(
            f"Published source {build.previous.version} not found in the pool", logging.WARNING
        )
        return None

    def build(self) -> None:
        build = self.build_
        for index, architecture in enumerate(build.architectures):
            sandbox = build.sandbox(architecture)
            sandbox.prepare()
            try:
                build.log(f"Installing the build dependencies ({architecture})")
                install = (
                    "apt-get update -q && apt-get build-dep -y -q "
                    f"./{shlex.quote(self.source_dir_name)}"
                )
                build.run_sandboxed(
                    sandbox,
                    ["sh", "-c", install],
                    privileged=True,
                    env={"DEBIAN_FRONTEND": "noninteractive"},
                    read_only=self.instance_repository(sandbox),
                )
                sandbox.hand_over_build_dir()
                # The first architecture builds the source and the arch-independent packages.
                scope = "-sa" if index == 0 else "-B"
                build.log(f"Building the packages ({architecture})")
                build.run_sandboxed(
                    sandbox,
                    ["dpkg-buildpackage", "-us", "-uc", scope],
                    cwd=f"{BUILD_MOUNT}/{self.source_dir_name}",
                )
                changes = self.changes_file(architecture)
                build.log(f"Running lintian on {changes.name}")
                run_report(
                    build, sandbox, ["lintian", "-I", "--show-overrides", changes.name], "lintian"
                )
                self.changes.append(changes)
            finally:
                sandbox.discard()

    def instance_repository(self, sandbox: Sandbox) -> list[tuple[Path, str]]:
        """Make the instance's own registry an apt source of the sandbox, so that build
        dependencies can be packages published before (upstream's D10derivatives hook):
        the distribution's components from the build's derivative down to main, trusted
        through the instance key.

        apt reads a copy of the distribution's indexes taken under the registry lock (a
        publication rewrites them file by file: read live, they can disagree), and the
        pool itself, read-only.
        """
        build = self.build_
        target = build.target
        registry = format_root(target.instance.pk, "deb")
        key = armored_public_key(target.instance)
        dists = registry / "dists" / target.distribution
        if not key or not (dists / "InRelease").is_file():
            return []
        snapshot = sandbox.place / "registry"
        remove_path(snapshot)
        (snapshot / "pool").mkdir(parents=True)
        with publishing.registry_snapshot_lock(target.instance, "deb", target.distribution):
            shutil.copytree(dists, snapshot / "dists" / target.distribution, symlinks=True)
        for folder, _, files in os.walk(snapshot):
            # apt reads as its unprivileged _apt user.
            os.chmod(folder, 0o755)
            for name in files:
                path = os.path.join(folder, name)
                if not os.path.islink(path):
                    os.chmod(path, 0o644)
        chain = get_pipelines(target.instance).recursive_derivatives(target.derivative)
        apt = sandbox.upper / "etc" / "apt"
        for folder in ("keyrings", "sources.list.d"):
            (apt / folder).mkdir(parents=True, exist_ok=True)
        (apt / "keyrings" / "fatbuildr.asc").write_text(key)
        (apt / "sources.list.d" / "fatbuildr.list").write_text(
            f"deb [signed-by=/etc/apt/keyrings/fatbuildr.asc] file:{INSTANCE_REPOSITORY} "
            f"{target.distribution} {' '.join(chain)}\n"
        )
        build.log(f"Build dependencies may come from this instance's {target} ({', '.join(chain)})")
        return [(snapshot, INSTANCE_REPOSITORY), (registry / "pool", f"{INSTANCE_REPOSITORY}/pool")]

    def changes_file(self, architecture: str) -> Path:
        build = self.build_
        name = f"{build.artifact}_{build.version.full}_{deb_architecture(architecture)}.changes"
        return build.build_dir / name

    def results(self) -> list[Path]:
        return self.changes


# --- rpm ------------------------------------------------------------------------------------


class RpmBuilder:
    """rpmbuild in the sandbox, with Debian's rpm toolchain (compat §7.6, without mock).

    The build root is a Debian tree: BuildRequires name EL packages that do not
    exist there, so rpmbuild runs with --nodeps and the root's own toolchain.
    """

    def __init__(self, build: Build) -> None:
        self.build_ = build

    @property
    def spec_name(self) -> str:
        return f"{self.build_.artifact}.spec"

    def prepare(self) -> None:
        build = self.build_
        build_dir = build.build_dir
        shutil.rmtree(build_dir, ignore_errors=True)
        for folder in ("SOURCES", "SPECS", "BUILD", "RPMS", "SRPMS"):
            (build_dir / folder).mkdir(parents=True)
        sources_dir = build_dir / "SOURCES"
        packaging = build.workspace / "rpm"
        remove_path(packaging)
        copy_definition_folder(build.definition_dir / "rpm", packaging)
        spec_template = packaging / self.spec_name
        if not spec_template.is_file():
            raise DefinitionError(f"the definition has no rpm/{self.spec_name}")
        template_text = spec_template.read_text()
        spec_template.unlink()
        render_tree(packaging, **build.template_context())
        source_lines, prep_lines = [], []
        for number, source in enumerate(build.sources):
            shutil.copyfile(source.path, sources_dir / source.path.name)
            source_lines.append(f"Source{number}: {source.path.name}")
            top = single_top_folder(check_archive(source.path, label=f"source {source.id}"))
            if number == 0:
                prep_lines.append(f"%setup -q -n {top}" if top else "%setup -q -c")
            else:
                prep_lines.append(f"%setup -q -T -D -a {number}")
        number = len(build.sources)
        for extra in sorted(p for p in packaging.iterdir() if p.is_file()):
            shutil.copyfile(extra, sources_dir / extra.name)
            source_lines.append(f"Source{number}: {extra.name}")
            number += 1
        selected = patches(build.definition_dir, build.version.main)
        patch_lines = []
        for index, patch in enumerate(selected):
            shutil.copyfile(patch, sources_dir / patch.name)
            patch_lines.append(f"Patch{index}: {patch.name}")
        spec = render_template(
            template_text,
            name=f"rpm/{self.spec_name}",
            **build.template_context(),
            release=build.version.fullrelease,
            sources="\n".join(source_lines),
            prep_sources="\n".join(prep_lines),
            patches="\n".join(patch_lines),
            prep_patches="%autopatch -p1" if selected else "",
            changelog=self.changelog(),
        )
        (build_dir / "SPECS" / self.spec_name).write_text(spec)

    def changelog(self) -> str:
        """The %changelog section: the new entry, then the entries of the published source
        rpm (the template places the whole section, as upstream)."""
        build = self.build_
        task = build.context.task
        date = datetime.now(UTC).strftime("%a %b %d %Y")
        lines = ["%changelog", f"* {date} {task.author} <{task.email}> - {build.version.full}"]
        lines += [f"- {line}" for line in build.entry_lines()]
        text = "\n".join(lines) + "\n"
        previous = self.previous_changelog()
        if previous:
            build.log("Changelog: a new entry, then the published ones")
            text += "\n" + previous
        return text

    def previous_changelog(self) -> str | None:
        build = self.build_
        if build.previous is None:
            return None
        repository = RpmRepository(build.target.instance, run=build.run)
        srpm = (
            repository.folder(build.target, SOURCE_ARCHITECTURE)
            / "Packages"
            / rpm_file_name(build.artifact, build.previous.version, SOURCE_ARCHITECTURE)
        )
        if not srpm.is_file():
            build.log(f"Published source {srpm.name} not found", logging.WARNING)
            return None
        result = subprocess.run(
            ["rpm", "-qp", "--changelog", "--nosignature", str(srpm)],
            capture_output=True,
            text=True,
            env=command_environment(),
            check=False,
        )
        if result.returncode != 0:
            raise PackageError(f"{srpm.name}: unreadable changelog: {result.stderr.strip()}")
        return result.stdout.strip() + "\n"

    def build(self) -> None:
        build = self.build_
        buildargs = shlex.split(build.definition.buildargs("rpm"))
        for index, architecture in enumerate(build.architectures):
            sandbox = build.sandbox(architecture)
            sandbox.prepare()
            try:
                sandbox.hand_over_build_dir()
                # The first architecture builds the source rpm too.
                scope = "-ba" if index == 0 else "-bb"
                build.log(f"Building the packages ({architecture})")
                build.run_sandboxed(
                    sandbox,
                    [
                        "rpmbuild",
                        scope,
                        "--nodeps",
                        "--target",
                        architecture,
                        "--define",
                        f"_topdir {BUILD_MOUNT}",
                        *buildargs,
                        f"SPECS/{self.spec_name}",
                    ],
                )
                build.log("Running rpmlint")
                packages = [str(p.relative_to(build.build_dir)) for p in self.results()]
                run_report(build, sandbox, ["rpmlint", "--info", *packages], "rpmlint")
            finally:
                sandbox.discard()

    def results(self) -> list[Path]:
        build_dir = self.build_.build_dir
        return sorted(build_dir.glob("SRPMS/*.src.rpm")) + sorted(build_dir.glob("RPMS/*/*.rpm"))


# --- Results --------------------------------------------------------------------------------


def collect_outputs(build_dir: Path, output: Path, results: list[Path]) -> list[Path]:
    """Copy the results into `output/`, refusing links and anything outside the build folder.

    The build folder was writable by the build's own code: a result, or a file
    a .changes names, may be a link to a file of the worker's host. Only
    regular files reached without any link are copied, with O_NOFOLLOW.
    """
    remove_path(output)
    output.mkdir()
    wanted: list[Path] = []
    for result in results:
        wanted.append(result)
        if result.suffix == ".changes":
            _check_regular(build_dir, result)
            wanted += _listed_files(result)
    copies: dict[str, Path] = {}
    for path in wanted:
        _check_regular(build_dir, path)
        copy = output / path.name
        if path.name not in copies:
            _copy_no_follow(path, copy)
            copies[path.name] = copy
    if not results:
        raise PublishError("the build produced no package")
    return [copies[r.name] for r in results]


def _listed_files(changes: Path) -> list[Path]:
    """Every file a .changes uploads (the .dsc's tarballs included), as plain names."""
    with changes.open(encoding="utf-8", errors="replace") as handle:
        entries = deb822.Changes(handle).get("Files", [])
    files = []
    for entry in entries:
        name = entry["name"]
        if not name or "/" in name or name in (".", ".."):
            raise PublishError(f"{changes.name}: refusing file name {name!r}")
        files.append(changes.parent / name)
    if not files:
        raise PublishError(f"{changes.name}: lists no file")
    return files


def _check_regular(build_dir: Path, path: Path) -> None:
    relative = path.relative_to(build_dir)
    current = build_dir
    for part in relative.parts:
        current = current / part
        if current.is_symlink():
            raise PublishError(f"build result {relative} goes through a link: refused")
    if not path.is_file():
        raise PublishError(f"build result {relative} is not a regular file")


def _copy_no_follow(source: Path, destination: Path) -> None:
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as reader, open(destination, "xb") as writer:
        shutil.copyfileobj(reader, writer)

"""deb builds: dpkg-buildpackage in the sandbox (compat §7.5, without cowbuilder).

The first architecture builds `-sa` (source, arch-independent and
arch-dependent packages), the others `-B`. The changelog of a rebuild starts
from `debian/changelog` of the published source; lintian findings are
reported, not fatal.
"""

import glob
import logging
import os
import re
import shlex
import shutil
from pathlib import Path

from builds.archives import content_digest
from builds.definition import packaging_text, patches
from builds.environments import BuildEnvironment
from builds.formats.base import Builder
from builds.preparation import Build, Source, copy_definition_folder, remove_path, unpack_source
from builds.sandbox import BUILD_MOUNT, Sandbox
from builds.sources import SourceError
from builds.templates import render_tree
from instances.selectors import get_pipelines
from registry.constants import ArtifactFormat
from registry.keyrings import armored_public_key
from registry.packages import debian_changelog_from_tarball
from registry.publishing import registry_snapshot_lock
from registry.storage import deb_architecture, format_root
from tasks.runner import command_environment

# Where a deb build's dependency installation sees the instance's own deb registry.
INSTANCE_REPOSITORY = "/srv/fatbuildr/registry"
_ARCHITECTURE_LINE = re.compile(r"^Architecture:[ \t]*(.*?)\s*$", re.IGNORECASE | re.MULTILINE)


class DebBuilder(Builder):
    """dpkg-buildpackage in the sandbox (compat §7.5, without cowbuilder)."""

    format = ArtifactFormat.DEB
    root_packages = ("debhelper", "fakeroot", "lintian")

    @classmethod
    def root_suite(cls, env: BuildEnvironment) -> str:
        # deb environments are named after their suite.
        return env.environment

    @classmethod
    def architecture_dependent(cls, folder: Path, artifact: str) -> bool:
        """Some `Architecture:` line of deb/control[.j2] is not `all`."""
        for filename in ("control", "control.j2"):
            text = packaging_text(folder, f"deb/{filename}")
            if text is None:
                continue
            if any(value != "all" for value in _ARCHITECTURE_LINE.findall(text)):
                return True
        return False

    def __init__(self, build: Build) -> None:
        super().__init__(build)
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
        copy_definition_folder(build.definition_dir / self.format, debian)
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
        pool = format_root(build.target.instance.pk, self.format) / "pool" / build.target.derivative
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
        env = command_environment(
            {
                "DEBEMAIL": build.request.email,
                "DEBFULLNAME": build.request.author,
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
                build.run_report(
                    sandbox, ["lintian", "-I", "--show-overrides", changes.name], "lintian"
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
        registry = format_root(target.instance.pk, self.format)
        key = armored_public_key(target.instance)
        dists = registry / "dists" / target.distribution
        if not key or not (dists / "InRelease").is_file():
            return []
        snapshot = sandbox.place / "registry"
        remove_path(snapshot)
        (snapshot / "pool").mkdir(parents=True)
        with registry_snapshot_lock(target.instance, self.format, target.distribution):
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

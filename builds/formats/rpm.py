"""rpm builds: rpmbuild in the sandbox, with Debian's rpm toolchain (compat §7.6, without
mock).

The first architecture builds `-ba`, the others `-bb`; the rendered
`changelog` is the whole `%changelog` section (the new entry, then those of
the published source rpm); rpmlint findings are reported, not fatal.
"""

import logging
import re
import shlex
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from builds.archives import check_archive, single_top_folder
from builds.definition import DefinitionError, packaging_text, patches
from builds.environments import BuildEnvironment, host_suite
from builds.formats.base import Builder
from builds.preparation import copy_definition_folder, remove_path
from builds.sandbox import BUILD_MOUNT
from builds.templates import render_template, render_tree
from registry.constants import SOURCE_ARCHITECTURE, ArtifactFormat
from registry.packages import PackageError
from registry.repositories.rpm import RpmRepository, rpm_file_name
from tasks.runner import command_environment

_NOARCH_LINE = re.compile(r"^\s*BuildArch:\s*noarch\s*$", re.IGNORECASE | re.MULTILINE)


class RpmBuilder(Builder):
    """rpmbuild in the sandbox, with Debian's rpm toolchain (compat §7.6, without mock).

    The build root is a Debian tree: BuildRequires name EL packages that do not
    exist there, so rpmbuild runs with --nodeps and the root's own toolchain.
    """

    format = ArtifactFormat.RPM
    root_packages = ("rpm", "rpmlint", "fakeroot")

    @classmethod
    def root_suite(cls, env: BuildEnvironment) -> str:
        return settings.FATBUILDR_RPM_SUITE or host_suite()

    @classmethod
    def architecture_dependent(cls, folder: Path, artifact: str) -> bool:
        """The spec has no `BuildArch: noarch`."""
        text = packaging_text(folder, f"rpm/{artifact}.spec")
        return text is None or not _NOARCH_LINE.search(text)

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
        packaging = build.workspace / self.format
        remove_path(packaging)
        copy_definition_folder(build.definition_dir / self.format, packaging)
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
        request = build.request
        date = datetime.now(UTC).strftime("%a %b %d %Y")
        lines = [
            "%changelog",
            f"* {date} {request.author} <{request.email}> - {build.version.full}",
        ]
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
        buildargs = shlex.split(build.definition.buildargs(self.format))
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
                build.run_report(sandbox, ["rpmlint", "--info", *packages], "rpmlint")
            finally:
                sandbox.discard()

    def results(self) -> list[Path]:
        build_dir = self.build_.build_dir
        return sorted(build_dir.glob("SRPMS/*.src.rpm")) + sorted(build_dir.glob("RPMS/*/*.rpm"))

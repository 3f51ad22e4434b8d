"""The worker-side steps of a build that handle what the build's own code could have written
(builds/preparation.py, builds/outputs.py): results are taken out of the build folder without
following links, definition folders with links are refused, sources unpack below their top
folder."""

import io
import tarfile
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from builds.archives import content_digest
from builds.definition import DefinitionError
from builds.outputs import collect_outputs
from builds.preparation import Source, TemplateVersion, copy_definition_folder, unpack_source
from builds.versions import ArtifactVersion
from registry import publishing
from registry.publishing import PublishError

CHANGES = """Format: 1.8
Source: hello
Version: 1.0-1
Files:
 0123456789abcdef0123456789abcdef 10 utils optional hello_1.0-1.dsc
 0123456789abcdef0123456789abcdef 20 utils optional hello_1.0-1_amd64.deb
"""


@pytest.fixture
def build_dir(tmp_path) -> Path:
    folder = tmp_path / "build"
    folder.mkdir()
    (folder / "hello_1.0-1_amd64.changes").write_text(CHANGES)
    (folder / "hello_1.0-1.dsc").write_text("dsc")
    (folder / "hello_1.0-1_amd64.deb").write_bytes(b"deb")
    return folder


@pytest.fixture
def secret(tmp_path) -> Path:
    path = tmp_path / "secret"
    path.write_text("the worker's secret")
    return path


def collect(build_dir: Path, *names: str) -> list[Path]:
    return collect_outputs(build_dir, build_dir.parent / "output", [build_dir / n for n in names])


def test_results_and_the_files_a_changes_lists_are_copied_out(build_dir):
    (changes,) = collect(build_dir, "hello_1.0-1_amd64.changes")
    output = build_dir.parent / "output"
    assert changes == output / "hello_1.0-1_amd64.changes"
    assert sorted(p.name for p in output.iterdir()) == [
        "hello_1.0-1.dsc",
        "hello_1.0-1_amd64.changes",
        "hello_1.0-1_amd64.deb",
    ]
    assert (output / "hello_1.0-1_amd64.deb").read_bytes() == b"deb"
    assert not any(p.is_symlink() for p in output.iterdir())


@pytest.mark.parametrize("planted", ["hello_1.0-1_amd64.deb", "hello_1.0-1_amd64.changes"])
def test_a_result_replaced_by_a_link_to_a_host_file_is_refused(build_dir, secret, planted):
    (build_dir / planted).unlink()
    (build_dir / planted).symlink_to(secret)
    with pytest.raises(PublishError, match="goes through a link"):
        collect(build_dir, "hello_1.0-1_amd64.changes")
    assert not any(
        p.read_bytes() == secret.read_bytes() for p in (build_dir.parent / "output").iterdir()
    )


def test_a_result_in_a_folder_replaced_by_a_link_is_refused(build_dir, tmp_path):
    outside = tmp_path / "outside" / "RPMS"
    outside.mkdir(parents=True)
    (outside / "hello-1.0-1.x86_64.rpm").write_bytes(b"not ours")
    (build_dir / "RPMS").symlink_to(outside)
    with pytest.raises(PublishError, match="goes through a link"):
        collect(build_dir, "RPMS/hello-1.0-1.x86_64.rpm")


def test_a_changes_naming_a_path_or_nothing_is_refused(build_dir):
    changes = build_dir / "hello_1.0-1_amd64.changes"
    changes.write_text(CHANGES.replace("hello_1.0-1.dsc", "../../etc/passwd"))
    with pytest.raises(PublishError, match="refusing file name"):
        collect(build_dir, changes.name)
    changes.write_text("Format: 1.8\nSource: hello\n")
    with pytest.raises(PublishError, match="lists no file"):
        collect(build_dir, changes.name)


def test_a_missing_result_or_no_result_is_refused(build_dir):
    (build_dir / "hello_1.0-1_amd64.deb").unlink()
    with pytest.raises(PublishError, match="not a regular file"):
        collect(build_dir, "hello_1.0-1_amd64.changes")
    with pytest.raises(PublishError, match="no package"):
        collect(build_dir)


def test_packaging_folders_with_links_are_refused(tmp_path, secret):
    deb = tmp_path / "definition" / "deb"
    deb.mkdir(parents=True)
    (deb / "control").write_text("Source: hello\n")
    copy_definition_folder(deb, tmp_path / "copy")
    assert (tmp_path / "copy" / "control").read_text() == "Source: hello\n"
    # A changelog link would make debchange, run by the worker, write a host file.
    (deb / "changelog").symlink_to(secret)
    with pytest.raises(DefinitionError, match="deb/changelog: links are not allowed"):
        copy_definition_folder(deb, tmp_path / "copy2")
    assert not (tmp_path / "copy2").exists()
    with pytest.raises(DefinitionError, match="no rpm/ folder"):
        copy_definition_folder(tmp_path / "definition" / "rpm", tmp_path / "copy3")


def source_archive(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:xz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_a_source_unpacks_below_its_top_folder(tmp_path):
    archive = source_archive(
        tmp_path / "hello-1.0.tar.xz",
        {"hello-1.0/Makefile": b"all:\n", "hello-1.0/src/hello.c": b"int main;\n"},
    )
    destination = tmp_path / "build" / "hello-1.0"
    destination.parent.mkdir()
    unpack_source(Source("hello", archive, "1.0"), destination, tmp_path / "scratch")
    assert (destination / "Makefile").read_text() == "all:\n"
    assert (destination / "src" / "hello.c").exists()
    assert not (tmp_path / "scratch").exists()


def test_a_supplementary_source_component_keeps_only_safe_characters(tmp_path):
    source = Source("bar_4.5~rc1/extra", tmp_path / "bar-4.5.tar.gz", "4.5")
    assert source.component == "bar45rc1-extra"
    assert source.suffix == ".tar.gz"


def test_templates_print_the_main_version_and_expose_its_parts():
    version = TemplateVersion(ArtifactVersion("2.10", "1", "deb12", 2))
    assert str(version) == "2.10"
    assert (version.full, version.fullrelease, version.major) == (
        "2.10-1.deb12+build2",
        "1.deb12+build2",
        "2",
    )


def test_archives_of_one_tree_have_one_content_digest(tmp_path):
    tree = {"hello-1.0/Makefile": b"all:\n", "hello-1.0/hello.c": b"int main;\n"}
    first = source_archive(tmp_path / "first.tar.xz", tree)
    reordered = dict(reversed(list(tree.items())))
    with tarfile.open(tmp_path / "second.tar.gz", "w:gz") as archive:
        for name, data in reordered.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.uname = len(data), 1_000_000, "someone"
            archive.addfile(info, io.BytesIO(data))
    changed = source_archive(tmp_path / "changed.tar.xz", {**tree, "hello-1.0/hello.c": b"x"})
    digest = content_digest(first, label="first")
    assert content_digest(tmp_path / "second.tar.gz", label="second") == digest
    assert content_digest(changed, label="changed") != digest


def test_the_registry_snapshot_waits_for_a_publication_and_not_for_another_snapshot(
    transactional_db, default_instance, data_dir
):
    """A build copies a distribution's indexes under this lock: never half-way through a
    publication's rewrite of them, and never blocking other builds."""
    events: list[str] = []
    publishing_started, release = threading.Event(), threading.Event()

    def publication() -> None:
        try:
            with publishing.critical_section(
                default_instance, "deb", "bookworm", log=print, run=lambda *a, **k: None
            ):
                publishing_started.set()
                release.wait(10)
                events.append("publication done")
        finally:
            connection.close()

    def snapshot() -> None:
        try:
            with publishing.registry_snapshot_lock(default_instance, "deb", "bookworm"):
                events.append("snapshot")
        finally:
            connection.close()

    publisher = threading.Thread(target=publication)
    publisher.start()
    assert publishing_started.wait(10)
    reader = threading.Thread(target=snapshot)
    reader.start()
    time.sleep(0.5)
    assert events == []  # the snapshot waits for the publication
    release.set()
    publisher.join(10)
    reader.join(10)
    assert events == ["publication done", "snapshot"]

    # Two snapshots at once: the second does not wait for the first.
    with publishing.registry_snapshot_lock(default_instance, "deb", "bookworm"):
        other = threading.Thread(target=snapshot)
        other.start()
        other.join(5)
        assert not other.is_alive()
    assert events[-1] == "snapshot"

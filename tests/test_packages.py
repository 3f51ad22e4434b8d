"""The tiny package builders of tests/packages.py, checked against the real tools.

No database is used. The Debian builds (about 2 s each) are shared by the tests of the module.
"""

import gzip
import io
import re
import shutil
import subprocess
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.packages import (
    DEFAULT_AUTHOR,
    BuiltDeb,
    BuiltRpm,
    ChangelogItem,
    PackageBuildError,
    _run,
    build_deb,
    build_many_debs,
    build_many_rpms,
    build_rpm,
    deb_host_arch,
    rpm_host_arch,
)

JAN_03_2023 = 1672740000  # Tue, 03 Jan 2023 10:00:00 +0000


def run(*args: str | Path, cwd: Path | None = None) -> str:
    return subprocess.run(
        [str(arg) for arg in args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def deb_field(deb: Path, field: str) -> str:
    return run("dpkg-deb", "-f", deb, field).strip()


def dpkg_deb_listing(deb: Path) -> list[tuple[str, str, int]]:
    """``dpkg-deb -c`` as (path, type, size), the root "./" skipped."""
    entries = []
    for line in run("dpkg-deb", "-c", deb).splitlines():
        perms, _owner, size, _date, _time, name = line.split(maxsplit=5)
        name = name.split(" -> ")[0].removeprefix(".").rstrip("/")
        if name:
            kind = {"-": "f", "d": "d", "l": "l", "h": "h"}[perms[0]]
            entries.append((name, kind, int(size)))
    return entries


def changes_files(changes: Path) -> set[str]:
    text = changes.read_text()
    files = text.split("\nFiles:\n", 1)[1].split("\n\n", 1)[0]
    return {line.split()[-1] for line in files.splitlines() if line.startswith(" ")}


def parse_changelog_stanzas(text: str) -> list[dict[str, str]]:
    """Stanzas of ``dpkg-parsechangelog --format rfc822``, continuation lines joined."""
    stanzas = []
    for block in filter(None, text.strip().split("\n\n")):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line.startswith((" ", "\t")):
                fields[key] += "\n" + line
            else:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        stanzas.append(fields)
    return stanzas


@pytest.fixture(scope="module")
def two_revisions(tmp_path_factory) -> tuple[BuiltDeb, BuiltDeb]:
    """hello-fb 1.0-1 and 1.0-2, built concurrently in two workdirs."""
    dirs = [tmp_path_factory.mktemp(f"deb-rev{revision}") for revision in (1, 2)]
    with ThreadPoolExecutor(max_workers=2) as executor:
        first, second = executor.map(
            lambda args: build_deb(args[0], revision=args[1]), zip(dirs, ("1", "2"), strict=True)
        )
    return first, second


@pytest.fixture(scope="module")
def deb(two_revisions) -> BuiltDeb:
    return two_revisions[1]


def test_deb_description(deb: BuiltDeb):
    workdir = deb.changes.parent
    assert deb.source == "hello-fb"
    assert deb.version == "1.0-2"
    assert deb.changes == workdir / f"hello-fb_1.0-2_{deb_host_arch()}.changes"
    assert deb.dsc == workdir / "hello-fb_1.0-2.dsc"
    assert deb.debs == {
        "hello-fb": workdir / f"hello-fb_1.0-2_{deb_host_arch()}.deb",
        "hello-fb-data": workdir / "hello-fb-data_1.0-2_all.deb",
    }
    assert [item.version for item in deb.changelog] == ["1.0-2", "1.0-1"]
    assert deb.changelog[0].author == DEFAULT_AUTHOR
    assert deb.changelog[0].date == JAN_03_2023


def test_deb_control_fields(deb: BuiltDeb):
    main, data = deb.debs["hello-fb"], deb.debs["hello-fb-data"]
    assert deb_field(main, "Package") == "hello-fb"
    assert deb_field(main, "Version") == "1.0-2"
    assert deb_field(main, "Architecture") == deb_host_arch()
    assert deb_field(main, "Maintainer") == DEFAULT_AUTHOR
    assert deb_field(data, "Package") == "hello-fb-data"
    assert deb_field(data, "Architecture") == "all"
    assert deb_field(data, "Source") == "hello-fb"


def test_deb_contents_match_dpkg_deb(deb: BuiltDeb):
    for binary, path in deb.debs.items():
        assert deb.contents[binary] == dpkg_deb_listing(path)
    main = {path: kind for path, kind, _ in deb.contents["hello-fb"]}
    assert main["/usr/bin/hello-fb"] == "f"
    assert main["/usr/share/doc/hello-fb/changelog.Debian.gz"] == "f"
    data = {path: (kind, size) for path, kind, size in deb.contents["hello-fb-data"]}
    assert data["/usr/share/hello-fb/data.txt"] == ("f", len("data of hello-fb 1.0\n"))
    assert data["/usr/share/hello-fb/link"][0] == "l"
    assert "/usr/share/doc/hello-fb-data/changelog.Debian.gz" in data


def test_deb_script_and_changelog_payload(deb: BuiltDeb, tmp_path):
    run("dpkg-deb", "-x", deb.debs["hello-fb"], tmp_path)
    assert run("sh", tmp_path / "usr/bin/hello-fb") == "hello from hello-fb 1.0-2\n"
    run("dpkg-deb", "-x", deb.debs["hello-fb-data"], tmp_path)
    assert (tmp_path / "usr/share/hello-fb/link").readlink() == Path("data.txt")
    shipped = gzip.decompress(
        (tmp_path / "usr/share/doc/hello-fb/changelog.Debian.gz").read_bytes()
    )
    source_tree = deb.changes.parent / "hello-fb-1.0"
    assert shipped.decode() == (source_tree / "debian/changelog").read_text()


def test_deb_changelog_matches_dpkg_parsechangelog(deb: BuiltDeb):
    changelog = deb.changes.parent / "hello-fb-1.0/debian/changelog"
    stanzas = parse_changelog_stanzas(
        run("dpkg-parsechangelog", "-l", changelog, "--all", "--format", "rfc822")
    )
    assert [s["Version"] for s in stanzas] == [item.version for item in deb.changelog]
    assert [int(s["Timestamp"]) for s in stanzas] == [item.date for item in deb.changelog]
    assert [s["Maintainer"] for s in stanzas] == [item.author for item in deb.changelog]
    assert [s["Distribution"] for s in stanzas] == ["bookworm", "bookworm"]
    for stanza, item in zip(stanzas, deb.changelog, strict=True):
        lines = re.findall(r"^ +\* (.*)$", stanza["Changes"], re.MULTILINE)
        assert tuple(lines) == item.changes


def test_deb_changes_lists_full_upload(deb: BuiltDeb):
    files = changes_files(deb.changes)
    assert {
        "hello-fb_1.0-2.dsc",
        "hello-fb_1.0.orig.tar.gz",
        "hello-fb_1.0-2.debian.tar.xz",
        *(path.name for path in deb.debs.values()),
    } <= files
    for name in files:
        assert (deb.changes.parent / name).is_file()
    assert "Distribution: bookworm" in deb.changes.read_text()


def test_deb_orig_tarball_is_the_same_for_every_revision(two_revisions):
    first, second = two_revisions
    orig = "hello-fb_1.0.orig.tar.gz"
    assert (first.changes.parent / orig).read_bytes() == (second.changes.parent / orig).read_bytes()
    with tarfile.open(first.changes.parent / orig) as tar:
        assert sorted(tar.getnames()) == [
            "hello-fb-1.0",
            "hello-fb-1.0/README",
            "hello-fb-1.0/data.txt",
        ]


def test_deb_native_without_data_package_and_custom_changelog(tmp_path):
    changelog = [
        ChangelogItem("2.5", "Alice Doe <alice@example.org>", JAN_03_2023, ("Fix it.", "Ship it.")),
        ChangelogItem("2.4", "Bob <bob@example.org>", JAN_03_2023 - 3600, ("Older.",)),
    ]
    built = build_deb(
        tmp_path,
        "native-fb",
        "2.5",
        distribution="unstable",
        changelog=changelog,
        with_data_package=False,
        native=True,
    )
    assert built.version == "2.5"
    assert list(built.debs) == ["native-fb"]
    assert built.changelog == changelog
    files = changes_files(built.changes)
    assert "native-fb_2.5.tar.xz" in files
    assert not any("orig" in name for name in files)
    assert deb_field(built.debs["native-fb"], "Maintainer") == "Alice Doe <alice@example.org>"
    assert built.contents["native-fb"] == dpkg_deb_listing(built.debs["native-fb"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Hello"}, "package name"),
        ({"name": "x"}, "package name"),
        ({"version": "1.0-1"}, "upstream version"),
        ({"version": "1:1.0"}, "upstream version"),
        ({"revision": "1 2"}, "revision"),
        ({"distribution": "bad dist"}, "distribution"),
        ({"changelog": []}, "at least one entry"),
        (
            {"changelog": [ChangelogItem("9.9-1", DEFAULT_AUTHOR, JAN_03_2023, ("x",))]},
            "not the version built",
        ),
        (
            {"changelog": [ChangelogItem("1.0-1", "nobody", JAN_03_2023, ("x",))]},
            "author",
        ),
        (
            {
                "changelog": [
                    ChangelogItem("1.0-1", DEFAULT_AUTHOR, JAN_03_2023, ("x",)),
                    ChangelogItem("0.9-1", DEFAULT_AUTHOR, JAN_03_2023 + 1, ("x",)),
                ]
            },
            "newest first",
        ),
        (
            {"changelog": [ChangelogItem("1.0-1", DEFAULT_AUTHOR, JAN_03_2023, ("a\nb",))]},
            "changelog line",
        ),
    ],
)
def test_deb_validation(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_deb(tmp_path, **kwargs)
    assert not list(tmp_path.iterdir())


def test_rpm_validation(tmp_path):
    with pytest.raises(ValueError, match="RPM version"):
        build_rpm(tmp_path, version="1.0-1")
    with pytest.raises(ValueError, match="RPM package name"):
        build_rpm(tmp_path, name="-bad")
    with pytest.raises(ValueError, match="not the version built"):
        build_rpm(tmp_path, changelog=[ChangelogItem("1.0", DEFAULT_AUTHOR, 0, ("x",))])


def test_command_failure_carries_the_output_tail():
    with pytest.raises(PackageBuildError, match=r"(?s)exit status 3.*oops"):
        _run(["sh", "-c", "echo oops; exit 3"])


@pytest.fixture(scope="module")
def rpm(tmp_path_factory) -> BuiltRpm:
    return build_rpm(tmp_path_factory.mktemp("rpm"), release="2")


def rpm_query(path: Path, fmt: str) -> str:
    return run("rpm", "-qp", "--qf", fmt, path)


def test_rpm_names_versions_arches(rpm: BuiltRpm):
    assert rpm.name == "hello-fb"
    assert rpm.version == "1.0-2"
    assert set(rpm.binaries) == {"hello-fb", "hello-fb-data"}
    fmt = "%{NAME} %{VERSION}-%{RELEASE} %{ARCH} %{SOURCERPM}"
    main, data = rpm.binaries["hello-fb"], rpm.binaries["hello-fb-data"]
    assert rpm_query(main, fmt) == f"hello-fb 1.0-2 {rpm_host_arch()} hello-fb-1.0-2.src.rpm"
    assert rpm_query(data, fmt) == "hello-fb-data 1.0-2 noarch hello-fb-1.0-2.src.rpm"
    assert rpm.source.name == "hello-fb-1.0-2.src.rpm"
    assert rpm_query(rpm.source, "%{NAME} %{VERSION}-%{RELEASE}") == "hello-fb 1.0-2"
    for path in (main, data):  # AutoReqProv: no, only rpmlib() features
        requires = rpm_query(path, "[%{REQUIRENAME}\n]").splitlines()
        assert all(name.startswith("rpmlib(") for name in requires), requires


def test_rpm_changelog(rpm: BuiltRpm):
    assert run("rpm", "-qp", "--changelog", rpm.binaries["hello-fb"]) == (
        "* Tue Jan 03 2023 Fatbuildr Tests <tests@example.org> - 1.0-2\n"
        "- Build hello-fb 1.0-2 for the tests.\n"
        "- Refresh the data file.\n\n"
        "* Mon Jan 02 2023 Fatbuildr Tests <tests@example.org> - 1.0-1\n"
        "- Initial release.\n\n"
    )
    assert rpm.changelog == [
        ChangelogItem(
            "1.0-2",
            DEFAULT_AUTHOR,
            JAN_03_2023 + 7200,  # rpm keeps the day, at noon
            ("Build hello-fb 1.0-2 for the tests.", "Refresh the data file."),
        ),
        ChangelogItem("1.0-1", DEFAULT_AUTHOR, JAN_03_2023 + 7200 - 86400, ("Initial release.",)),
    ]


def test_rpm_contents(rpm: BuiltRpm):
    fmt = "[%{FILENAMES} %{FILEMODES:perms} %{FILESIZES}\n]"
    for binary, path in rpm.binaries.items():
        expected = []
        for line in rpm_query(path, fmt).splitlines():
            name, perms, size = line.rsplit(" ", 2)
            expected.append((name, "f" if perms[0] == "-" else perms[0], int(size)))
        assert rpm.contents[binary] == expected
    assert rpm.contents["hello-fb"] == [("/usr/bin/hello-fb", "f", 43)]
    assert rpm.contents["hello-fb-data"] == [
        ("/usr/share/hello-fb", "d", 0),
        ("/usr/share/hello-fb/data.txt", "f", len("data of hello-fb 1.0\n")),
        ("/usr/share/hello-fb/link", "l", len("data.txt")),
    ]


def test_rpm_custom_changelog_without_data_package(tmp_path):
    changelog = [
        ChangelogItem("3.1-7", "Alice Doe <alice@example.org>", 1700000000, ("100% done.",)),
        ChangelogItem("3.0-1", "Bob <bob@example.org>", 1600000000, ("First.", "Second.")),
    ]
    built = build_rpm(
        tmp_path, "other-fb", "3.1", "7", changelog=changelog, with_data_package=False
    )
    assert list(built.binaries) == ["other-fb"]
    assert [(i.version, i.author, i.changes) for i in built.changelog] == [
        (i.version, i.author, i.changes) for i in changelog
    ]
    header = run("rpm", "-qp", "--changelog", built.binaries["other-fb"]).splitlines()[0]
    assert header == "* Tue Nov 14 2023 Alice Doe <alice@example.org> - 3.1-7"


@pytest.mark.skipif(shutil.which("dnf") is None, reason="dnf is not installed")
def test_rpms_install_with_dnf_into_an_empty_root(rpm: BuiltRpm, tmp_path):
    root = tmp_path / "root"
    run(
        "dnf", "-y", "-q", f"--installroot={root}", "--releasever=1",
        "--setopt=reposdir=/nonexistent", "--disablerepo=*", "--setopt=install_weak_deps=False",
        "install", *rpm.binaries.values(),
    )  # fmt: skip
    assert (root / "usr/bin/hello-fb").read_text() == (
        '#!/bin/sh\necho "hello from hello-fb 1.0-2"\n'
    )
    assert (root / "usr/share/hello-fb/link").readlink() == Path("data.txt")


def test_build_many_debs(tmp_path):
    paths = build_many_debs(tmp_path, 5, prefix="many")
    assert [path.name for path in paths] == [f"many-0000{i}_1.0_all.deb" for i in range(1, 6)]
    for index, path in enumerate(paths, 1):
        assert path.is_file()
        assert deb_field(path, "Package") == f"many-0000{index}"
        assert deb_field(path, "Architecture") == "all"
        assert f"./usr/share/many/many-0000{index}.txt" in run("dpkg-deb", "-c", path)
    assert build_many_debs(tmp_path / "none", 0) == []


def test_build_many_rpms(tmp_path):
    paths = build_many_rpms(tmp_path, 5, prefix="many")
    assert [path.name for path in paths] == [f"many-0000{i}-1.0-1.noarch.rpm" for i in range(1, 6)]
    for index, path in enumerate(paths, 1):
        assert path.is_file()
        assert rpm_query(path, "%{NAME} %{ARCH}") == f"many-0000{index} noarch"
        assert rpm_query(path, "[%{FILENAMES}\n]") == f"/usr/share/many/many-0000{index}.txt\n"
        requires = rpm_query(path, "[%{REQUIRENAME}\n]").splitlines()
        assert all(name.startswith("rpmlib(") for name in requires), requires


def test_contents_types_from_the_tarball(deb: BuiltDeb):
    """The tarball dpkg-deb hands out is what `contents` describes, member by member."""
    tar_bytes = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", deb.debs["hello-fb-data"]], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        names = [member.name for member in tar]
    assert names[0] in {".", "./"}
    assert ["/" + name.removeprefix("./").rstrip("/") for name in names[1:]] == [
        path for path, _, _ in deb.contents["hello-fb-data"]
    ]

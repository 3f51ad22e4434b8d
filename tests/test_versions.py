"""builds.versions: artifact versions, parsed, formatted and bumped."""

import pytest

from builds.versions import ArtifactVersion


def test_version_parse_and_format():
    version = ArtifactVersion.parse("2.10-1.deb12+build2")
    assert version == ArtifactVersion(main="2.10", release="1", dist="deb12", build=2)
    assert version.full == str(version) == "2.10-1.deb12+build2"
    assert version.fullrelease == "1.deb12+build2"
    assert version.major == "2"
    assert ArtifactVersion.parse("0.1-1.el8") == ArtifactVersion("0.1", "1", "el8", 0)
    assert ArtifactVersion.parse("1.0-rc1-3") == ArtifactVersion("1.0-rc1", "3")
    assert ArtifactVersion("14", "0").full == "14-0"
    assert ArtifactVersion("14", "0").major == "14"
    assert ArtifactVersion("2.10", "1", "deb12", 0).full == "2.10-1.deb12"


@pytest.mark.parametrize("text", ["2.10", "-1", "2.10-", "2.10-1+build", "2.10-1+buildx"])
def test_version_parse_refuses_malformed(text):
    with pytest.raises(ValueError):
        ArtifactVersion.parse(text)


def test_version_next_build():
    version = ArtifactVersion("2.10", "1", "deb12")
    assert version.next_build([]) is version
    assert version.next_build(["2.10-1.deb11", "2.11-1.deb12", "garbage"]) == version
    assert version.next_build(["2.10-1.deb12"]).full == "2.10-1.deb12+build1"
    assert version.next_build(["2.10-1.deb12+build1"]).full == "2.10-1.deb12+build2"
    bumped = version.next_build(["2.10-1.deb12+build3", "2.10-1.deb12", "nonsense"])
    assert bumped.full == "2.10-1.deb12+build4"
    assert version.same_build_target(bumped)
    assert not version.same_build_target(ArtifactVersion("2.10", "2", "deb12"))

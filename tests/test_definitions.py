"""builds.definition: artifact definitions parsed and loaded, their sources, architectures
and patches.
"""

import pytest

from builds.definition import (
    DefinitionError,
    SourceSpec,
    load_definition,
    parse_definition,
    patches,
)
from builds.formats import architecture_dependent

SHA256 = "31e066137a962676e89f69d1b65382de95a7ef7d914b8cb956f41ea72e0f516b"
SHA1 = "f7bebf6f9c62a2295e889f66e05ce9bfaed9ace3"

HELLO = f"""\
source: https://ftp.gnu.org/gnu/hello/hello-{{{{ version }}}}.tar.gz
version: 2.10
checksums:
  2.10:
    sha256: {SHA256}
    sha1: {SHA1.upper()}
deb:
  release: 1
rpm:
  release: 2
  buildargs: --with foo
unknown:
  ignored: [1, 2]
"""


def test_parse_definition_hello():
    definition = parse_definition(HELLO, artifact="hello")
    assert definition.name == "hello"
    assert definition.formats == {
        "deb": {"release": "1"},
        "rpm": {"release": "2", "buildargs": "--with foo"},
    }
    assert definition.derivatives == {"main": {"hello": "2.10"}}
    assert definition.sources == (
        SourceSpec(
            id="hello",
            url="https://ftp.gnu.org/gnu/hello/hello-{{ version }}.tar.gz",
            filename=None,
        ),
    )
    assert definition.checksums == {"hello": {"2.10": {"sha256": SHA256, "sha1": SHA1}}}
    assert definition.path is None
    assert definition.supports("deb") and definition.supports("rpm")
    assert not definition.supports("osi")
    assert definition.release("rpm") == "2"
    assert definition.buildargs("rpm") == "--with foo"
    assert definition.buildargs("deb") == ""
    assert definition.accepts("main") and not definition.accepts("foox")
    assert definition.main_version("main") == "2.10"
    with pytest.raises(DefinitionError, match="does not support derivative foox"):
        definition.source_versions("foox")
    spec = definition.sources[0]
    assert definition.source_url(spec, "2.10") == "https://ftp.gnu.org/gnu/hello/hello-2.10.tar.gz"
    assert definition.source_filename(spec, "2.10") == "hello-2.10.tar.gz"


def test_parse_definition_stringifies_numbers_and_defaults():
    definition = parse_definition(b"version: 14\nosi:\ndeb: {}\n", artifact="image")
    assert definition.derivatives == {"main": {"image": "14"}}
    assert definition.formats == {"deb": {}, "osi": {}}
    assert definition.release("deb") == "1"
    assert definition.sources == ()
    assert definition.checksums == {}
    assert parse_definition("version: 1.0\n", artifact="a").main_version("main") == "1.0"
    assert parse_definition("version: 3.10\n", artifact="a").main_version("main") == "3.10"


def test_parse_definition_version_forms():
    versions = parse_definition(
        "versions:\n  fatbuildr: 2.0.1\n  bootstrap: 5.1\n", artifact="fatbuildr"
    )
    assert versions.derivatives == {"main": {"fatbuildr": "2.0.1", "bootstrap": "5.1"}}
    assert versions.main_version("main") == "2.0.1"

    derivatives = parse_definition(
        "derivatives:\n  main: 2.10\n  foox:\n    hello: 2.12\n    extra: 1\n", artifact="hello"
    )
    assert derivatives.derivatives == {
        "main": {"hello": "2.10"},
        "foox": {"hello": "2.12", "extra": "1"},
    }
    assert derivatives.accepts("foox")
    assert derivatives.source_versions("foox") == {"hello": "2.12", "extra": "1"}

    only_supplementary = parse_definition("versions:\n  extra: 1\n", artifact="hello")
    assert only_supplementary.main_version("main") is None

    uploaded = parse_definition("deb: {}\n", artifact="hello")
    assert uploaded.derivatives == {"main": {}}
    assert uploaded.main_version("main") is None


def test_parse_definition_sources_and_checksums_per_id():
    definition = parse_definition(
        f"""
sources:
  bootstrap: https://example.org/bootstrap/v{{{{ version }}}}.zip!bootstrap-{{{{ version }}}}.zip
  fatbuildr: https://example.org/fatbuildr-{{{{ version }}}}.tar.xz
versions:
  fatbuildr: 2.0
  bootstrap: 5.1.3
checksums:
  fatbuildr:
    2.0:
      sha1: {SHA1}
  bootstrap:
    5.1.3:
      sha256: {SHA256}
""",
        artifact="fatbuildr",
    )
    assert [spec.id for spec in definition.sources] == ["fatbuildr", "bootstrap"]
    bootstrap = definition.sources[1]
    assert bootstrap == SourceSpec(
        id="bootstrap",
        url="https://example.org/bootstrap/v{{ version }}.zip",
        filename="bootstrap-{{ version }}.zip",
    )
    assert definition.source_url(bootstrap, "5.1.3") == "https://example.org/bootstrap/v5.1.3.zip"
    assert definition.source_filename(bootstrap, "5.1.3") == "bootstrap-5.1.3.zip"
    assert definition.checksums == {
        "fatbuildr": {"2.0": {"sha1": SHA1}},
        "bootstrap": {"5.1.3": {"sha256": SHA256}},
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "must be a mapping"),
        ("version: [1\n", "not valid YAML"),
        ("", "must be a mapping"),
        ("version:\n  a: 1\n", "version must be a single value"),
        ("version: ../1\n", "invalid version"),
        ("versions: 1\n", "versions must be a mapping"),
        ("versions:\n  ../evil: 1\n", "invalid source id"),
        ("derivatives:\n  main: [1]\n", "must be a single value"),
        ("source: http://a/b\nsources:\n  x: http://a/c\n", "either source or sources"),
        ("sources:\n  x/y: http://a/c\n", "invalid source id"),
        ("source: http://a/b!\n", "empty file name"),
        ("checksums:\n  1.0:\n    md5: abc\n", "unsupported checksum algorithm 'md5'"),
        ("checksums:\n  1.0:\n    sha256: xyz\n", "invalid sha256 checksum"),
        (f"checksums:\n  1.0:\n    sha256: {SHA1}\n", "invalid sha256 checksum"),
        ("checksums: [1]\n", "checksums must be a mapping"),
        (f"checksums:\n  hello:\n    1.0:\n      sha512: {SHA256}\n", "unsupported checksum"),
        ("deb: 1\n", "deb must be a mapping"),
        ("deb:\n  release: [1]\n", "deb release must be a single value"),
        ("deb:\n  release: 1.2\n", "invalid release"),
        ("!!python/object:os.system x\n", "not valid YAML"),
    ],
)
def test_parse_definition_refuses_bad_input(text, message):
    with pytest.raises(DefinitionError, match=message):
        parse_definition(text, artifact="hello")


def test_parse_definition_refuses_bad_artifact_name():
    with pytest.raises(DefinitionError, match="invalid artifact name"):
        parse_definition("version: 1\n", artifact="../hello")


@pytest.mark.parametrize(
    ("url", "version"),
    [("https://example.org/dir/", "1"), ("https://example.org/x!..", "1")],
)
def test_source_filename_refuses_unusable_names(url, version):
    definition = parse_definition(f"source: {url}\nversion: {version}\n", artifact="hello")
    with pytest.raises(DefinitionError, match="invalid file name"):
        definition.source_filename(definition.sources[0], version)


def test_source_url_template_errors_are_definition_errors():
    definition = parse_definition("source: http://a/{{ nope }}.tar\n", artifact="hello")
    with pytest.raises(DefinitionError, match="source hello, line 1: 'nope' is undefined"):
        definition.source_url(definition.sources[0], "1")


def test_load_definition(tmp_path):
    with pytest.raises(DefinitionError, match=r"has no artifact\.yml"):
        load_definition(tmp_path, artifact="hello")
    (tmp_path / "meta.yml").write_text("version: 1\n")
    assert load_definition(tmp_path, artifact="hello").main_version("main") == "1"
    (tmp_path / "artifact.yaml").write_text("version: 2\n")
    assert load_definition(tmp_path, artifact="hello").main_version("main") == "2"
    (tmp_path / "artifact.yml").write_text(HELLO)
    definition = load_definition(tmp_path, artifact="hello")
    assert definition.main_version("main") == "2.10"
    assert definition.path == tmp_path
    (tmp_path / "artifact.yml").unlink()
    (tmp_path / "artifact.yml").symlink_to(tmp_path / "meta.yml")
    with pytest.raises(DefinitionError, match="cannot be a symlink"):
        load_definition(tmp_path, artifact="hello")


def test_architecture_dependent(tmp_path):
    deb = tmp_path / "deb"
    deb.mkdir()
    (deb / "control").write_text("Source: hello\n\nPackage: hello-doc\nArchitecture: all\n")
    assert not architecture_dependent(tmp_path, "deb", artifact="hello")
    (deb / "control.j2").write_text("Package: hello\nArchitecture: any\n")
    assert architecture_dependent(tmp_path, "deb", artifact="hello")
    (deb / "control.j2").unlink()
    (deb / "control").write_text(
        "Package: a\nArchitecture: all\n\nPackage: b\narchitecture: amd64\n"
    )
    assert architecture_dependent(tmp_path, "deb", artifact="hello")

    rpm = tmp_path / "rpm"
    rpm.mkdir()
    assert architecture_dependent(tmp_path, "rpm", artifact="hello")
    (rpm / "hello.spec").write_text("Name: hello\nBuildRequires: gcc\n")
    assert architecture_dependent(tmp_path, "rpm", artifact="hello")
    (rpm / "hello.spec").write_text("Name: hello\nBuildArch:      noarch\n")
    assert not architecture_dependent(tmp_path, "rpm", artifact="hello")

    assert not architecture_dependent(tmp_path, "osi", artifact="hello")


def test_patches_order_and_symlinks(tmp_path):
    assert patches(tmp_path, "2.10") == []
    generic = tmp_path / "patches" / "generic"
    versioned = tmp_path / "patches" / "2.10"
    other = tmp_path / "patches" / "2.11"
    for folder in (generic, versioned, other):
        folder.mkdir(parents=True)
    for path in (
        generic / "b.patch",
        generic / "a.patch",
        versioned / "02-fix",
        versioned / "01-fix",
        other / "x",
    ):
        path.write_text("patch\n")
    assert [p.relative_to(tmp_path).as_posix() for p in patches(tmp_path, "2.10")] == [
        "patches/generic/a.patch",
        "patches/generic/b.patch",
        "patches/2.10/01-fix",
        "patches/2.10/02-fix",
    ]
    (versioned / "03-link").symlink_to(tmp_path / "outside")
    with pytest.raises(DefinitionError, match="is a symlink"):
        patches(tmp_path, "2.10")
    with pytest.raises(DefinitionError, match="invalid version"):
        patches(tmp_path, "../generic")

"""builds.templates: the Jinja filters of artifact templates and the rendering of trees."""

from datetime import UTC, datetime

import pytest

from builds.templates import TemplateError, render_template, render_tree
from builds.versions import ArtifactVersion


def test_template_filters():
    timestamp = int(datetime(2026, 11, 27, 13, 5, 9, tzinfo=UTC).timestamp())
    text = (
        "{{ v|gittag }} {{ v|rpm_version }}\n"
        "{{ t|timestamp_rpmdate }} {{ t|timestamp_iso }}\n"
        "{{ version.full }}\n"
    )
    rendered = render_template(
        text, name="spec", v="1.0~rc1-2", t=timestamp, version=ArtifactVersion("2.10", "1")
    )
    assert rendered == "1.0-rc1-2 1.0~rc1~2\nFri Nov 27 2026 2026-11-27 13:05:09\n2.10-1\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("line\n{{ ''.__class__.__mro__ }}", "rules.j2, line 2: access to attribute '__class__'"),
        ("{{ version.__init__.__globals__ }}", "rules.j2, line 1: access to attribute"),
        ("a\nb\n{{ missing }}", "rules.j2, line 3: 'missing' is undefined"),
        ("{% if %}", "rules.j2, line 1: "),
        ("{{ 'x' * 10**9 }}", "rules.j2, line 1: repeated sequence too large"),
    ],
)
def test_template_errors(text, message):
    with pytest.raises(TemplateError) as error:
        render_template(text, name="rules.j2", version="1")
    assert str(error.value).startswith(message)


def test_render_tree(tmp_path):
    (tmp_path / "deb" / "source").mkdir(parents=True)
    (tmp_path / "deb" / "control.j2").write_text("Source: {{ name }}\n")
    rules = tmp_path / "deb" / "rules.j2"
    rules.write_text("#!/usr/bin/make -f\n# {{ version }}\n")
    rules.chmod(0o755)
    (tmp_path / "deb" / "source" / "format.j2").write_text("3.0 (quilt)")
    (tmp_path / "deb" / "plain").write_text("{{ untouched }}")
    rendered = render_tree(tmp_path, name="hello", version="2.10-1")
    assert rendered == [
        tmp_path / "deb" / "control",
        tmp_path / "deb" / "rules",
        tmp_path / "deb" / "source" / "format",
    ]
    assert (tmp_path / "deb" / "control").read_text() == "Source: hello\n"
    assert (tmp_path / "deb" / "rules").read_text() == "#!/usr/bin/make -f\n# 2.10-1\n"
    assert (tmp_path / "deb" / "rules").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "deb" / "source" / "format").read_text() == "3.0 (quilt)"
    assert (tmp_path / "deb" / "plain").read_text() == "{{ untouched }}"
    assert list(tmp_path.rglob("*.j2")) == []


def test_render_tree_refuses_symlinks(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("{{ 1 }}")
    folder = tmp_path / "deb"
    folder.mkdir()
    (folder / "control.j2").symlink_to(secret)
    with pytest.raises(TemplateError, match=r"control\.j2: templates cannot be symlinks"):
        render_tree(folder)
    (folder / "control.j2").unlink()
    (folder / "rules.j2").write_text("overwritten")
    (folder / "rules").symlink_to(secret)
    with pytest.raises(TemplateError, match="rendered file rules is a symlink"):
        render_tree(folder)
    assert secret.read_text() == "{{ 1 }}"


def test_render_tree_reports_the_failing_file(tmp_path):
    (tmp_path / "rpm").mkdir()
    (tmp_path / "rpm" / "hello.spec.j2").write_text("Name: hello\nVersion: {{ nope }}\n")
    with pytest.raises(TemplateError, match=r"^rpm/hello.spec.j2, line 2: 'nope' is undefined"):
        render_tree(tmp_path)

"""Build submissions as fatbuildrctl sends them (compat §2.6), for the submission tests:
definitions, source archives, hand-made hostile members, the multipart requests, and what
a clean refusal leaves (nothing)."""

import io
import tarfile
import uuid
from collections.abc import Callable
from pathlib import Path

from rest_framework.test import APIClient

from builds import services
from tasks.models import Task

ARTIFACT_YML = """\
version: 2.10
source: https://ftp.gnu.org/gnu/hello/hello-{{ version }}.tar.gz
deb:
  release: 1
rpm:
  release: 1
"""
# No version: the main source must come with the request.
UNVERSIONED_YML = """\
source: https://ftp.gnu.org/gnu/hello/hello-{{ version }}.tar.gz
deb:
  release: 1
"""
FOOX_YML = """\
source: https://ftp.gnu.org/gnu/hello/hello-{{ version }}.tar.gz
derivatives:
  main: 2.10
  foox: 2.12
deb:
  release: 1
"""
FIELDS = {
    "format": "deb",
    "distribution": "bookworm",
    "architectures": "x86_64",
    "derivative": "main",
    "artifact": "hello",
    "user_name": "John Doe",
    "user_email": "john.doe@example.org",
    "message": "Test build",
}
# FIELDS once checked, as the service takes them.
BUILD = services.BuildRequest(
    format="deb",
    distribution="bookworm",
    derivative="main",
    artifact="hello",
    architectures=["x86_64"],
    author="John Doe",
    email="john.doe@example.org",
    message="Test build",
)


# --- Archives ------------------------------------------------------------------------------


def xz_tar(path: Path, add: Callable[[tarfile.TarFile], None]) -> Path:
    with tarfile.open(path, "w:xz") as tar:
        add(tar)
    return path


def definition_tarball(tmp_path: Path, artifact_yml: str | None = ARTIFACT_YML) -> Path:
    """The tarball fatbuildrctl sends: the definition directory, arcname "."."""
    folder = tmp_path / "definition"
    (folder / "deb").mkdir(parents=True)
    (folder / "deb" / "control").write_text("Source: hello\n")
    if artifact_yml is not None:
        (folder / "artifact.yml").write_text(artifact_yml)
    return xz_tar(tmp_path / "fatbuildr-artifact.tar.xz", lambda tar: tar.add(folder, arcname="."))


def source_archive(tmp_path: Path, source_id: str = "hello", version: str = "2.10") -> Path:
    """A source tree as fatbuildrctl packs it: `<id>-<version>/` as the one top folder."""
    top = f"{source_id}-{version}"
    folder = tmp_path / "source" / top
    folder.mkdir(parents=True)
    (folder / "hello.c").write_text("int main(void) { return 0; }\n")
    return xz_tar(tmp_path / f"{top}.tar.xz", lambda tar: tar.add(folder, arcname=top))


def member(name: str, kind: bytes = tarfile.REGTYPE, *, data: bytes = b"", **attributes):
    """A tar member built by hand, for what no honest directory holds."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    for attribute, value in attributes.items():
        setattr(info, attribute, value)
    return info, io.BytesIO(data) if kind == tarfile.REGTYPE else None


def crafted_tarball(path: Path, *members, artifact_yml: str = ARTIFACT_YML) -> Path:
    """A valid definition followed by *members*: they alone make the archive hostile."""

    def add(tar: tarfile.TarFile) -> None:
        tar.addfile(*member(".", tarfile.DIRTYPE))
        tar.addfile(*member("./artifact.yml", data=artifact_yml.encode()))
        for info, data in members:
            tar.addfile(info, data)

    return xz_tar(path, add)


# --- Requests ------------------------------------------------------------------------------


def build_url(instance: str = "default") -> str:
    return f"/{instance}/build"


def post_build(client: APIClient, tarball: Path | None, *, url: str = "", **overrides):
    """POST a submission as fatbuildrctl does; an override of None leaves the field out,
    `sources` maps source ids to archive paths."""
    sources: dict[str, Path] = overrides.pop("sources", {})
    data: dict = {**FIELDS, **overrides}
    data = {name: value for name, value in data.items() if value is not None}
    handles = []
    if tarball is not None:
        handles.append(tarball.open("rb"))
        data["tarball"] = handles[-1]
    for source_id, path in sources.items():
        handles.append(path.open("rb"))
        data[f"source/{source_id}"] = handles[-1]
    try:
        return client.post(url or build_url(), data, format="multipart")
    finally:
        for handle in handles:
            handle.close()


def raw_multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A multipart body with file names the test client would not send (it keeps basenames)."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    for name, file_name, content in files:
        header = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
        header += f'filename="{file_name}"\r\n\r\n'
        parts.append(header.encode() + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if not path.is_dir()}


def assert_refused_cleanly(data_dir: Path, sent: list) -> None:
    """No task, no message, no workspace left."""
    assert not Task.objects.exists()
    assert sent == []
    workspaces = data_dir / "workspaces" / "default"
    assert not workspaces.exists() or not any(workspaces.iterdir())

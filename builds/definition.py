"""Artifact definitions: ``artifact.yml`` and the definition folder (compat §7.1-7.2).

A definition arrives in every build request, so everything here treats it as untrusted:
names that end up in paths are checked, YAML is read with the bounded safe loader (size,
depth, expanded size), and values are kept as the strings the author wrote
(``version: 2.10`` is "2.10", not 2.1).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from builds.templates import TemplateError, render_template
from fatbuildr_site.yaml_loader import BoundedSafeLoader, YAMLLimitError, load_yaml
from registry.constants import MAIN_DERIVATIVE, ArtifactFormat

DEFINITION_FILES = ("artifact.yml", "artifact.yaml", "meta.yml")

# Definitions are a few hundred bytes; the cap only stops absurd uploads early.
MAX_DEFINITION_SIZE = 1024 * 1024

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")

# Versions end up in file names and URLs: no separators, no leading dot.
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]*$")

# The release is followed by ".<dist>" and "+build<N>" in the full version, so it may
# hold neither a dot nor a plus, nor the "-" that separates it from the main version.
RELEASE_PATTERN = re.compile(r"^[A-Za-z0-9~_]+$")

# The only checksum algorithms upstream accepts, with their hex digest lengths.
CHECKSUM_LENGTHS = {"sha1": 40, "sha256": 64}
HEX_PATTERN = re.compile(r"^[0-9a-fA-F]+$")

DEFAULT_RELEASE = "1"

_NULL_TAG = "tag:yaml.org,2002:null"


class DefinitionError(ValueError):
    """An artifact definition is missing or invalid; the message is meant for the submitter."""


class _StringLoader(BoundedSafeLoader):
    """The bounded safe loader, leaving plain scalars as written, except null.

    Without implicit int/float/bool resolution, ``2.10`` stays "2.10" and ``yes`` stays
    "yes"; null is kept so that an empty ``osi:`` still reads as "no options".
    """


_StringLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag == _NULL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    if any(tag == _NULL_TAG for tag, _ in resolvers)
}


@dataclass(frozen=True)
class SourceSpec:
    """One declared source: its id, URL template and optional cached file name override."""

    id: str
    url: str
    filename: str | None = None


@dataclass(frozen=True)
class ArtifactDefinition:
    """The parsed content of an artifact definition."""

    name: str
    formats: dict[str, dict[str, str]] = field(default_factory=dict)
    derivatives: dict[str, dict[str, str]] = field(default_factory=dict)
    sources: tuple[SourceSpec, ...] = ()
    checksums: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    path: Path | None = None

    def supports(self, fmt: str) -> bool:
        """Whether the definition has a section for this format, i.e. it can be built so."""
        return fmt in self.formats

    def release(self, fmt: str) -> str:
        """The release number of the format, "1" unless the definition sets one."""
        return self.formats.get(fmt, {}).get("release", DEFAULT_RELEASE)

    def buildargs(self, fmt: str) -> str:
        """Extra build arguments of the format (rpm), "" by default."""
        return self.formats.get(fmt, {}).get("buildargs", "")

    def accepts(self, derivative: str) -> bool:
        """Whether the artifact can be built for this derivative."""
        return derivative in self.derivatives

    def source_versions(self, derivative: str) -> dict[str, str]:
        """Source id → version for the derivative; DefinitionError if not accepted."""
        if not self.accepts(derivative):
            raise DefinitionError(
                f"artifact {self.name} does not support derivative {derivative} "
                f"(supported: {', '.join(self.derivatives)})"
            )
        return dict(self.derivatives[derivative])

    def main_version(self, derivative: str) -> str | None:
        """Version of the main source (id == artifact name), None when it is not declared,
        as when the main source is uploaded with the request."""
        return self.source_versions(derivative).get(self.name)

    def source_url(self, spec: SourceSpec, version: str) -> str:
        """The source URL for a version, rendered with the sandboxed templates."""
        try:
            return render_template(spec.url, name=f"source {spec.id}", version=version).strip()
        except TemplateError as error:
            raise DefinitionError(str(error)) from None

    def source_filename(self, spec: SourceSpec, version: str) -> str:
        """The cached file name of a source: the override, else the URL's basename."""
        if spec.filename is not None:
            try:
                name = render_template(
                    spec.filename, name=f"source {spec.id} filename", version=version
                ).strip()
            except TemplateError as error:
                raise DefinitionError(str(error)) from None
        else:
            name = unquote(urlsplit(self.source_url(spec, version)).path.rsplit("/", 1)[-1])
        if not name or name in (".", "..") or "/" in name or "\x00" in name:
            raise DefinitionError(f"source {spec.id}: invalid file name {name!r}")
        return name


def _scalar(value: Any, where: str) -> str:
    """A YAML scalar as a string; mappings and lists are refused."""
    if isinstance(value, dict | list) or value is None:
        raise DefinitionError(f"{where} must be a single value")
    if isinstance(value, bool):
        # Only reachable through explicit !!bool tags; keep YAML's spelling.
        return "true" if value else "false"
    return str(value)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    """A YAML mapping with string keys (keys written as numbers are stringified)."""
    if not isinstance(value, dict):
        raise DefinitionError(f"{where} must be a mapping")
    return {_scalar(key, f"a key of {where}"): item for key, item in value.items()}


def _identifier(value: str, what: str) -> str:
    if not NAME_PATTERN.match(value):
        raise DefinitionError(f"invalid {what} {value!r}")
    return value


def _version(value: Any, where: str) -> str:
    version = _scalar(value, where)
    if not VERSION_PATTERN.match(version):
        raise DefinitionError(f"{where}: invalid version {version!r}")
    return version


def _source_versions(value: Any, where: str) -> dict[str, str]:
    """A mapping of source id → version."""
    return {
        _identifier(source, "source id"): _version(version, f"{where} {source}")
        for source, version in _mapping(value, where).items()
    }


def _parse_derivatives(data: dict[str, Any], artifact: str) -> dict[str, dict[str, str]]:
    """Derivative → {source id → version}.

    As upstream, `derivatives` takes precedence over `versions`, which takes precedence
    over `version`; without `derivatives` only the main derivative is accepted.
    """
    if "derivatives" in data:
        derivatives: dict[str, dict[str, str]] = {}
        for derivative, value in _mapping(data["derivatives"], "derivatives").items():
            _identifier(derivative, "derivative")
            if isinstance(value, dict):
                derivatives[derivative] = _source_versions(value, f"derivatives {derivative}")
            else:
                derivatives[derivative] = {artifact: _version(value, f"derivatives {derivative}")}
        return derivatives
    if "versions" in data:
        return {MAIN_DERIVATIVE: _source_versions(data["versions"], "versions")}
    if "version" in data:
        return {MAIN_DERIVATIVE: {artifact: _version(data["version"], "version")}}
    # Without any version, the main source must be uploaded, which sets the version.
    return {MAIN_DERIVATIVE: {}}


def _parse_source(source_id: str, value: Any) -> SourceSpec:
    """A source declaration ``<url template>[!<file name>]``."""
    text = _scalar(value, f"source {source_id}").strip()
    url, separator, filename = text.rpartition("!")
    if not separator:
        url, filename = text, ""
    if not url:
        raise DefinitionError(f"source {source_id}: empty URL")
    if separator and not filename:
        raise DefinitionError(f"source {source_id}: empty file name after '!'")
    return SourceSpec(id=source_id, url=url, filename=filename or None)


def _parse_sources(data: dict[str, Any], artifact: str) -> tuple[SourceSpec, ...]:
    if "source" in data and "sources" in data:
        raise DefinitionError("use either source or sources, not both")
    if "source" in data:
        return (_parse_source(artifact, data["source"]),)
    if "sources" not in data:
        return ()
    specs = [
        _parse_source(_identifier(source_id, "source id"), value)
        for source_id, value in _mapping(data["sources"], "sources").items()
    ]
    # The main source comes first whatever the order in the file: builds rely on it.
    specs.sort(key=lambda spec: spec.id != artifact)
    return tuple(specs)


def _parse_algorithms(value: Any, where: str) -> dict[str, str]:
    """{algorithm: hex digest}, with sha1 and sha256 only."""
    digests: dict[str, str] = {}
    for algorithm, digest in _mapping(value, where).items():
        if algorithm not in CHECKSUM_LENGTHS:
            raise DefinitionError(
                f"{where}: unsupported checksum algorithm {algorithm!r} (use sha1 or sha256)"
            )
        digest = _scalar(digest, f"{where} {algorithm}").strip()
        if len(digest) != CHECKSUM_LENGTHS[algorithm] or not HEX_PATTERN.match(digest):
            raise DefinitionError(f"{where}: invalid {algorithm} checksum {digest!r}")
        digests[algorithm] = digest.lower()
    return digests


def _parse_checksums(value: Any, artifact: str) -> dict[str, dict[str, dict[str, str]]]:
    """Source id → version → {algorithm: digest}.

    A top-level key whose values are digests is a version of the main source (short
    form); one whose values are mappings is a source id (long form).
    """
    checksums: dict[str, dict[str, dict[str, str]]] = {}
    for key, item in _mapping(value, "checksums").items():
        entries = _mapping(item, f"checksums {key}")
        nested = [isinstance(entry, dict) for entry in entries.values()]
        if nested and all(nested):
            source = _identifier(key, "source id in checksums")
            for version, digests in entries.items():
                where = f"checksums {source} {version}"
                checksums.setdefault(source, {})[version] = _parse_algorithms(digests, where)
        elif any(nested):
            raise DefinitionError(f"checksums {key}: mixes versions and algorithms")
        else:
            where = f"checksums {key}"
            checksums.setdefault(artifact, {})[key] = _parse_algorithms(entries, where)
    return checksums


def _parse_formats(data: dict[str, Any]) -> dict[str, dict[str, str]]:
    formats: dict[str, dict[str, str]] = {}
    for fmt in ArtifactFormat.values:
        if fmt not in data:
            continue
        value = data[fmt]
        if value is None or value == "":
            formats[fmt] = {}
            continue
        options: dict[str, str] = {}
        for option, item in _mapping(value, fmt).items():
            # Structured options of newer upstream versions are ignored, not refused; the
            # options this server reads must be single values.
            structured = isinstance(item, dict | list) or item is None
            if option in ("release", "buildargs") or not structured:
                options[option] = _scalar(item, f"{fmt} {option}")
        if "release" in options and not RELEASE_PATTERN.match(options["release"]):
            raise DefinitionError(f"{fmt}: invalid release {options['release']!r}")
        formats[fmt] = options
    return formats


def parse_definition(text: bytes | str, *, artifact: str) -> ArtifactDefinition:
    """Parse the content of ``artifact.yml`` for the artifact named `artifact`.

    Raises DefinitionError on invalid YAML, a document that is not a mapping, values of
    the wrong type, invalid names or versions, and unsupported checksums.
    """
    _identifier(artifact, "artifact name")
    if len(text) > MAX_DEFINITION_SIZE:
        raise DefinitionError(f"artifact definition is larger than {MAX_DEFINITION_SIZE} bytes")
    try:
        data = load_yaml(text, loader=_StringLoader, max_size=MAX_DEFINITION_SIZE)
    except YAMLLimitError as error:
        raise DefinitionError(f"artifact definition refused: {error}") from None
    except yaml.YAMLError as error:
        raise DefinitionError(f"artifact definition is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise DefinitionError("artifact definition must be a mapping")
    data = _mapping(data, "artifact definition")
    return ArtifactDefinition(
        name=artifact,
        formats=_parse_formats(data),
        derivatives=_parse_derivatives(data, artifact),
        sources=_parse_sources(data, artifact),
        checksums=_parse_checksums(data.get("checksums") or {}, artifact),
    )


def _regular_file(path: Path, what: str) -> bool:
    """Whether `path` is a regular file; symlinks are refused since they may lead out."""
    if path.is_symlink():
        raise DefinitionError(f"{what} cannot be a symlink")
    return path.is_file()


def load_definition(folder: Path, *, artifact: str) -> ArtifactDefinition:
    """Load the definition in `folder` from artifact.yml, artifact.yaml or meta.yml."""
    for filename in DEFINITION_FILES:
        path = folder / filename
        if _regular_file(path, filename):
            if path.stat().st_size > MAX_DEFINITION_SIZE:
                raise DefinitionError(f"{filename} is larger than {MAX_DEFINITION_SIZE} bytes")
            definition = parse_definition(path.read_bytes(), artifact=artifact)
            return dataclasses.replace(definition, path=folder)
    raise DefinitionError(f"artifact {artifact} has no artifact.yml")


def check_artifact_name(artifact: str) -> None:
    """Refuse an artifact name that cannot name a file of the definition."""
    _identifier(artifact, "artifact name")


def packaging_text(folder: Path, relative: str) -> str | None:
    """The text of a packaging file of the definition in *folder*, None when there is none;
    a symlink is refused."""
    path = folder / relative
    if not _regular_file(path, relative):
        return None
    return path.read_text(encoding="utf-8", errors="replace")


def patches(folder: Path, main_version: str) -> list[Path]:
    """The patch files to apply: patches/generic then patches/<main_version>, each by name.

    Subfolders are ignored; symlinks are refused as they could pull files from outside.
    """
    if not VERSION_PATTERN.match(main_version):
        raise DefinitionError(f"invalid version {main_version!r}")
    root = folder / "patches"
    if root.is_symlink():
        raise DefinitionError("patches cannot be a symlink")
    found: list[Path] = []
    for subfolder in ("generic", main_version):
        directory = root / subfolder
        if directory.is_symlink():
            raise DefinitionError(f"patches/{subfolder} cannot be a symlink")
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir(), key=lambda item: item.name):
            if path.is_symlink():
                raise DefinitionError(f"patch patches/{subfolder}/{path.name} is a symlink")
            if path.is_file():
                found.append(path)
            elif not path.is_dir():
                raise DefinitionError(f"patch patches/{subfolder}/{path.name} is not a file")
    return found

"""Parse and validate Fatbuildr instance YAML files (compat §10).

Every error names the file and the key at fault, so a maintainer can fix the
file without reading code.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from fatbuildr_site.yaml_loader import MAX_SIZE, YAMLLimitError, load_yaml
from instances.constants import MAIN_DERIVATIVE, ArtifactFormat
from instances.pipelines import DerivativeSpec, Pipelines, UnknownDerivative

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
# Column sizes of the models the file is stored in: longer values are file errors, not crashes.
MAX_ID = 64
MAX_NAME = 64
MAX_TEXT = 255

TOP_LEVEL_KEYS = {"name", "gpg", "architectures", "formats", "derivatives"}
DISTRIBUTION_KEYS: dict[str, tuple[set[str], set[str]]] = {
    ArtifactFormat.DEB: ({"name", "env", "tag"}, {"mirror", "components"}),
    ArtifactFormat.RPM: ({"name", "env", "tag"}, {"modules"}),
    ArtifactFormat.OSI: ({"name"}, set()),
}


class InstanceFileError(ValueError):
    """An instance file is unreadable or invalid; the message names file and key."""


@dataclass
class DistributionData:
    name: str
    format: str
    environment: str | None
    tag: str | None
    mirror: str = ""
    components: str = ""
    modules: list[str] = field(default_factory=list)


@dataclass
class InstanceData:
    """A validated instance file."""

    id: str
    name: str
    gpg_name: str
    gpg_email: str
    architectures: list[str]
    formats: list[str]
    distributions: list[DistributionData]
    derivatives: list[DerivativeSpec]
    source_file: str


def parse_instance_file(path: Path) -> InstanceData:
    """Read one instance file; raise InstanceFileError on any problem."""
    path = Path(path)

    def fail(key: str, message: str) -> InstanceFileError:
        where = f"{path}: {key}: " if key else f"{path}: "
        return InstanceFileError(where + message)

    instance_id = path.stem
    if not NAME_RE.match(instance_id) or len(instance_id) > MAX_ID:
        raise fail(
            "",
            f"instance id {instance_id!r} (the file stem) must use letters, digits, . _ + - "
            f"and at most {MAX_ID} characters",
        )
    try:
        with path.open("rb") as file:
            # One byte over the limit is enough to refuse the file, however large it is.
            document = load_yaml(file.read(MAX_SIZE + 1))
    except OSError as error:
        raise fail("", f"cannot be read: {error.strerror}") from error
    except YAMLLimitError as error:
        raise fail("", f"refused: {error}") from error
    except yaml.YAMLError as error:
        raise fail("", f"invalid YAML: {error}") from error
    if not isinstance(document, dict):
        raise fail("", "must be a YAML mapping")

    unknown = sorted(set(map(str, document)) - TOP_LEVEL_KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key (expected one of {', '.join(sorted(TOP_LEVEL_KEYS))})")

    name = _text(document, "name", fail, max_length=MAX_TEXT)
    gpg = document.get("gpg")
    if not isinstance(gpg, dict):
        raise fail("gpg", "must be a mapping with name and email")
    gpg_name = _text(gpg, "name", fail, prefix="gpg.", max_length=MAX_TEXT)
    gpg_email = _text(gpg, "email", fail, prefix="gpg.", max_length=254)
    try:
        validate_email(gpg_email)
    except ValidationError as error:
        raise fail("gpg.email", f"{gpg_email!r} is not an email address") from error

    architectures = document.get("architectures") or []
    if not isinstance(architectures, list):
        raise fail("architectures", "must be a list")
    architectures = [str(arch) for arch in architectures]
    for index, arch in enumerate(architectures):
        if not NAME_RE.match(arch) or len(arch) > 32:
            raise fail(f"architectures[{index}]", f"invalid architecture name {arch!r}")

    formats_doc = document.get("formats")
    if not isinstance(formats_doc, dict) or not formats_doc:
        raise fail("formats", "must be a mapping of formats to distribution lists")
    formats: list[str] = []
    distributions: list[DistributionData] = []
    seen: dict[str, str] = {}
    for fmt, items in formats_doc.items():
        fmt = str(fmt)
        if fmt not in ArtifactFormat.values:
            raise fail(
                f"formats.{fmt}",
                f"unknown format {fmt!r} (known: {', '.join(ArtifactFormat.values)})",
            )
        formats.append(fmt)
        if items is None:
            items = []
        if not isinstance(items, list):
            raise fail(f"formats.{fmt}", "must be a list of distributions")
        required, optional = DISTRIBUTION_KEYS[fmt]
        for index, item in enumerate(items):
            key = f"formats.{fmt}[{index}]"
            if not isinstance(item, dict):
                raise fail(key, "must be a mapping")
            for missing in sorted(required - set(item)):
                raise fail(f"{key}.{missing}", "is required")
            for extra in sorted(set(map(str, item)) - required - optional):
                raise fail(f"{key}.{extra}", f"unknown key for a {fmt} distribution")
            dist_name = _text(item, "name", fail, prefix=f"{key}.")
            if not NAME_RE.match(dist_name) or len(dist_name) > MAX_NAME:
                raise fail(f"{key}.name", f"invalid distribution name {dist_name!r}")
            if dist_name in seen:
                raise fail(
                    f"{key}.name",
                    f"distribution {dist_name!r} already defined in {seen[dist_name]}",
                )
            seen[dist_name] = key
            modules = item.get("modules") or []
            if not isinstance(modules, list):
                raise fail(f"{key}.modules", "must be a list")
            components = item.get("components") or ""
            if isinstance(components, list):
                components = " ".join(map(str, components))
            for extra_key, value, limit in (
                ("mirror", str(item.get("mirror") or ""), 1024),
                ("components", str(components), MAX_TEXT),
                *((f"modules[{i}]", str(module), 128) for i, module in enumerate(modules)),
            ):
                if len(value) > limit:
                    raise fail(f"{key}.{extra_key}", f"is longer than {limit} characters")
            distributions.append(
                DistributionData(
                    name=dist_name,
                    format=fmt,
                    environment=_text(item, "env", fail, prefix=f"{key}.", max_length=128)
                    if "env" in required
                    else None,
                    tag=_text(item, "tag", fail, prefix=f"{key}.", max_length=MAX_NAME)
                    if "tag" in required
                    else None,
                    mirror=str(item.get("mirror") or ""),
                    components=str(components),
                    modules=[str(module) for module in modules],
                )
            )

    derivatives = _parse_derivatives(document.get("derivatives"), formats, fail)
    pipelines = Pipelines(formats=formats, distributions=[], derivatives=derivatives)
    for spec in derivatives:
        try:
            pipelines.recursive_derivatives(spec.name)
        except UnknownDerivative as error:
            raise fail(f"derivatives.{spec.name}.extends", "forms an inheritance cycle") from error

    return InstanceData(
        id=instance_id,
        name=name,
        gpg_name=gpg_name,
        gpg_email=gpg_email,
        architectures=list(dict.fromkeys(architectures)),
        formats=formats,
        distributions=distributions,
        derivatives=derivatives,
        source_file=str(path.resolve()),
    )


def _parse_derivatives(document: Any, formats: list[str], fail) -> list[DerivativeSpec]:
    if document is None:
        return []
    if not isinstance(document, dict):
        raise fail("derivatives", "must be a mapping of derivative names")
    names = [str(name) for name in document]
    specs = []
    for raw_name, body in document.items():
        name = str(raw_name)
        key = f"derivatives.{name}"
        if name == MAIN_DERIVATIVE:
            raise fail(key, "main is implicit and cannot be redefined")
        if not NAME_RE.match(name) or len(name) > MAX_NAME:
            raise fail(key, f"invalid derivative name {name!r}")
        body = body or {}
        if not isinstance(body, dict):
            raise fail(key, "must be a mapping with optional formats and extends")
        for extra in sorted(set(map(str, body)) - {"formats", "extends"}):
            raise fail(f"{key}.{extra}", "unknown key (expected formats, extends)")
        derivative_formats = body.get("formats") or []
        if not isinstance(derivative_formats, list):
            raise fail(f"{key}.formats", "must be a list of formats")
        for fmt in derivative_formats:
            if str(fmt) not in formats:
                raise fail(f"{key}.formats", f"format {fmt!r} is not a format of this instance")
        extends = str(body.get("extends") or MAIN_DERIVATIVE)
        if extends != MAIN_DERIVATIVE and extends not in names:
            raise fail(f"{key}.extends", f"unknown derivative {extends!r}")
        specs.append(
            DerivativeSpec(name=name, formats=tuple(map(str, derivative_formats)), extends=extends)
        )
    return specs


def _text(mapping: dict, key: str, fail, prefix: str = "", max_length: int = MAX_TEXT) -> str:
    value = mapping.get(key)
    if value is None or isinstance(value, (dict, list)) or str(value).strip() == "":
        raise fail(prefix + key, "is required and must be text")
    text = str(value).strip()
    if len(text) > max_length:
        raise fail(prefix + key, f"is longer than {max_length} characters")
    return text

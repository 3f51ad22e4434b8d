"""Rendering of the Jinja2 templates shipped in artifact definitions.

Definitions come from whoever may submit builds, so their templates run in Jinja2's
sandbox: no access to dunder attributes or unsafe callables, and a cap on string and
output sizes so a template cannot exhaust the worker's memory.
"""

from __future__ import annotations

import os
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

TEMPLATE_SUFFIX = ".j2"

# Rendered files are packaging metadata (spec files, debian/control): far below this.
MAX_RENDERED_SIZE = 16 * 1024 * 1024

# Largest sequence a template may build with "*" (e.g. "x" * 10**10).
MAX_REPEAT_SIZE = 1024 * 1024

# Largest exponent allowed with "**", whose results grow without bound otherwise.
MAX_EXPONENT = 1000

# The name compiled templates carry in tracebacks, to find the failing line.
_TEMPLATE_FILENAME = "<template>"


class TemplateError(ValueError):
    """A template failed to render; the message names the file and line for the submitter."""


def filter_gittag(value: str) -> str:
    """Replace the characters Git refuses in tag names, for URLs built from Git tags."""
    return str(value).replace("~", "-")


def filter_rpm_version(value: str) -> str:
    """Replace the characters RPM refuses in versions."""
    return str(value).replace("-", "~")


def timestamp_rpmdate(value: int | float) -> str:
    """An epoch timestamp as an RPM changelog date, e.g. ``Fri Nov 27 2026``.

    UTC rather than upstream's local time, so the date does not depend on the worker host.
    """
    return datetime.fromtimestamp(value, tz=UTC).strftime("%a %b %d %Y")


def timestamp_iso(value: int | float) -> str:
    """An epoch timestamp in ISO format with a space separator, in UTC."""
    return (
        datetime.fromtimestamp(value, tz=UTC)
        .replace(tzinfo=None)
        .isoformat(sep=" ", timespec="seconds")
    )


class _BuildSandbox(SandboxedEnvironment):
    """The sandbox, with "*" and "**" bounded: the stock sandbox lets them allocate freely."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise jinja2.sandbox.SecurityError("exponent too large")
            return left**right
        for sequence, times in ((left, right), (right, left)):
            if (
                isinstance(sequence, str | bytes | list | tuple)
                and isinstance(times, int)
                and len(sequence) * times > MAX_REPEAT_SIZE
            ):
                raise jinja2.sandbox.SecurityError("repeated sequence too large")
        return left * right


def _environment() -> SandboxedEnvironment:
    """A fresh environment per render keeps one template from affecting another."""
    environment = _BuildSandbox(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    environment.filters["gittag"] = filter_gittag
    environment.filters["rpm_version"] = filter_rpm_version
    environment.filters["timestamp_rpmdate"] = timestamp_rpmdate
    environment.filters["timestamp_iso"] = timestamp_iso
    return environment


def _failing_line(error: BaseException) -> int | None:
    """The template line where a rendering error happened, from the rewritten traceback."""
    if isinstance(error, jinja2.TemplateSyntaxError):
        return error.lineno
    frames = traceback.extract_tb(error.__traceback__)
    for frame in reversed(frames):
        if frame.filename == _TEMPLATE_FILENAME:
            return frame.lineno
    return None


def render_template(text: str, *, name: str, **context: Any) -> str:
    """Render an untrusted template with `context` in the sandbox.

    Raises TemplateError on syntax errors, undefined variables, sandbox violations, any
    other exception raised while rendering, and output over MAX_RENDERED_SIZE.
    """
    return _render(text, name, context)


def _render(text: str, name: str, context: dict[str, Any]) -> str:
    """render_template, with the context as a dict so that it may hold a "name" variable."""
    try:
        template = _environment().from_string(text)
        chunks: list[str] = []
        size = 0
        for chunk in template.generate(**context):
            size += len(chunk)
            if size > MAX_RENDERED_SIZE:
                raise TemplateError(f"{name}: rendered output exceeds {MAX_RENDERED_SIZE} bytes")
            chunks.append(chunk)
    except TemplateError:
        raise
    except Exception as error:  # any failure of user code is reported to the user
        line = _failing_line(error)
        where = f"{name}, line {line}" if line else name
        message = getattr(error, "message", None) or str(error) or type(error).__name__
        raise TemplateError(f"{where}: {message}") from None
    return "".join(chunks)


def render_tree(folder: Path, **context: Any) -> list[Path]:
    """Render every regular ``*.j2`` file below `folder` to the same path without ``.j2``.

    The templates are removed once rendered; the rendered files keep their permission bits
    (an executable ``rules.j2`` gives an executable ``rules``). Symlinked templates and
    symlinked targets are refused: they could read or overwrite files outside the folder.
    """
    if folder.is_symlink():
        raise TemplateError(f"{folder.name}: template folder is a symlink")
    rendered: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for filename in sorted(files):
            if not filename.endswith(TEMPLATE_SUFFIX) or filename == TEMPLATE_SUFFIX:
                continue
            template = Path(root) / filename
            relative = template.relative_to(folder).as_posix()
            if template.is_symlink():
                raise TemplateError(f"{relative}: templates cannot be symlinks")
            if not template.is_file():
                continue
            target = template.with_name(filename[: -len(TEMPLATE_SUFFIX)])
            if target.is_symlink():
                raise TemplateError(f"{relative}: rendered file {target.name} is a symlink")
            if target.exists() and not target.is_file():
                raise TemplateError(f"{relative}: rendered file {target.name} is not a file")
            try:
                text = template.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise TemplateError(f"{relative}: template is not UTF-8 text") from None
            output = _render(text, relative, context)
            mode = template.stat().st_mode & 0o777
            # O_NOFOLLOW closes the gap between the symlink check above and the write.
            descriptor = os.open(
                target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode
            )
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(output)
            os.chmod(target, mode)
            template.unlink()
            rendered.append(target)
    return rendered

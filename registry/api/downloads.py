"""`GET /{instance}/{deb,rpm,osi}/...`: the registry files apt and dnf download (compat §1.7).

Files are answered with `Cache-Control: no-cache`, `Last-Modified`, a strong
`ETag`, conditional requests (`If-None-Match`, `If-Modified-Since`, and the
other RFC 9110 preconditions) and single byte ranges (`If-Range` honoured;
several ranges get the whole file, as RFC 9110 allows). Compressed files keep
their raw bytes: `Packages.gz` and `primary.xml.gz` are `application/gzip`,
never `Content-Encoding: gzip`, which apt, dnf and Pulp would decompress and
then fail to checksum.

Directories, with or without a trailing slash, answer an HTML listing, or 403
`Access forbidden` when `FATBUILDR_REGISTRY_LISTING` is false.

Every refusal (`..`, `%2e%2e` or `%2f` once decoded, backslash, NUL, hidden
segment, `deb/conf` and `deb/db`, symlink leading out of the instance registry)
is the same 404 `File not found in registry` as a missing file, never a 400: a
prober learns nothing about what exists. The checks live in `registry.served_paths`.

Production: with `FATBUILDR_ACCEL_REDIRECT_PREFIX=/_registry/` the view makes
every check, then hands the download to nginx with an empty body and
`X-Accel-Redirect: /_registry/<instance>/<real path>`; nginx then serves
ranges and conditional requests itself, with the Content-Type and
Cache-Control set here::

    location /_registry/ {
        internal;
        alias /var/lib/fatbuildr/registry/;  # $FATBUILDR_DATA_DIR/registry/
        gzip off;                            # raw bytes for .gz files
        disable_symlinks on;                 # the path sent is already resolved
    }

(`alias` must then be the real path of the data root, without symlinks.)
"""

import asyncio
import mimetypes
import os
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from urllib.parse import quote

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.template.loader import render_to_string
from django.utils.cache import get_conditional_response
from django.utils.http import http_date, parse_http_date_safe
from rest_framework import exceptions, status
from rest_framework.request import Request

from accounts.constants import Action
from fatbuildr_site.exceptions import error_response
from instances.api import InstanceAPIView
from registry import served_paths

CHUNK_SIZE = 256 * 1024

# Built-in types only: /etc/mime.types differs from host to host.
_MIME_TYPES = mimetypes.MimeTypes()
for _extension, _type in {
    ".deb": "application/vnd.debian.binary-package",
    ".udeb": "application/vnd.debian.binary-package",
    ".ddeb": "application/vnd.debian.binary-package",
    ".rpm": "application/x-rpm",
}.items():
    _MIME_TYPES.add_type(_type, _extension)
# A compression suffix gives the file's type, never a Content-Encoding.
_ENCODING_TYPES = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "compress": "application/x-compress",
    "br": "application/x-brotli",
}


def content_type(name: str) -> str:
    """The Content-Type of a registry file, from its name (compat §1.7: `.xml.gz` is gzip)."""
    guessed, encoding = _MIME_TYPES.guess_type(name, strict=False)
    if encoding:
        return _ENCODING_TYPES.get(encoding, "application/octet-stream")
    return guessed or "application/octet-stream"


def entity_tag(info: os.stat_result) -> str:
    """A strong ETag that changes when the file is replaced or rewritten."""
    return f'"{info.st_ino:x}-{info.st_size:x}-{info.st_mtime_ns:x}"'


# One range only: several get the whole file. re.ASCII: "²" is no digit to int().
_SINGLE_BYTE_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE | re.ASCII)


class RangeNotSatisfiable(Exception):
    """A syntactically valid range that starts beyond the end of the file."""


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive `(first, last)` byte positions of a `Range` header, or None to send the
    whole file (several ranges, another unit, or a header that does not parse)."""
    match = _SINGLE_BYTE_RANGE.fullmatch(header)
    if match is None or not any(match.groups()):
        return None
    first_text, last_text = match.groups()
    if not first_text:  # bytes=-n: the last n bytes.
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(size - suffix, 0), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # Invalid, hence ignored.
    if first >= size:
        raise RangeNotSatisfiable(header)
    return first, min(int(last_text), size - 1) if last_text else size - 1


def if_range_passes(request: Request, etag: str, last_modified: int) -> bool:
    """Whether a `Range` may be honoured: no `If-Range`, or one naming the current file."""
    value = request.headers.get("If-Range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return value == etag  # Strong comparison: a weak tag never matches.
    return parse_http_date_safe(value) == last_modified


class FileChunks:
    """Bytes `[offset, offset + length)` of a descriptor it owns; closed by the response."""

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self.fd, self.offset, self.remaining = fd, offset, length

    def read_chunk(self) -> bytes:
        chunk = os.pread(self.fd, min(CHUNK_SIZE, self.remaining), self.offset)
        self.offset += len(chunk)
        # A file truncated meanwhile ends the body early rather than looping.
        self.remaining = self.remaining - len(chunk) if chunk else 0
        return chunk

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


class SyncFileChunks(FileChunks):
    """For WSGI: a plain iterator."""

    def __iter__(self) -> Iterator[bytes]:
        try:
            while self.remaining > 0 and (chunk := self.read_chunk()):
                yield chunk
        finally:
            self.close()


class AsyncFileChunks(FileChunks):
    """For ASGI: reads in a thread, so a download neither blocks the event loop nor is
    gathered whole in memory (Django does that to a sync iterator under ASGI)."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            while self.remaining > 0 and (chunk := await asyncio.to_thread(self.read_chunk)):
                yield chunk
        finally:
            self.close()


class PreconditionFailed(exceptions.APIException):
    """412 as an Error object (If-Match, If-Unmodified-Since)."""

    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "Precondition failed"


class RegistryFileView(InstanceAPIView):
    """Registry files and directory listings, for apt, dnf and browsers (see module docstring)."""

    permission_actions = {"GET": Action.VIEW_REGISTRY}
    # OPTIONS would describe the view; apt and dnf only GET (and HEAD).
    http_method_names = ["get", "head"]
    # registry.served_paths refuses NUL in a file path with the one 404 of a missing file, and
    # the path never reaches PostgreSQL: UnstorableInputMiddleware leaves it to this view.
    self_checked_url_arguments = frozenset({"path"})

    def get(self, request: Request, *, path: str, **kwargs) -> HttpResponseBase:
        # RegistryPathError is the one 404 of the exception handler, whatever the cause.
        node = served_paths.open_registry_path(self.instance.id, path)
        # Closed on the way out, unless a streamed body took the descriptor over.
        with node:
            if node.is_dir:
                return self.listing(request, node, path)
            return self.download(request, node)

    def listing(self, request: Request, node: served_paths.RegistryNode, path: str) -> HttpResponse:
        if not settings.FATBUILDR_REGISTRY_LISTING:
            raise exceptions.PermissionDenied("Access forbidden")
        # The URL of the listed folder, rebuilt from the normalized segments so
        # that links work with or without the trailing slash.
        prefix = request.path.removesuffix(path)  # "/{instance}/", or "/" in mono-instance mode
        base = quote(prefix) + "".join(f"{quote(part, safe='')}/" for part in node.parts)
        response = HttpResponse(
            render_listing(
                title="/".join((prefix.rstrip("/"), *node.parts)) + "/",
                base=base,
                parent=base.removesuffix(f"{quote(node.name, safe='')}/")
                if len(node.parts) > 1  # No link above the format root.
                else None,
                entries=served_paths.list_directory(node),
                home=f"{prefix}registry/",
            ),
            content_type="text/html; charset=utf-8",
        )
        response["Cache-Control"] = "no-cache"
        return response

    def download(self, request: Request, node: served_paths.RegistryNode) -> HttpResponseBase:
        info = node.stat
        headers = {"Content-Type": content_type(node.name), "Cache-Control": "no-cache"}
        prefix = settings.FATBUILDR_ACCEL_REDIRECT_PREFIX
        if prefix:
            # nginx reads the file itself: point it at the real path that was checked.
            accel = f"{prefix}{quote(self.instance.id, safe='')}/{quote(node.real_path)}"
            return HttpResponse(b"", headers={**headers, "X-Accel-Redirect": accel})

        etag, last_modified = entity_tag(info), int(info.st_mtime)
        headers |= {
            "ETag": etag,
            "Last-Modified": http_date(last_modified),
            "Accept-Ranges": "bytes",
        }
        validators = HttpResponse(headers=headers)
        conditional = get_conditional_response(
            request, etag=etag, last_modified=last_modified, response=validators
        )
        if conditional is not None and conditional is not validators:
            if conditional.status_code == status.HTTP_412_PRECONDITION_FAILED:
                raise PreconditionFailed()
            return conditional  # 304, with the validators and Cache-Control.

        size, first, length = info.st_size, 0, info.st_size
        status_code: int = status.HTTP_200_OK
        # Ranges are defined for GET only (RFC 9110 §14.2): HEAD gets the whole file's headers.
        range_header = request.headers.get("Range")
        if (
            range_header
            and request.method == "GET"
            and if_range_passes(request, etag, last_modified)
        ):
            try:
                byte_range = parse_range(range_header, size)
            except RangeNotSatisfiable:
                response = error_response(
                    "Requested range not satisfiable",
                    status.HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE,
                )
                response["Content-Range"] = f"bytes */{size}"
                return response
            if byte_range is not None:
                first, last = byte_range
                length, status_code = last - first + 1, status.HTTP_206_PARTIAL_CONTENT
                headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        headers["Content-Length"] = str(length)

        if request.method == "HEAD":
            return HttpResponse(b"", status=status_code, headers=headers)
        if isinstance(request._request, ASGIRequest):
            body: SyncFileChunks | AsyncFileChunks = AsyncFileChunks(node.detach(), first, length)
            # The stream may last minutes: give the pooled connection back now.
            connection.close()
        else:
            body = SyncFileChunks(node.detach(), first, length)
        return StreamingHttpResponse(body, status=status_code, headers=headers)


def render_listing(
    *,
    title: str,
    base: str,
    parent: str | None,
    entries: list[served_paths.DirectoryEntry],
    home: str = "/",
) -> str:
    """The HTML page of a registry folder in the layout of the web pages: name, size and
    modification time of each entry, a link to the parent folder.

    *base* and *parent* are already percent-quoted URLs; names are quoted here and
    escaped by the template.
    """
    rows = [
        {
            "url": base + quote(entry.name, safe="") + ("/" if entry.is_dir else ""),
            "label": entry.name + ("/" if entry.is_dir else ""),
            "size": None if entry.is_dir else entry.size,
            "mtime": datetime.fromtimestamp(entry.mtime, UTC),
        }
        for entry in entries
    ]
    context = {"title": title, "parent": parent, "entries": rows, "home": home}
    return render_to_string("registry/listing.html", context)

"""Declared sources: download once into the instance cache, verify, reuse (compat §7.4).

Unlike upstream, the HTTP status is checked, the download is capped, and the cached file
only appears once complete and verified: workers building the same artifact at the same
time may race on the download, but never see a partial or unverified file.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import socket
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings

from builds.definition import NAME_PATTERN, ArtifactDefinition, DefinitionError, SourceSpec

ALLOWED_SCHEMES = ("http", "https")
MAX_REDIRECTS = 5

_CHUNK_SIZE = 1024 * 1024


class SourceError(ValueError):
    """A declared source could not be obtained or verified; the message is user-facing."""


def _digests(path: Path, algorithms: list[str]) -> dict[str, str]:
    hashers = {algorithm: hashlib.new(algorithm) for algorithm in algorithms}
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_SIZE):
            for hasher in hashers.values():
                hasher.update(chunk)
    return {algorithm: hasher.hexdigest() for algorithm, hasher in hashers.items()}


def verify_checksums(path: Path, expected: Mapping[str, str], *, label: str | None = None) -> None:
    """Check the file against every expected {algorithm: hex digest}.

    Raises SourceError naming the algorithm, the expected and the actual digest.
    """
    if not expected:
        return
    label = label or path.name
    try:
        actual = _digests(path, list(expected))
    except ValueError:
        raise SourceError(
            f"{label}: unsupported checksum algorithm among {', '.join(expected)}"
        ) from None
    for algorithm, digest in expected.items():
        if actual[algorithm] != digest.lower():
            raise SourceError(
                f"{label}: {algorithm} checksum mismatch, "
                f"expected {digest.lower()}, got {actual[algorithm]}"
            )


def cache_folder(instance: str, artifact: str) -> Path:
    """The folder of an artifact's cached sources in an instance."""
    for value, what in ((instance, "instance"), (artifact, "artifact")):
        if not NAME_PATTERN.match(value):
            raise SourceError(f"invalid {what} name {value!r}")
    return Path(settings.FATBUILDR_CACHE_DIR) / instance / artifact


def check_destination(url: str) -> None:
    """Refuse a URL whose host is, or resolves to, a loopback, private, link-local or
    otherwise non-public address: a definition is untrusted, and the worker must not fetch
    the farm's own services (the database, the web server, a cloud metadata endpoint) into
    a package its author can download. FATBUILDR_SOURCE_ALLOW_PRIVATE lifts this for
    mirrors on a private network."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES or not parts.hostname:
        raise SourceError(f"only http and https URLs with a host are supported ({url})")
    if settings.FATBUILDR_SOURCE_ALLOW_PRIVATE:
        return
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(parts.hostname, None)}
    except (OSError, UnicodeError) as error:
        raise SourceError(
            f"Downloading {url} failed: cannot resolve {parts.hostname}: {error}"
        ) from None
    for address in addresses:
        if not ipaddress.ip_address(address.split("%", 1)[0]).is_global:
            raise SourceError(
                f"Downloading {url} refused: {parts.hostname} is a non-public address "
                f"({address}); set FATBUILDR_SOURCE_ALLOW_PRIVATE for private mirrors"
            )


def _get(url: str, timeout: float) -> requests.Response:
    """GET with redirects followed by hand, each destination checked before it is asked."""
    for _ in range(MAX_REDIRECTS + 1):
        check_destination(url)
        response = requests.get(url, stream=True, timeout=timeout, allow_redirects=False)
        if not response.is_redirect:
            return response
        location = response.headers.get("Location", "")
        response.close()
        url = urljoin(url, location)
    raise SourceError(f"Downloading {url} failed: more than {MAX_REDIRECTS} redirects")


def _fetch(url: str, folder: Path, filename: str) -> Path:
    """Download `url` into a new temporary file of `folder` and return it.

    The temporary file is removed when anything fails; the caller owns it afterwards.
    """
    timeout = settings.FATBUILDR_SOURCE_DOWNLOAD_TIMEOUT
    max_size = settings.FATBUILDR_BUILD_ARCHIVE_MAX_SIZE
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{filename}.", suffix=".part")
    temporary_path = Path(temporary)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            try:
                with _get(url, timeout) as response:
                    if response.status_code >= 400:
                        raise SourceError(
                            f"Downloading {url} failed: HTTP {response.status_code} "
                            f"{response.reason or ''}".rstrip()
                        )
                    declared = response.headers.get("Content-Length", "")
                    if declared.isdigit() and int(declared) > max_size:
                        raise SourceError(f"{url}: file is larger than {max_size} bytes")
                    size = 0
                    for chunk in response.iter_content(_CHUNK_SIZE):
                        size += len(chunk)
                        if size > max_size:
                            raise SourceError(f"{url}: file is larger than {max_size} bytes")
                        handle.write(chunk)
            except requests.RequestException as error:
                raise SourceError(f"Downloading {url} failed: {error}") from None
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600 files; the build sandbox user must be able to read sources.
        temporary_path.chmod(0o644)
    except BaseException:
        temporary_path.unlink(missing_ok=True)
        raise
    return temporary_path


def cached_source(
    definition: ArtifactDefinition,
    spec: SourceSpec,
    version: str,
    *,
    instance: str,
    log: Callable[[str], None],
) -> Path:
    """The path of the source archive in the cache, downloading it when needed.

    Path: ``<FATBUILDR_CACHE_DIR>/<instance>/<artifact>/<filename>``. A cached file is
    reused when it matches the declared checksums of this source and version (or when
    none are declared); otherwise it is downloaded again. Raises SourceError.
    """
    try:
        filename = definition.source_filename(spec, version)
        url = definition.source_url(spec, version)
    except DefinitionError as error:
        raise SourceError(str(error)) from None
    if urlsplit(url).scheme.lower() not in ALLOWED_SCHEMES:
        raise SourceError(f"source {spec.id}: only http and https URLs are supported ({url})")
    expected = definition.checksums.get(spec.id, {}).get(version, {})

    folder = cache_folder(instance, definition.name)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    if path.is_symlink():
        raise SourceError(f"cached source {path} is a symlink")
    if path.is_file():
        try:
            verify_checksums(path, expected)
        except SourceError as error:
            log(f"Cached {path} is not valid ({error}), downloading it again")
        else:
            log(f"Using cached {path}")
            return path

    log(f"Downloading {url}")
    temporary = _fetch(url, folder, filename)
    try:
        verify_checksums(temporary, expected, label=filename)
        # Atomic within the folder: a concurrent reader sees the old file or the new one.
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return path

"""builds.sources: artifact sources downloaded, verified and cached.

Sources are downloaded from a local HTTP server, so the tests check what the code really
does (redirects, size caps, addresses refused).
"""

import hashlib
import os
import threading
from collections.abc import Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock

import pytest

from builds import sources
from builds.definition import (
    parse_definition,
)
from builds.sources import SourceError, cached_source, verify_checksums


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def http_root(tmp_path) -> Iterator[tuple[Path, str, ThreadingHTTPServer]]:
    """A folder served over HTTP on a free local port: (folder, base URL, server)."""
    root = tmp_path / "served"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def cache_dir(settings, tmp_path) -> Path:
    settings.FATBUILDR_CACHE_DIR = tmp_path / "cache"
    settings.FATBUILDR_SOURCE_DOWNLOAD_TIMEOUT = 5
    # The test server listens on loopback, which production refuses (see below).
    settings.FATBUILDR_SOURCE_ALLOW_PRIVATE = True
    return settings.FATBUILDR_CACHE_DIR


def _definition(base: str, checksum: str | None = None):
    text = f"source: {base}/hello-{{{{ version }}}}.tar.gz\nversion: 2.10\n"
    if checksum:
        text += f"checksums:\n  2.10:\n    sha256: {checksum}\n"
    return parse_definition(text, artifact="hello")


def test_verify_checksums(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"hello")
    digest = hashlib.sha256(b"hello").hexdigest()
    verify_checksums(path, {"sha256": digest, "sha1": hashlib.sha1(b"hello").hexdigest()})
    with pytest.raises(SourceError) as error:
        verify_checksums(path, {"sha256": "0" * 64})
    assert str(error.value) == f"file: sha256 checksum mismatch, expected {'0' * 64}, got {digest}"


def test_cached_source_downloads_verifies_and_reuses(http_root, cache_dir):
    root, base, server = http_root
    content = os.urandom(3000)
    (root / "hello-2.10.tar.gz").write_bytes(content)
    definition = _definition(base, hashlib.sha256(content).hexdigest())
    lines: list[str] = []
    path = cached_source(
        definition, definition.sources[0], "2.10", instance="default", log=lines.append
    )
    assert path == cache_dir / "default" / "hello" / "hello-2.10.tar.gz"
    assert path.read_bytes() == content
    assert path.stat().st_mode & 0o777 == 0o644
    assert lines == [f"Downloading {base}/hello-2.10.tar.gz"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["hello-2.10.tar.gz"]

    # No network needed the second time.
    server.shutdown()
    lines.clear()
    again = cached_source(
        definition, definition.sources[0], "2.10", instance="default", log=lines.append
    )
    assert again == path
    assert lines == [f"Using cached {path}"]


def test_cached_source_without_checksums_reuses_the_cache(cache_dir):
    definition = _definition("http://127.0.0.1:9")  # discard port: nothing listens there
    cached = cache_dir / "default" / "hello" / "hello-2.10.tar.gz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"cached")
    path = cached_source(definition, definition.sources[0], "2.10", instance="default", log=print)
    assert path == cached
    assert cached.read_bytes() == b"cached"


def test_cached_source_checksum_mismatch_leaves_nothing(http_root, cache_dir):
    root, base, _ = http_root
    (root / "hello-2.10.tar.gz").write_bytes(b"tampered")
    definition = _definition(base, "0" * 64)
    with pytest.raises(SourceError, match=r"hello-2\.10\.tar\.gz: sha256 checksum mismatch"):
        cached_source(definition, definition.sources[0], "2.10", instance="default", log=print)
    assert list((cache_dir / "default" / "hello").iterdir()) == []


def test_cached_source_replaces_a_bad_cached_file(http_root, cache_dir):
    root, base, _ = http_root
    (root / "hello-2.10.tar.gz").write_bytes(b"good")
    definition = _definition(base, hashlib.sha256(b"good").hexdigest())
    cached = cache_dir / "default" / "hello" / "hello-2.10.tar.gz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"half a fi")
    lines: list[str] = []
    cached_source(definition, definition.sources[0], "2.10", instance="default", log=lines.append)
    assert cached.read_bytes() == b"good"
    assert lines[-1] == f"Downloading {base}/hello-2.10.tar.gz"


def test_cached_source_http_errors(http_root, cache_dir):
    _, base, _ = http_root
    definition = _definition(base)
    with pytest.raises(SourceError, match=r"Downloading .*/hello-2.10.tar.gz failed: HTTP 404"):
        cached_source(definition, definition.sources[0], "2.10", instance="default", log=print)
    assert list((cache_dir / "default" / "hello").iterdir()) == []
    refused = _definition("http://127.0.0.1:9")
    with pytest.raises(SourceError, match="failed"):
        cached_source(refused, refused.sources[0], "2.10", instance="default", log=print)


def test_cached_source_caps_the_download_size(http_root, cache_dir, settings):
    root, base, _ = http_root
    (root / "hello-2.10.tar.gz").write_bytes(b"x" * 5000)
    settings.FATBUILDR_BUILD_ARCHIVE_MAX_SIZE = 1000
    definition = _definition(base)
    with pytest.raises(SourceError, match="larger than 1000 bytes"):
        cached_source(definition, definition.sources[0], "2.10", instance="default", log=print)
    assert list((cache_dir / "default" / "hello").iterdir()) == []


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd?", "ftp://example.org/hello-{{ version }}.tar"]
)
def test_cached_source_refuses_other_schemes(cache_dir, url):
    definition = parse_definition(f"source: {url}\nversion: 1\n", artifact="hello")
    with pytest.raises(SourceError, match="only http and https URLs are supported"):
        cached_source(definition, definition.sources[0], "1", instance="default", log=print)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5432/x.tar.gz",
        "http://localhost/x.tar.gz",
        "http://[::1]/x.tar.gz",
        "http://169.254.169.254/latest/meta-data/x.tar.gz",
        "http://10.1.2.3/x.tar.gz",
        "http://192.168.0.1/x.tar.gz",
    ],
)
def test_sources_on_non_public_addresses_are_refused(cache_dir, settings, url):
    settings.FATBUILDR_SOURCE_ALLOW_PRIVATE = False
    definition = parse_definition(f"source: {url}\nversion: 1\n", artifact="hello")
    with pytest.raises(SourceError, match="non-public address"):
        cached_source(definition, definition.sources[0], "1", instance="default", log=print)
    assert not list((cache_dir / "default" / "hello").iterdir())


def test_a_redirect_is_checked_like_the_first_address(http_root, cache_dir, settings):
    """A public server could redirect to the farm's own services: every hop is checked."""
    root, base, _ = http_root
    (root / "hello-2.10.tar.gz").write_bytes(b"data")
    redirect = ThreadingHTTPServer(("127.0.0.1", 0), _redirect_handler(f"{base}/hello-2.10.tar.gz"))
    thread = threading.Thread(target=redirect.serve_forever, daemon=True)
    thread.start()
    try:
        definition = _definition(f"http://127.0.0.1:{redirect.server_address[1]}")
        lines: list[str] = []
        path = cached_source(
            definition, definition.sources[0], "2.10", instance="default", log=lines.append
        )
        assert path.read_bytes() == b"data"  # followed, when private addresses are allowed

        path.unlink()
        checked: list[str] = []
        settings.FATBUILDR_SOURCE_ALLOW_PRIVATE = False
        real_check = sources.check_destination

        def public_first_hop(url: str) -> None:
            # Stands for a public first server: only the redirect's target is checked for real.
            checked.append(url)
            if len(checked) > 1:
                real_check(url)

        with (
            mock.patch.object(sources, "check_destination", public_first_hop),
            pytest.raises(SourceError, match="non-public address"),
        ):
            cached_source(definition, definition.sources[0], "2.10", instance="default", log=print)
        assert checked[-1] == f"{base}/hello-2.10.tar.gz"
        assert not path.exists()
    finally:
        redirect.shutdown()
        redirect.server_close()
        thread.join(timeout=5)


def _redirect_handler(location: str) -> type[BaseHTTPRequestHandler]:
    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the http.server API
            self.send_response(302)
            self.send_header("Location", location)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return Redirect

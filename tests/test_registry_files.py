"""Registry files for apt and dnf (compat §1.7): headers, conditional and range requests,
listings, the X-Accel-Redirect hand-off, and confinement to the instance registry."""

import gzip
import os
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.core.signals import request_finished
from django.db import close_old_connections
from django.test import AsyncClient
from django.utils.http import http_date

from registry import served_paths
from registry.api.downloads import RangeNotSatisfiable, content_type, parse_range

NOT_FOUND = {"error": "File not found in registry"}
IMAGE = bytes(range(256)) + b"0123456789" * 4  # 296 bytes
# Contents that must never leave the server.
SECRETS = (b"OUTSIDE-SECRET", b"CONF-SECRET", b"DB-SECRET", b"OTHER-INSTANCE-SECRET", b"HIDDEN")
HOSTILE_NAME = "<script>alert(1)&amp;.deb"  # no "/": it is one file name
HOSTILE_QUOTED = "%3Cscript%3Ealert%281%29%26amp%3B.deb"
DEB = b"!<arch>\ndebian-binary"
QUOTE_NAME = 'x" onmouseover="alert(1).deb'


def write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@pytest.fixture
def fake_registry(settings, tmp_path, default_instance, multi_mode) -> Path:
    """A fake registry of the default instance, with hostile names and symlinks."""
    data = tmp_path / "data"
    settings.FATBUILDR_DATA_DIR = data
    settings.FATBUILDR_REGISTRY_LISTING = True
    settings.FATBUILDR_ACCEL_REDIRECT_PREFIX = ""
    root = data / "registry" / default_instance.id
    outside = write(tmp_path / "secret.txt", b"OUTSIDE-SECRET")
    write(data / "keyrings" / default_instance.id / "passphrase", b"OUTSIDE-SECRET")
    write(data / "registry" / "other" / "deb" / "secret", b"OTHER-INSTANCE-SECRET")

    deb = root / "deb"
    write(deb / "conf" / "distributions", b"Codename: bookworm\nCONF-SECRET\n")
    write(deb / "db" / "packages.db", b"DB-SECRET")
    write(deb / ".hidden", b"HIDDEN")
    write(deb / "dists" / "bookworm" / "InRelease", b"Origin: default\n")
    write(
        deb / "dists" / "bookworm" / "main" / "binary-amd64" / "Packages.gz",
        gzip.compress(b"Package: hello\n"),
    )
    pool = deb / "pool" / "main" / "h" / "hello"
    write(pool / "hello_1.0_amd64.deb", DEB)
    write(pool / HOSTILE_NAME, b"hostile")
    write(pool / QUOTE_NAME, b"quote")
    (deb / "escape").symlink_to(outside)
    (deb / "escape-relative").symlink_to("../../../../secret.txt")
    (deb / "escape-dir").symlink_to(tmp_path)
    (deb / "other").symlink_to("../../other/deb/secret")
    (deb / "to-conf").symlink_to("conf/distributions")
    (deb / "to-conf-dir").symlink_to("conf")
    (deb / "loop").symlink_to("loop")

    repo = root / "rpm" / "bookworm" / "main" / "x86_64"
    write(repo / "repodata" / "repomd.xml", b"<repomd/>")
    write(repo / "repodata" / "abc-primary.xml.gz", gzip.compress(b"<metadata/>"))
    write(repo / ".repodata" / "repomd.xml", b"HIDDEN")
    write(repo / "Packages" / "hello-1.0-1.x86_64.rpm", b"\xed\xab\xee\xdb")
    (repo.parent / "aarch64").symlink_to("x86_64")  # inside: allowed

    osi = root / "osi" / "bookworm" / "main"
    write(osi / "image_1.raw", IMAGE)
    (osi / "latest.raw").symlink_to("image_1.raw")  # inside: allowed
    return root


def assert_not_found(response) -> None:
    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert_no_secret(response)


def assert_no_secret(response) -> None:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    for secret in SECRETS:
        assert secret not in body
    assert "X-Accel-Redirect" not in response


# --- Files ---------------------------------------------------------------------------


def test_file_content_and_headers(anonymous_client, fake_registry):
    path = fake_registry / "deb" / "dists" / "bookworm" / "InRelease"
    response = anonymous_client.get("/default/deb/dists/bookworm/InRelease")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"Origin: default\n"
    info = path.stat()
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Length"] == str(info.st_size)
    assert response["Cache-Control"] == "no-cache"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Last-Modified"] == http_date(info.st_mtime)
    assert response["ETag"].startswith('"') and response["ETag"].endswith('"')
    assert "Content-Encoding" not in response


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/default/rpm/bookworm/main/x86_64/repodata/abc-primary.xml.gz", "application/gzip"),
        ("/default/deb/dists/bookworm/main/binary-amd64/Packages.gz", "application/gzip"),
        ("/default/rpm/bookworm/main/x86_64/repodata/repomd.xml", "text/xml"),
        ("/default/rpm/bookworm/main/x86_64/Packages/hello-1.0-1.x86_64.rpm", "application/x-rpm"),
        (
            "/default/deb/pool/main/h/hello/hello_1.0_amd64.deb",
            "application/vnd.debian.binary-package",
        ),
    ],
)
def test_content_type_and_never_a_content_encoding(anonymous_client, fake_registry, url, expected):
    response = anonymous_client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == expected
    assert "Content-Encoding" not in response


def test_gzip_files_are_sent_as_raw_bytes(anonymous_client, fake_registry):
    response = anonymous_client.get("/default/rpm/bookworm/main/x86_64/repodata/abc-primary.xml.gz")
    assert gzip.decompress(b"".join(response.streaming_content)) == b"<metadata/>"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Packages.xz", "application/x-xz"),
        ("hello_1.0.orig.tar.gz", "application/gzip"),
        ("SHA256SUMS", "application/octet-stream"),
        ("image_1.raw", "application/octet-stream"),
    ],
)
def test_content_type_guesses(name, expected):
    assert content_type(name) == expected


def test_symlink_inside_the_registry_is_served(anonymous_client, fake_registry):
    response = anonymous_client.get("/default/osi/bookworm/main/latest.raw")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == IMAGE
    response = anonymous_client.get("/default/rpm/bookworm/main/aarch64/repodata/repomd.xml")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"<repomd/>"


def test_missing_file_and_unknown_instance(anonymous_client, fake_registry):
    assert_not_found(anonymous_client.get("/default/deb/dists/trixie/InRelease"))
    assert_not_found(anonymous_client.get("/default/osi/bookworm/main/image_1.raw/"))
    response = anonymous_client.get("/nope/deb/dists/bookworm/InRelease")
    assert response.status_code == 404
    assert response.json() == {"error": "instance nope not found"}


def test_instance_without_registry(anonymous_client, settings, default_instance, tmp_path):
    settings.FATBUILDR_DATA_DIR = tmp_path
    assert_not_found(anonymous_client.get("/default/deb/"))


def test_head_sends_the_headers_only(anonymous_client, fake_registry):
    get = anonymous_client.get("/default/osi/bookworm/main/image_1.raw")
    head = anonymous_client.head("/default/osi/bookworm/main/image_1.raw")
    assert head.status_code == 200
    assert head.content == b""
    for header in ("Content-Type", "Content-Length", "ETag", "Last-Modified", "Cache-Control"):
        assert head[header] == get[header]
    assert head["Content-Length"] == str(len(IMAGE))
    head = anonymous_client.head("/default/osi/bookworm/main/image_1.raw", HTTP_RANGE="bytes=0-9")
    assert head.status_code == 200  # Ranges are defined for GET only.


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "options"])
def test_other_methods_are_not_allowed(anonymous_client, fake_registry, method):
    response = getattr(anonymous_client, method)("/default/deb/dists/bookworm/InRelease")
    assert response.status_code == 405
    assert set(response.json()) == {"error"}


def test_existing_routes_are_not_shadowed(anonymous_client, fake_registry):
    assert anonymous_client.get("/default/instance.json").json()["id"] == "default"
    response = anonymous_client.get("/default/keyring.asc")
    assert response.json() == {"error": "No keyring available on this instance"}
    assert anonymous_client.get("/default/debian/x").status_code == 404


# --- Conditional and range requests --------------------------------------------------

IMAGE_URL = "/default/osi/bookworm/main/image_1.raw"


def test_if_none_match(anonymous_client, fake_registry):
    etag = anonymous_client.get(IMAGE_URL)["ETag"]
    response = anonymous_client.get(IMAGE_URL, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag
    assert response["Cache-Control"] == "no-cache"
    assert anonymous_client.get(IMAGE_URL, HTTP_IF_NONE_MATCH=f'"x", {etag}').status_code == 304
    assert anonymous_client.get(IMAGE_URL, HTTP_IF_NONE_MATCH='"other"').status_code == 200


def test_etag_changes_with_the_file(anonymous_client, fake_registry):
    etag = anonymous_client.get(IMAGE_URL)["ETag"]
    path = fake_registry / "osi" / "bookworm" / "main" / "image_1.raw"
    path.write_bytes(IMAGE + b"!")
    assert anonymous_client.get(IMAGE_URL, HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_if_modified_since(anonymous_client, fake_registry):
    path = fake_registry / "osi" / "bookworm" / "main" / "image_1.raw"
    os.utime(path, (1_700_000_000, 1_700_000_000))
    response = anonymous_client.get(IMAGE_URL, HTTP_IF_MODIFIED_SINCE=http_date(1_700_000_000))
    assert response.status_code == 304
    response = anonymous_client.get(IMAGE_URL, HTTP_IF_MODIFIED_SINCE=http_date(1_600_000_000))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == IMAGE


def test_failed_precondition_is_an_error_object(anonymous_client, fake_registry):
    response = anonymous_client.get(IMAGE_URL, HTTP_IF_MATCH='"other"')
    assert response.status_code == 412
    assert response.json() == {"error": "Precondition failed"}


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=10-19", 10, 19),
        ("bytes=290-", 290, 295),
        ("bytes=-5", 291, 295),
        ("bytes=-1000", 0, 295),
        ("bytes=290-1000", 290, 295),
    ],
)
def test_single_range(anonymous_client, fake_registry, header, first, last):
    response = anonymous_client.get(IMAGE_URL, HTTP_RANGE=header)
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {first}-{last}/{len(IMAGE)}"
    assert response["Content-Length"] == str(last - first + 1)
    assert b"".join(response.streaming_content) == IMAGE[first : last + 1]


@pytest.mark.parametrize("header", ["bytes=296-", "bytes=1000-2000", "bytes=-0"])
def test_unsatisfiable_range(anonymous_client, fake_registry, header):
    response = anonymous_client.get(IMAGE_URL, HTTP_RANGE=header)
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(IMAGE)}"
    assert set(response.json()) == {"error"}


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "bytes=9-2", "items=0-5", "bytes=a-b"])
def test_other_ranges_get_the_whole_file(anonymous_client, fake_registry, header):
    response = anonymous_client.get(IMAGE_URL, HTTP_RANGE=header)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == IMAGE


def test_if_range(anonymous_client, fake_registry):
    full = anonymous_client.get(IMAGE_URL)
    etag, last_modified = full["ETag"], full["Last-Modified"]
    for validator, expected in [
        (etag, 206),
        ('"stale"', 200),
        (f"W/{etag}", 200),
        (last_modified, 206),
        (http_date(0), 200),
    ]:
        response = anonymous_client.get(IMAGE_URL, HTTP_RANGE="bytes=0-3", HTTP_IF_RANGE=validator)
        assert response.status_code == expected, validator
        body = b"".join(response.streaming_content)
        assert body == (IMAGE[:4] if expected == 206 else IMAGE)


def test_parse_range():
    assert parse_range("bytes=0-0", 10) == (0, 0)
    assert parse_range("BYTES = 2-", 10) == (2, 9)
    assert parse_range("bytes=-", 10) is None
    assert parse_range("bytes=1-2-3", 10) is None
    assert parse_range("bytes=\u00b2-", 10) is None  # a digit to str.isdigit, not to int()
    assert parse_range("bytes=0-1, 3-4", 10) is None
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=-1", 0)


# --- Listings ------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/default/deb/", "/default/deb"])
def test_format_root_listing(anonymous_client, fake_registry, url):
    response = anonymous_client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    html = response.content.decode()
    assert "Index of /default/deb/" in html
    assert '<a href="/default/deb/dists/">dists/</a>' in html
    assert '<a href="/default/deb/pool/">pool/</a>' in html
    assert html.index("dists/") < html.index("pool/")
    # Private, hidden, escaping and looping entries are not shown.
    for name in ("conf", "db", ".hidden", "escape", "other", "to-conf", "loop"):
        assert f">{name}" not in html, name
    assert "../" not in html  # Nothing to link above the format root.
    assert_no_secret(response)


def test_listing_escapes_names(anonymous_client, fake_registry):
    response = anonymous_client.get("/default/deb/pool/main/h/hello")
    html = response.content.decode()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&amp;amp;.deb" in html
    assert f'href="/default/deb/pool/main/h/hello/{HOSTILE_QUOTED}"' in html
    assert 'onmouseover="' not in html
    assert "x%22%20onmouseover%3D%22alert%281%29.deb" in html
    assert '<a href="/default/deb/pool/main/h/">../</a>' in html
    assert f'hello_1.0_amd64.deb</a></td><td><data value="{len(DEB)}">' in html
    # The links of the listing lead to the files.
    hostile = anonymous_client.get(f"/default/deb/pool/main/h/hello/{HOSTILE_QUOTED}")
    assert b"".join(hostile.streaming_content) == b"hostile"
    quoted = anonymous_client.get(
        "/default/deb/pool/main/h/hello/x%22%20onmouseover%3D%22alert%281%29.deb"
    )
    assert b"".join(quoted.streaming_content) == b"quote"


def test_listing_shows_symlinks_inside(anonymous_client, fake_registry):
    html = anonymous_client.get("/default/osi/bookworm/main/").content.decode()
    assert f'latest.raw</a></td><td><data value="{len(IMAGE)}">' in html
    assert '<a href="/default/osi/bookworm/">../</a>' in html
    html = anonymous_client.get("/default/rpm/bookworm/main/x86_64/").content.decode()
    assert "repodata/" in html and ".repodata" not in html
    html = anonymous_client.get("/default/rpm/bookworm/main/").content.decode()
    assert '<a href="/default/rpm/bookworm/main/aarch64/">aarch64/</a>' in html


def test_listing_disabled(anonymous_client, fake_registry, settings):
    settings.FATBUILDR_REGISTRY_LISTING = False
    response = anonymous_client.get("/default/deb/dists/")
    assert response.status_code == 403
    assert response.json() == {"error": "Access forbidden"}
    assert anonymous_client.get("/default/deb/dists/bookworm/InRelease").status_code == 200
    assert_not_found(anonymous_client.get("/default/deb/conf/"))


# --- Confinement ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/default/deb/../../../secret.txt",
        "/default/deb/dists/../../../../secret.txt",
        "/default/deb/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "/default/deb/%2E%2E/%2E%2E/keyrings/default/passphrase",
        "/default/deb/dists%2f..%2f..%2f..%2f..%2fsecret.txt",
        "/default/deb/%252e%252e/%252e%252e/%252e%252e/secret.txt",
        "/default/deb/..%5c..%5c..%5c..%5csecret.txt",
        "/default/deb/dists\\..\\..\\..\\..\\secret.txt",
        "/default/deb/%00/../../../secret.txt",
        "/default/deb/dists/bookworm/InRelease%00",
        "/default/deb/./conf/distributions",
        "/default/deb/conf/distributions",
        "/default/deb/conf/",
        "/default/deb/conf",
        "/default/deb//conf/distributions",
        "/default/deb/db/packages.db",
        "/default/deb/db/",
        "/default/deb/.hidden",
        "/default/rpm/bookworm/main/x86_64/.repodata/repomd.xml",
        "/default/rpm/bookworm/main/x86_64/.repodata/",
        "/default/deb/escape",
        "/default/deb/escape-relative",
        "/default/deb/escape-dir/",
        "/default/deb/escape-dir/secret.txt",
        "/default/deb/other",
        "/default/deb/to-conf",
        "/default/deb/to-conf-dir/distributions",
        "/default/deb/loop",
        "/default/osi/../deb/conf/distributions",
    ],
)
def test_paths_outside_or_private_are_refused(anonymous_client, fake_registry, url):
    assert_not_found(anonymous_client.get(url))


@pytest.mark.parametrize(
    "url", ["/default//etc/passwd", "/default/%2Fetc/passwd", "/default/deb%00"]
)
def test_paths_off_the_registry_route(anonymous_client, fake_registry, url):
    response = anonymous_client.get(url)
    assert response.status_code == 404
    assert_no_secret(response)


def test_refusals_hold_in_accel_redirect_mode(anonymous_client, fake_registry, settings):
    settings.FATBUILDR_ACCEL_REDIRECT_PREFIX = "/_registry/"
    for url in ("/default/deb/escape", "/default/deb/conf/distributions", "/default/deb/%2e%2e/x"):
        assert_not_found(anonymous_client.get(url))


def test_encoded_segments_reaching_the_resolver_stay_literal(fake_registry):
    """A path that reaches the view still percent-encoded is one literal name, not `..`."""
    os.mkdir(fake_registry / "deb" / "%2e%2e")
    with pytest.raises(served_paths.RegistryPathError):
        served_paths.open_registry_path("default", "deb/%2e%2e/%2e%2e/%2e%2e/secret.txt")
    with served_paths.open_registry_path("default", "deb/%2e%2e") as node:
        assert node.is_dir and node.real_parts == ("deb", "%2e%2e")


@pytest.mark.parametrize(
    "path",
    ["", "/deb/dists", "deb/../deb", "deb\\dists", "deb/dists\x00", "keyrings/x", "deb/db/x"],
)
def test_split_registry_path_refuses(path):
    with pytest.raises(served_paths.RegistryPathError):
        served_paths.split_registry_path(path)


def test_split_registry_path_normalizes():
    assert served_paths.split_registry_path("deb//dists/bookworm/") == ("deb", "dists", "bookworm")


def test_open_beneath_refuses_a_symlink_swapped_in(fake_registry):
    """A folder replaced by a symlink after the path was checked is not followed."""
    root = fake_registry.resolve()
    parts = served_paths.confined_real_parts(root, ("deb", "dists", "bookworm", "InRelease"))
    dists = root / "deb" / "dists"
    dists.rename(root / "deb" / "dists.old")
    (root / "deb" / "elsewhere").mkdir()
    (root / "deb" / "elsewhere" / "bookworm").mkdir()
    write(root / "deb" / "elsewhere" / "bookworm" / "InRelease", b"swapped")
    dists.symlink_to("elsewhere")
    with pytest.raises(OSError):
        served_paths.open_beneath(root, parts)


# --- X-Accel-Redirect and URL modes --------------------------------------------------


def test_accel_redirect(anonymous_client, fake_registry, settings):
    settings.FATBUILDR_ACCEL_REDIRECT_PREFIX = "/_registry/"
    response = anonymous_client.get(f"/default/deb/pool/main/h/hello/{HOSTILE_NAME}")
    assert response.status_code == 200
    assert response.content == b""
    assert response["X-Accel-Redirect"] == (
        f"/_registry/default/deb/pool/main/h/hello/{HOSTILE_QUOTED}"
    )
    assert response["Content-Type"] == "application/vnd.debian.binary-package"
    assert response["Cache-Control"] == "no-cache"
    response = anonymous_client.get("/default/osi/bookworm/main/latest.raw")
    assert response["X-Accel-Redirect"] == "/_registry/default/osi/bookworm/main/image_1.raw"
    # Listings are still rendered here.
    response = anonymous_client.get("/default/deb/")
    assert "X-Accel-Redirect" not in response
    assert b"dists/" in response.content


def test_mono_instance_mode(anonymous_client, fake_registry, mono_mode):
    response = anonymous_client.get("/deb/dists/bookworm/InRelease")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"Origin: default\n"
    html = anonymous_client.get("/deb").content.decode()
    assert "Index of /deb/" in html
    assert '<a href="/deb/dists/">dists/</a>' in html
    assert anonymous_client.get("/default/deb/dists/bookworm/InRelease").status_code == 404
    assert_not_found(anonymous_client.get("/deb/%2e%2e/%2e%2e/%2e%2e/secret.txt"))


@pytest.mark.django_db(transaction=True)
def test_asgi_streams_asynchronously(fake_registry):
    """Under ASGI the body is an async iterator: no thread holds it, nothing is read whole."""

    async def fetch():
        response = await AsyncClient().get(IMAGE_URL, headers={"Range": "bytes=6-"})
        assert response.is_async
        return response, b"".join([chunk async for chunk in response.streaming_content])

    response, body = async_to_sync(fetch)()
    assert response.status_code == 206
    assert body == IMAGE[6:]


def test_no_descriptor_is_leaked(anonymous_client, fake_registry, settings):
    """Every answer closes the descriptor it opened, whether or not the body is read."""

    def open_descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    def close_unread(response) -> None:
        """What the server does when the client goes away (without the test client closing
        the test's database connection on request_finished)."""
        request_finished.disconnect(close_old_connections)
        try:
            response.close()
        finally:
            request_finished.connect(close_old_connections)

    before = open_descriptors()
    close_unread(anonymous_client.get(IMAGE_URL))
    b"".join(anonymous_client.get(IMAGE_URL, HTTP_RANGE="bytes=1-2").streaming_content)
    anonymous_client.head(IMAGE_URL)
    anonymous_client.get(IMAGE_URL, HTTP_IF_NONE_MATCH="*")
    anonymous_client.get(IMAGE_URL, HTTP_IF_MATCH='"other"')
    anonymous_client.get(IMAGE_URL, HTTP_RANGE="bytes=1000-")
    anonymous_client.get("/default/deb/pool/main/h/hello/")
    anonymous_client.get("/default/deb/escape")
    settings.FATBUILDR_REGISTRY_LISTING = False
    anonymous_client.get("/default/deb/")
    settings.FATBUILDR_ACCEL_REDIRECT_PREFIX = "/_registry/"
    anonymous_client.get(IMAGE_URL)
    assert open_descriptors() == before

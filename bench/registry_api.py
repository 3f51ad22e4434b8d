"""Registry API benchmark: our HTTP answers against one raw SQL query plus json.dumps.

Run from the repository root:

    .venv/bin/python bench/registry_api.py                 # 100,000 artifacts
    .venv/bin/python bench/registry_api.py --artifacts 20000 --keep

What it does:

1. (Re)creates the PostgreSQL database `fatbuildr_bench` (127.0.0.1:5432, user
   postgres), runs `manage.py migrate` and `manage.py instances load
   instance-files/default.yml` on it, then seeds the registry index with Django's
   `bulk_create`: deb (bookworm, sid) and rpm (el8, el9), derivatives main and
   foox each; deb/bookworm/foox holds exactly 10,000 artifacts (or half of
   --artifacts when smaller); sources and their binaries are linked; about 100
   artifacts contain the search term; the source `bigpkg` (bookworm/main) has
   20 binaries and 50 changelog entries, its binary `bigpkg-bin00` 50 changelog
   entries and 200 content entries.
2. Starts gunicorn (gthread, 2 workers, 4 threads) in production mode
   (DJANGO_DEBUG unset) on a free local port, and always stops it by PID.
3. For each endpoint, measures the latency of anonymous GETs through the whole
   HTTP stack with a keep-alive `requests.Session`, after a warm-up; then the
   baseline: the same data fetched by ONE raw SQL query through a persistent
   psycopg connection, shaped into the same structure and passed to json.dumps.
   The HTTP answer must equal the baseline JSON (parsed), so both do the same work.
4. Prints p50/p95 of both and the ratios (target: at most 2), and drops the
   database unless --keep is given.
"""

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import requests

# Run as a script, sys.path starts with this folder, whose tasks.py would hide the `tasks`
# application: the repository root goes first instead (also for `bench.common`).
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if p and Path(p).resolve() != ROOT / "bench"]

from bench.common import (  # noqa: E402
    PYTHON,
    clean_environment,
    database_url,
    drop_database,
    ensure_database,
    manage,
    percentile,
)

GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"

BENCH_DB = "fatbuildr_bench"
BENCH_URL = database_url(BENCH_DB)

INSTANCE = "default"
SEARCH_TERM = "needle"
SEARCH_HITS = 100
BIG_DERIVATIVE = ("deb", "bookworm", "foox")
BIG_DERIVATIVE_SIZE = 10_000
DERIVATIVES = [
    ("deb", "bookworm", "main"),
    ("deb", "bookworm", "foox"),
    ("deb", "sid", "main"),
    ("deb", "sid", "foox"),
    ("rpm", "el8", "main"),
    ("rpm", "el8", "foox"),
    ("rpm", "el9", "main"),
    ("rpm", "el9", "foox"),
]
DIST_TAGS = {"bookworm": "deb12", "sid": "deb13", "el8": "el8", "el9": "el9"}
BIG_SOURCE = "bigpkg"
BIG_BINARY = "bigpkg-bin00"
BIG_BINARIES = 20
BIG_CHANGELOG = 50
BIG_CONTENT = 200
BINARY_SUFFIXES = [("", "x86_64"), ("lib", "x86_64"), ("-dev", "x86_64"), ("-doc", "noarch")]
BINARY_SUFFIXES.append(("-dbgsym", "x86_64"))
AUTHOR = "John Doe <john@doe.org>"
EPOCH = 1_655_838_256

TARGET_RATIO = 2.0


# --- database and seeding --------------------------------------------------


def bench_environment(data_dir: str) -> dict[str, str]:
    """Environment of manage.py, gunicorn and the in-process seeding: production settings."""
    return clean_environment(
        BENCH_DB,
        DJANGO_SETTINGS_MODULE="fatbuildr_site.settings",
        DJANGO_SECRET_KEY="bench-only-secret-key-not-for-production",
        FATBUILDR_DATA_DIR=data_dir,
        FATBUILDR_LOG_LEVEL="WARNING",
    )


def package_plan(total: int) -> list[tuple[tuple[str, str, str], int, int]]:
    """(derivative, package number, artifact count) of every generated package.

    A package is one source plus count-1 binaries (2 to 6 artifacts, the last
    package of a derivative may be smaller). deb/bookworm/main keeps room for
    the big package, which is created separately.
    """
    big = min(BIG_DERIVATIVE_SIZE, total // 2)
    big_extra = 1 + BIG_BINARIES
    rest = total - big - big_extra
    others = [d for d in DERIVATIVES if d != BIG_DERIVATIVE]
    counts = {BIG_DERIVATIVE: big}
    for i, derivative in enumerate(others):
        counts[derivative] = rest // len(others) + (1 if i < rest % len(others) else 0)
    plan = []
    number = 0
    for derivative in DERIVATIVES:
        remaining = counts[derivative]
        while remaining > 0:
            size = min(2 + number % 5, remaining)
            plan.append((derivative, number, size))
            remaining -= size
            number += 1
    return plan


def needle_packages(plan: list[tuple[tuple[str, str, str], int, int]]) -> set[int]:
    """Package numbers whose names contain the search term: about SEARCH_HITS artifacts."""
    average = sum(size for _, _, size in plan) / len(plan)
    stride = max(1, round(len(plan) * average / SEARCH_HITS))
    if stride % 5 == 0:
        stride += 1  # package sizes cycle with period 5: do not always pick the same size
    chosen, hits = set(), 0
    for index in range(stride // 2, len(plan), stride):
        if hits >= SEARCH_HITS:
            break
        _, number, size = plan[index]
        chosen.add(number)
        hits += size
    return chosen


def seed(total: int) -> dict[str, Any]:
    """Fill the registry index in-process with bulk_create; returns what the benchmark needs."""
    import django

    django.setup()
    from django.db import connections, transaction

    from instances.models import Instance
    from registry.models import (
        Artifact,
        ChangelogEntry,
        ContentEntry,
        RegistryDerivative,
        RegistryDistribution,
        RegistryFormat,
    )

    instance = Instance.objects.get(pk=INSTANCE)
    plan = package_plan(total)
    needles = needle_packages(plan)
    with transaction.atomic():
        formats, dists, derivs = {}, {}, {}
        for fmt, dist, deriv in DERIVATIVES:
            if fmt not in formats:
                formats[fmt] = RegistryFormat.objects.create(instance=instance, name=fmt)
            if (fmt, dist) not in dists:
                dists[fmt, dist] = RegistryDistribution.objects.create(
                    format=formats[fmt], name=dist
                )
            derivs[fmt, dist, deriv] = RegistryDerivative.objects.create(
                distribution=dists[fmt, dist], name=deriv
            )

        def version(number: int, dist: str) -> str:
            return f"{1 + number % 7}.{number % 13}.{number % 3}-1.{DIST_TAGS[dist]}"

        def base_name(number: int) -> str:
            return f"{SEARCH_TERM}{number:06d}" if number in needles else f"pkg{number:06d}"

        sources = Artifact.objects.bulk_create(
            (
                Artifact(
                    derivative=derivs[derivative],
                    name=base_name(number),
                    architecture="src",
                    version=version(number, derivative[1]),
                    size=0,
                )
                for derivative, number, _ in plan
            ),
            batch_size=5000,
        )
        binaries = []
        for source, (derivative, number, size) in zip(sources, plan, strict=True):
            base = base_name(number)
            for index in range(size - 1):
                suffix, arch = BINARY_SUFFIXES[index]
                name = f"lib{base}" if suffix == "lib" else base + suffix
                binaries.append(
                    Artifact(
                        derivative=derivs[derivative],
                        name=name,
                        architecture=arch,
                        version=source.version,
                        size=(number * 7919 + index * 104729) % 5_000_000,
                        source=source,
                    )
                )
        binaries = Artifact.objects.bulk_create(binaries, batch_size=5000)

        # Filler: a two-entry changelog per source, two paths per binary.
        ChangelogEntry.objects.bulk_create(
            (
                ChangelogEntry(
                    artifact=source,
                    position=position,
                    version=source.version,
                    author=AUTHOR,
                    date=EPOCH - position * 86400,
                    changes=[f"Rebuild {position}"],
                )
                for source in sources
                for position in range(2)
            ),
            batch_size=5000,
        )
        ContentEntry.objects.bulk_create(
            (
                ContentEntry(artifact=binary, path=path, type=kind, size=size)
                for binary in binaries
                for path, kind, size in (
                    ("/usr", "d", 0),
                    (f"/usr/bin/{binary.name}", "f", binary.size),
                )
            ),
            batch_size=5000,
        )

        # The package described by the description benchmarks.
        main = derivs["deb", "bookworm", "main"]
        big_version = "2.0.1-1.deb12"
        big_source = Artifact.objects.create(
            derivative=main, name=BIG_SOURCE, architecture="src", version=big_version, size=0
        )
        big_binaries = Artifact.objects.bulk_create(
            Artifact(
                derivative=main,
                name=f"{BIG_SOURCE}-bin{i:02d}",
                architecture="noarch" if i % 3 == 2 else "x86_64",
                version=big_version,
                size=1000 * i + 17,
                source=big_source,
            )
            for i in range(BIG_BINARIES)
        )
        big_binary = big_binaries[0]
        ChangelogEntry.objects.bulk_create(
            ChangelogEntry(
                artifact=artifact,
                position=position,
                version=f"2.0.{BIG_CHANGELOG - position}-1.deb12",
                author=AUTHOR,
                date=EPOCH - position * 86400,
                changes=[f"Change {position}.{i}: fix something" for i in range(1 + position % 3)],
            )
            for artifact in (big_source, big_binary)
            for position in range(BIG_CHANGELOG)
        )
        content = []
        for i in range(BIG_CONTENT):
            if i % 10 == 0:
                content.append((f"/usr/share/{BIG_SOURCE}/dir{i // 10:02d}", "d", 0))
            else:
                path = f"/usr/share/{BIG_SOURCE}/dir{i // 10:02d}/file{i % 10}.dat"
                content.append((path, "f", 100 * i + 3))
        ContentEntry.objects.bulk_create(
            ContentEntry(artifact=big_binary, path=path, type=kind, size=size)
            for path, kind, size in content
        )

    search_hits = Artifact.objects.filter(name__contains=SEARCH_TERM).count()
    big_count = Artifact.objects.filter(derivative=derivs[BIG_DERIVATIVE]).count()
    artifacts = Artifact.objects.count()
    connections.close_all()
    with psycopg.connect(BENCH_URL, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return {"artifacts": artifacts, "search_hits": search_hits, "big_count": big_count}


def seed_in_subprocess(env: dict[str, str], total: int) -> dict[str, Any]:
    """Run seed() in a child process: the measuring process stays free of Django and its heap."""
    result = subprocess.run(
        [str(PYTHON), __file__, "--seed-only", str(total)],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.PIPE,
    )
    return json.loads(result.stdout)


# --- gunicorn ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    command = [
        str(GUNICORN),
        "fatbuildr_site.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--worker-class",
        "gthread",
        "--workers",
        "2",
        "--threads",
        "4",
        "--log-level",
        "warning",
    ]
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_until_up(process: subprocess.Popen, base: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({process.returncode}):\n{log.read_text()}")
        try:
            if requests.get(f"{base}/version", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer /version within 60 s:\n{log.read_text()}")


def stop_gunicorn(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- baseline: one raw SQL query, the same structure, json.dumps ---------------

# The listing order, written as the API queries write it (and as the artifact_listing index has it).
SOURCES_LAST = "CASE WHEN a.architecture = 'src' THEN 1 ELSE 0 END, a.name, a.architecture"

JOINS = """
    FROM registry_artifact a
    JOIN registry_registryderivative dv ON dv.id = a.derivative_id
    JOIN registry_registrydistribution d ON d.id = dv.distribution_id
    JOIN registry_registryformat f ON f.id = d.format_id
"""

SEARCH_SQL = f"""
    SELECT f.name, d.name, dv.name, a.architecture, a.name, a.size, a.version
    {JOINS}
    WHERE f.instance_id = %s AND a.name LIKE %s
    ORDER BY f.name, d.name, dv.name, {SOURCES_LAST}
"""

LISTING_SQL = f"""
    SELECT a.architecture, a.name, a.size, a.version
    {JOINS}
    WHERE f.instance_id = %s AND f.name = %s AND d.name = %s AND dv.name = %s
    ORDER BY {SOURCES_LAST}
"""

DESCRIPTION_SQL = f"""
    SELECT a.name, a.architecture,
      (SELECT coalesce(json_agg(json_build_object(
                'version', c.version, 'author', c.author, 'date', c.date, 'changes', c.changes)
              ORDER BY c.position), '[]')
         FROM registry_changelogentry c WHERE c.artifact_id = a.id),
      (SELECT coalesce(json_agg(json_build_object(
                'architecture', b.architecture, 'name', b.name, 'size', b.size,
                'version', b.version)
              ORDER BY {SOURCES_LAST.replace("a.", "b.")}), '[]')
         FROM registry_artifact b WHERE b.source_id = a.id),
      (SELECT coalesce(json_agg(json_build_object('path', e.path, 'type', e.type, 'size', e.size)
              ORDER BY e.id), '[]')
         FROM registry_contententry e WHERE e.artifact_id = a.id),
      s.architecture, s.name, s.size, s.version
    {JOINS}
    LEFT JOIN registry_artifact s ON s.id = a.source_id
    WHERE f.instance_id = %s AND f.name = %s AND d.name = %s AND dv.name = %s
      AND a.architecture = %s AND a.name = %s
"""


def dumps(data: Any) -> bytes:
    # The same JSON options as the API renderer, so both serialize the same way.
    return (
        json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    ).encode()


def like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def baseline_search(cur: psycopg.Cursor, term: str) -> bytes:
    cur.execute(SEARCH_SQL, (INSTANCE, like_pattern(term)))
    result: dict[str, dict[str, dict[str, list]]] = {}
    for fmt, dist, deriv, arch, name, size, version in cur.fetchall():
        result.setdefault(fmt, {}).setdefault(dist, {}).setdefault(deriv, []).append(
            {"architecture": arch, "name": name, "size": size, "version": version}
        )
    return dumps(result)


def baseline_listing(cur: psycopg.Cursor, fmt: str, dist: str, deriv: str) -> bytes:
    cur.execute(LISTING_SQL, (INSTANCE, fmt, dist, deriv))
    return dumps(
        [
            {"architecture": arch, "name": name, "size": size, "version": version}
            for arch, name, size, version in cur.fetchall()
        ]
    )


def baseline_description(
    cur: psycopg.Cursor, fmt: str, dist: str, deriv: str, arch: str, name: str
) -> bytes:
    cur.execute(DESCRIPTION_SQL, (INSTANCE, fmt, dist, deriv, arch, name))
    row = cur.fetchone()
    assert row is not None, f"{arch}/{name} not seeded"
    name, arch, changelog, binaries, content, *source = row
    description: dict[str, Any] = {"artifact": name, "changelog": changelog}
    if arch == "src":
        description["binaries"] = binaries
    else:
        architecture, source_name, size, version = source
        description["source"] = {
            "architecture": architecture,
            "name": source_name,
            "size": size,
            "version": version,
        }
        description["content"] = content
    return dumps(description)


# --- measurement ---------------------------------------------------------------


def measure(call: Callable[[], bytes], warmup: int, iterations: int) -> tuple[list[float], bytes]:
    body = b""
    for _ in range(warmup):
        body = call()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        body = call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples, body


def http_get(session: requests.Session, url: str) -> Callable[[], bytes]:
    def call() -> bytes:
        response = session.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:300]}")
        return response.content

    return call


def recreate_and_seed(env: dict[str, str], artifacts: int) -> dict:
    """A fresh bench database, migrated, with the default instance and *artifacts* seeded
    (in a child process); the seeding's facts."""
    print(f"Recreating database {BENCH_DB} and migrating...", flush=True)
    drop_database(BENCH_DB)  # A fresh one: the seeding expects an empty index.
    ensure_database(BENCH_DB)
    # --skip-checks: the accounts.W001 check queries auth_group, which a fresh
    # database does not have yet.
    manage(env, "migrate", "--noinput", "--skip-checks", "-v", "0")
    manage(env, "instances", "load", "instance-files/default.yml")
    print(f"Seeding {artifacts} artifacts...", flush=True)
    started = time.monotonic()
    facts = seed_in_subprocess(env, artifacts)
    print(
        f"  {facts['artifacts']} artifacts, {facts['big_count']} in "
        f"{'/'.join(BIG_DERIVATIVE)}, {facts['search_hits']} search hits "
        f"({time.monotonic() - started:.1f} s)",
        flush=True,
    )
    return facts


def main() -> int:
    if sys.argv[1:2] == ["--seed-only"]:
        print(json.dumps(seed(int(sys.argv[2]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=int, default=100_000, help="artifacts to seed")
    parser.add_argument("--iterations", type=int, default=200, help="iterations, small answers")
    parser.add_argument(
        "--big-iterations", type=int, default=50, help="iterations, derivative listing"
    )
    parser.add_argument("--keep", action="store_true", help=f"keep the {BENCH_DB} database")
    args = parser.parse_args()
    if args.artifacts < 1000:
        parser.error("--artifacts must be at least 1000")

    data_dir = tempfile.mkdtemp(prefix="fatbuildr-bench-")
    env = bench_environment(data_dir)
    log = Path(data_dir) / "gunicorn.log"
    gunicorn = None
    try:
        facts = recreate_and_seed(env, args.artifacts)

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        gunicorn = start_gunicorn(env, port, log)
        wait_until_up(gunicorn, base, log)
        print(f"gunicorn pid {gunicorn.pid} on {base} (gthread, 2 workers x 4 threads)\n")

        fmt, dist, deriv = BIG_DERIVATIVE
        prefix = f"{base}/{INSTANCE}/registry"
        cases = [
            (
                f"search.json?artifact={SEARCH_TERM}",
                f"{base}/{INSTANCE}/search.json?artifact={SEARCH_TERM}",
                lambda cur: baseline_search(cur, SEARCH_TERM),
                args.iterations,
            ),
            (
                f"{fmt}/{dist}/{deriv}.json ({facts['big_count']})",
                f"{prefix}/{fmt}/{dist}/{deriv}.json",
                lambda cur: baseline_listing(cur, fmt, dist, deriv),
                args.big_iterations,
            ),
            (
                f"deb/bookworm/main/src/{BIG_SOURCE}.json",
                f"{prefix}/deb/bookworm/main/src/{BIG_SOURCE}.json",
                lambda cur: baseline_description(cur, "deb", "bookworm", "main", "src", BIG_SOURCE),
                args.iterations,
            ),
            (
                f"deb/bookworm/main/x86_64/{BIG_BINARY}.json",
                f"{prefix}/deb/bookworm/main/x86_64/{BIG_BINARY}.json",
                lambda cur: baseline_description(
                    cur, "deb", "bookworm", "main", "x86_64", BIG_BINARY
                ),
                args.iterations,
            ),
        ]

        rows = []
        with (
            requests.Session() as session,
            psycopg.connect(BENCH_URL, autocommit=True) as conn,
            conn.cursor() as cur,
        ):
            # The floor of the HTTP stack: a view with no database work.
            floor, _ = measure(http_get(session, f"{base}/version"), 20, args.iterations)
            for label, url, baseline, iterations in cases:
                warmup = max(5, iterations // 10)
                ours, body = measure(http_get(session, url), warmup, iterations)
                theirs, expected = measure(lambda b=baseline: b(cur), warmup, iterations)
                answer, reference = json.loads(body), json.loads(expected)
                if answer != reference:
                    raise AssertionError(f"{label}: HTTP answer differs from the baseline JSON")
                rows.append((label, iterations, len(body), ours, theirs))

        print(
            f"HTTP floor, GET /version: p50 {percentile(floor, 0.5):.2f} ms, "
            f"p95 {percentile(floor, 0.95):.2f} ms\n"
        )
        header = (
            f"{'request':<44} {'n':>4} {'bytes':>7} {'ours p50':>9} {'ours p95':>9} "
            f"{'base p50':>9} {'base p95':>9} {'x p50':>6} {'x p95':>6} {'x net':>6}"
        )
        print(header)
        print("-" * len(header))
        over = False
        floor50 = percentile(floor, 0.5)
        for label, iterations, size, ours, theirs in rows:
            o50, o95 = percentile(ours, 0.5), percentile(ours, 0.95)
            b50, b95 = percentile(theirs, 0.5), percentile(theirs, 0.95)
            r50, r95, net = o50 / b50, o95 / b95, (o50 - floor50) / b50
            over |= r50 > TARGET_RATIO or r95 > TARGET_RATIO
            print(
                f"{label:<44} {iterations:>4} {size:>7} {o50:>9.2f} {o95:>9.2f} "
                f"{b50:>9.2f} {b95:>9.2f} {r50:>6.2f} {r95:>6.2f} {net:>6.2f}"
            )
        print(
            "\nTimes in ms; x = ours / baseline; x net = (ours p50 - /version p50) / baseline p50,"
            "\nthe ratio without the fixed HTTP and framework cost. Every HTTP answer equals"
            "\nthe baseline JSON."
        )
        print(
            f"Target x <= {TARGET_RATIO:g}: "
            + ("NOT met on every request." if over else "met on every request.")
        )
        return 0
    finally:
        if gunicorn is not None:
            stop_gunicorn(gunicorn)
        if args.keep:
            print(f"Kept database {BENCH_DB} ({BENCH_URL}).")
        else:
            drop_database(BENCH_DB)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

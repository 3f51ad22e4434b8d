#!/usr/bin/env python
"""Publish benchmark: our publish service against the bare tools, by registry size.

Run from the repository root:

    .venv/bin/python bench/publish.py
    .venv/bin/python bench/publish.py --sizes 0 1000 --rounds 3 --formats rpm

For each format (deb, rpm) and each size N (default 0, 1,000 and 10,000):

1. A registry holding N packages of that format in one distribution and
   derivative (deb bookworm/main, rpm el8/main of the default instance) is
   filled with the bare tools (reprepro includedeb; createrepo_c), then
   indexed with `registry.publishing.reindex`. The N packages are tiny
   distinct binaries from tests/packages.py (`build_many_debs`,
   `build_many_rpms`), built once and kept under --cache.
2. A copy of that registry is made for the bare tools.
3. Each round publishes hello-fb revision r (source and two binaries, built
   with dpkg-buildpackage / rpmbuild by tests/packages.py) twice:
   - "ours": `registry.publishing.publish` in this process, exactly what
     `manage.py registry import` and the builds call: reading the packages,
     the PostgreSQL lock, the tools, the index rows, the commit; command
     output goes to a task journal file as in a worker;
   - "bare": the tool commands alone on the copy: deb `reprepro include`
     of the .changes; rpm `rpmsign` of the three files, copies into the
     x86_64 and source repositories (the older revision's files removed),
     `createrepo_c --update --no-database` and a detached armored signature
     of each repomd.xml, as our service does.
   The first round is a warm-up; the figures are the medians of --rounds
   rounds. ratio = ours / bare; the target is at most 1.3 at every size.

Set-up: the PostgreSQL database `fatbuildr_bench_publish` (127.0.0.1:5432,
user postgres; created when missing and migrated), a data root in a
temporary directory, one RSA 4096 keyring (the production default) made once
and copied into each registry's data root. The keyring's gpg-agent holds the
preset passphrase for both sides, as in a worker.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Run as a script, sys.path starts with this folder, whose tasks.py would hide the `tasks`
# application: the repository root goes first instead (also for `bench.common`).
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(REPO_ROOT)] + [
    p for p in sys.path if p and Path(p).resolve() != REPO_ROOT / "bench"
]

from bench.common import (  # noqa: E402
    database_url,
    ensure_database,
    install_keyring,
    save_keyring,
    stop_agent,
)

BENCH_DB = "fatbuildr_bench_publish"
os.environ["DATABASE_URL"] = database_url(BENCH_DB)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fatbuildr_site.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key")

ensure_database(BENCH_DB)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from instances.services import load_instance_file  # noqa: E402
from registry import keyrings, publishing, signing  # noqa: E402
from registry.models import RegistryFormat  # noqa: E402
from registry.repositories.deb import DebRepository  # noqa: E402
from registry.storage import format_root  # noqa: E402
from tasks.runner import CommandRunner, JournalWriter  # noqa: E402
from tests.packages import build_deb, build_many_debs, build_many_rpms, build_rpm  # noqa: E402

FILL_CHUNK = 1000


def quiet(*args, **kwargs) -> None:
    pass


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def run(command: list, env: dict | None = None) -> None:
    completed = subprocess.run([str(c) for c in command], capture_output=True, env=env)
    if completed.returncode != 0:
        sys.exit(f"{command[0]} failed:\n{completed.stdout.decode()}{completed.stderr.decode()}")


class Bench:
    def __init__(self, work: Path, cache: Path, rounds: int) -> None:
        self.work = work
        self.cache = cache
        self.rounds = rounds
        call_command("migrate", verbosity=0)
        self.instance, _ = load_instance_file(path=REPO_ROOT / "instance-files" / "default.yml")
        self.keyring_template = self._make_keyring()
        self.journal = JournalWriter(work / "task.journal")
        self.runner = CommandRunner(self.journal)

    # --- set-up ---------------------------------------------------------------------------

    def _use_data_root(self, data: Path) -> None:
        settings.FATBUILDR_DATA_DIR = data

    def _make_keyring(self) -> Path:
        self._use_data_root(self.work / "keyring-data")
        print("Creating an RSA 4096 keyring...", flush=True)
        template = self.work / "keyring-template"
        save_keyring(self.instance, template)
        return template

    def _stop_agent(self) -> None:
        stop_agent(keyrings.keyring_home(self.instance.pk))

    def data_root(self, name: str) -> Path:
        data = self.work / name
        self._use_data_root(data)
        install_keyring(self.instance, self.keyring_template)
        return data

    def _cached(self, name: str, build: Callable[[Path], object]) -> Path:
        """A folder of built packages under --cache, built once."""
        folder = self.cache / name
        if not (folder / ".done").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            build(folder)
            (folder / ".done").touch()
        return folder

    def bulk(self, fmt: str, count: int) -> list[Path]:
        build = build_many_debs if fmt == "deb" else build_many_rpms
        print(f"{fmt}: {count} bulk packages, built once into {self.cache}", flush=True)
        folder = self._cached(f"bulk-{fmt}-{count}", lambda f: build(f, count, prefix="bulk"))
        suffix = ".deb" if fmt == "deb" else ".rpm"
        return sorted(folder.rglob(f"*{suffix}"))

    def hello(self, fmt: str, revision: int) -> list[Path]:
        if fmt == "deb":
            build = lambda folder: build_deb(folder, revision=str(revision))  # noqa: E731
            return sorted(self._cached(f"hello-deb-{revision}", build).glob("*.changes"))
        build = lambda folder: build_rpm(folder, release=str(revision))  # noqa: E731
        return sorted(self._cached(f"hello-rpm-{revision}", build).rglob("*.rpm"))

    def fill(self, fmt: str, count: int) -> None:
        packages = self.bulk(fmt, count) if count else []
        root = format_root(self.instance.pk, fmt)
        env = signing.gpg_environment(self.instance.pk)
        if fmt == "deb":
            repository = DebRepository(self.instance, run=self.runner.run)
            repository.configure()
            base = ["reprepro", "--basedir", root, "--component", "main"]
            for start in range(0, len(packages), FILL_CHUNK):
                chunk = packages[start : start + FILL_CHUNK]
                run([*base, "--export=never", "includedeb", "bookworm", *chunk], env)
            run(["reprepro", "--basedir", root, "export", "bookworm"], env)
        else:
            for folder in ("x86_64", "source"):
                repo = root / "el8" / "main" / folder
                (repo / "Packages").mkdir(parents=True)
                if folder == "x86_64":
                    for package in packages:
                        os.link(package, repo / "Packages" / package.name)
                self._createrepo(repo, env)
        publishing.reindex(self.instance, run=self.runner.run, log=quiet)

    def _createrepo(self, repo: Path, env: dict) -> None:
        run(["createrepo_c", "--update", "--no-database", "--quiet", repo], env)
        repomd = repo / "repodata" / "repomd.xml"
        signature = repomd.with_name("repomd.xml.asc")
        run(signing.detach_sign_command(self.instance.pk, repomd, signature), env)

    # --- one publication each way ---------------------------------------------------------

    def ours(self, fmt: str, files: list[Path]) -> None:
        distribution = "bookworm" if fmt == "deb" else "el8"
        target = publishing.Target(self.instance, fmt, distribution, "main")
        publishing.publish(target, files, run=self.runner.run, log=self.journal.log)

    def bare(self, fmt: str, root: Path, files: list[Path], staging: Path) -> None:
        env = signing.gpg_environment(self.instance.pk)
        if fmt == "deb":
            (changes,) = files
            run(
                ["reprepro", "--basedir", root, "--component", "main",
                 "--ignore=wrongdistribution", "--ignore=missingfile",
                 "include", "bookworm", changes],
                env,
            )  # fmt: skip
            return
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        copies = []
        for path in files:
            copy = staging / path.name
            shutil.copyfile(path, copy)
            copies.append(copy)
        run(signing.rpmsign_command(self.instance.pk, copies), env)
        for folder in ("x86_64", "source"):
            packages = root / "el8" / "main" / folder / "Packages"
            for old in packages.glob("hello-fb*.rpm"):
                old.unlink()
            for copy in copies:
                if (folder == "source") == copy.name.endswith(".src.rpm"):
                    shutil.copyfile(copy, packages / copy.name)
            self._createrepo(packages.parent, env)

    def measure(self, fmt: str, size: int) -> tuple[float, float]:
        data = self.data_root(f"{fmt}-{size}")
        print(f"{fmt}: filling a registry with {size} packages...", flush=True)
        started = time.perf_counter()
        self.fill(fmt, size)
        print(f"{fmt}: filled and indexed in {time.perf_counter() - started:.1f} s", flush=True)
        bare_root = self.work / f"{fmt}-{size}-bare"
        shutil.copytree(format_root(self.instance.pk, fmt), bare_root, symlinks=True)
        ours, bare = [], []
        for revision in range(1, self.rounds + 2):
            files = self.hello(fmt, revision)
            ours_time = timed(lambda files=files: self.ours(fmt, files))
            bare_time = timed(
                lambda files=files: self.bare(fmt, bare_root, files, self.work / "staging")
            )
            if revision > 1:  # the first round warms caches up
                ours.append(ours_time)
                bare.append(bare_time)
        self._stop_agent()
        shutil.rmtree(data)
        shutil.rmtree(bare_root)
        return statistics.median(ours), statistics.median(bare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 1000, 10000])
    parser.add_argument("--formats", nargs="+", default=["deb", "rpm"], choices=["deb", "rpm"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / "var" / "bench-publish")
    options = parser.parse_args()
    options.cache.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="fatbuildr-bench-publish-") as work:
        bench = Bench(Path(work), options.cache, options.rounds)
        try:
            for fmt in options.formats:
                for size in options.sizes:
                    ours, bare = bench.measure(fmt, size)
                    results.append((fmt, size, ours, bare))
                    print(f"{fmt} {size}: ours {ours * 1000:.0f} ms, bare {bare * 1000:.0f} ms")
        finally:
            bench._stop_agent()
            # The bench database keeps the instance; its index goes with the data root.
            RegistryFormat.objects.filter(instance_id="default").delete()
    print()
    print(f"Publish one package (median of {options.rounds} rounds), target ratio <= 1.3")
    print(f"{'format':<7}{'registry size':>14}{'ours':>10}{'bare':>10}{'ratio':>8}")
    for fmt, size, ours, bare in results:
        ratio = ours / bare
        verdict = "met" if ratio <= 1.3 else "MISSED"
        print(
            f"{fmt:<7}{size:>14}{ours * 1000:>8.0f}ms{bare * 1000:>8.0f}ms{ratio:>8.2f}  {verdict}"
        )


if __name__ == "__main__":
    main()

"""Web pages benchmark: the HTML pages beside their JSON twins, on the registry of
bench/registry_api.py (its seeding, its gunicorn).

Run from the repository root:

    .venv/bin/python bench/web_pages.py                    # 20,000 artifacts
    .venv/bin/python bench/web_pages.py --artifacts 100000 --keep

It recreates the `fatbuildr_bench` database, seeds it as bench/registry_api.py
does (deb/bookworm/foox holds 10,000 artifacts, about 100 artifacts match the
search term), starts gunicorn in production mode, and measures anonymous GETs
with a keep-alive session: the derivative page of 10,000 artifacts (first page,
a later page, filtered) beside `{derivative}.json` (all 10,000 artifacts), and
the search page beside `search.json` for the same term. Prints p50/p95 and the
ratio page/JSON (target: at most 2).
"""

import argparse
import sys
import tempfile
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if p and Path(p).resolve() != ROOT / "bench"]

from bench.common import drop_database, percentile  # noqa: E402
from bench.registry_api import (  # noqa: E402
    BENCH_DB,
    BIG_DERIVATIVE,
    INSTANCE,
    SEARCH_TERM,
    TARGET_RATIO,
    bench_environment,
    free_port,
    http_get,
    measure,
    recreate_and_seed,
    start_gunicorn,
    stop_gunicorn,
    wait_until_up,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=int, default=20_000, help="artifacts to seed")
    parser.add_argument("--iterations", type=int, default=100, help="iterations per request")
    parser.add_argument("--keep", action="store_true", help=f"keep the {BENCH_DB} database")
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="fatbuildr-bench-")
    env = bench_environment(data_dir)
    log = Path(data_dir) / "gunicorn.log"
    gunicorn = None
    try:
        recreate_and_seed(env, args.artifacts)
        port = free_port()
        base = f"http://127.0.0.1:{port}/{INSTANCE}"
        gunicorn = start_gunicorn(env, port, log)
        wait_until_up(gunicorn, f"http://127.0.0.1:{port}", log)

        fmt, dist, deriv = BIG_DERIVATIVE
        derivative = f"{base}/registry/{fmt}/{dist}/{deriv}"
        json_listing = (f"{fmt}/{dist}/{deriv}.json", f"{derivative}.json")
        json_search = (
            f"search.json?artifact={SEARCH_TERM}",
            f"{base}/search.json?artifact={SEARCH_TERM}",
        )
        pairs = [
            ((f"{fmt}/{dist}/{deriv}/ (page 1)", f"{derivative}/"), json_listing),
            ((f"{fmt}/{dist}/{deriv}/?page=50", f"{derivative}/?page=50"), json_listing),
            (
                (
                    f"{fmt}/{dist}/{deriv}/?name=pkg00&architecture=x86_64",
                    f"{derivative}/?name=pkg00&architecture=x86_64",
                ),
                json_listing,
            ),
            (
                (f"search?artifact={SEARCH_TERM}", f"{base}/search?artifact={SEARCH_TERM}"),
                json_search,
            ),
        ]
        header = (
            f"{'page':<52} {'bytes':>7} {'p50':>7} {'p95':>7}   {'JSON twin':<30} "
            f"{'bytes':>7} {'p50':>7} {'p95':>7} {'x p50':>6} {'x p95':>6}"
        )
        print(header)
        print("-" * len(header))
        over = False
        with requests.Session() as session:
            for (label, url), (json_label, json_url) in pairs:
                warmup = max(5, args.iterations // 10)
                page, body = measure(http_get(session, url), warmup, args.iterations)
                twin, twin_body = measure(http_get(session, json_url), warmup, args.iterations)
                p50, p95 = percentile(page, 0.5), percentile(page, 0.95)
                j50, j95 = percentile(twin, 0.5), percentile(twin, 0.95)
                over |= p50 / j50 > TARGET_RATIO or p95 / j95 > TARGET_RATIO
                print(
                    f"{label:<52} {len(body):>7} {p50:>7.2f} {p95:>7.2f}   {json_label:<30} "
                    f"{len(twin_body):>7} {j50:>7.2f} {j95:>7.2f} {p50 / j50:>6.2f} "
                    f"{p95 / j95:>6.2f}",
                    flush=True,
                )
        print(
            f"\nTarget: page at most {TARGET_RATIO}x its JSON twin: {'MISSED' if over else 'met'}"
        )
        return 1 if over else 0
    finally:
        if gunicorn is not None:
            stop_gunicorn(gunicorn)
        if not args.keep:
            drop_database(BENCH_DB)


if __name__ == "__main__":
    sys.exit(main())

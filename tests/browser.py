"""Real headless Chromium for the browser tests (marker `browser`): Debian's `chromium` and
`chromium-driver` (installed by scripts/setup for the tests), driven by selenium.

Each test gets a fresh browser profile; `screenshot(name)` saves a PNG of the page under the
test's own output folder (pytest's tmp_path, outside the repository), for a person to look
at when a test fails or a page changes.
"""

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# No GPU, sandbox or background traffic on these machines (root, no network but loopback).
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """A headless Chromium; quit at the end of the test."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshot(browser: webdriver.Chrome, tmp_path: Path) -> Callable[[str], Path]:
    """screenshot("derivative-page"): the page as a PNG in the test's output folder."""

    def take(name: str) -> Path:
        path = tmp_path / "screenshots" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(path))
        return path

    return take


@pytest.fixture(scope="session")
def static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The static files collected as scripts/setup does, for a scripts/serve of the tests to
    serve (WebServer env `DJANGO_STATIC_ROOT`): pages without their CSS and JS are not tested."""
    root = tmp_path_factory.mktemp("static")
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=Path(__file__).resolve().parent.parent,
        env={
            "DJANGO_SECRET_KEY": "collectstatic-only",
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "fatbuildr_site.settings",
            "DJANGO_STATIC_ROOT": str(root),
        },
        check=True,
    )
    return root

"""The pages in real headless Chromium: browse from an instance down to an artifact's
changelog, and search; each step leaves a screenshot in the test's output folder."""

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tasks.models import TaskResult, TaskState
from tests import factories

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture
def published(transactional_db, default_instance, multi_mode):
    """A source with its binary, a changelog and content, and a finished task."""
    source, binary = factories.source_and_binary(default_instance, version="2.1.0-1")
    factories.ChangelogEntryFactory(artifact=source)
    factories.ContentEntryFactory(artifact=binary)
    factories.TaskFactory(
        instance=default_instance, state=TaskState.FINISHED, result=TaskResult.SUCCESS
    )
    return default_instance


def click(browser, text: str) -> None:
    browser.find_element(By.LINK_TEXT, text).click()


def test_browse_instance_to_changelog(published, live_server, browser, screenshot):
    browser.get(live_server.url + "/")
    assert browser.title.startswith("Instances")
    screenshot("1-instances")
    click(browser, published.name)
    assert browser.title.startswith("Registry of")
    # Times are shown in the reader's zone by local-time.js.
    assert browser.find_element(By.TAG_NAME, "time").text
    screenshot("2-registry")
    click(browser, "deb")
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("deb registry")
    screenshot("3-format")
    click(browser, "bookworm")
    screenshot("4-distribution")
    click(browser, "main")
    assert browser.title.startswith("deb bookworm main artifacts")
    screenshot("5-derivative")
    rows = browser.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == 2
    browser.find_element(By.CSS_SELECTOR, 'a[href$="/x86_64/fatbuildr/"]').click()
    assert browser.title.startswith("Binary fatbuildr")
    screenshot("6-binary")
    click(browser, "fatbuildr")  # its source
    assert browser.title.startswith("Source fatbuildr")
    changelog = browser.find_element(By.ID, "changelog")
    browser.execute_script("arguments[0].scrollIntoView()", changelog)
    assert browser.find_elements(By.CSS_SELECTOR, ".changelog-entry li")
    screenshot("7-source-changelog")
    browser.set_window_size(390, 844)
    screenshot("8-source-phone")


def test_search(published, live_server, browser, screenshot):
    browser.get(live_server.url + "/default/registry/")
    field = browser.find_element(By.NAME, "artifact")
    field.send_keys("fatb")
    field.submit()
    WebDriverWait(browser, 10).until(expected_conditions.title_contains("fatb"))
    links = browser.find_elements(By.CSS_SELECTOR, "tbody a")
    assert {link.text for link in links} == {"fatbuildr"}
    screenshot("search")
    browser.get(live_server.url + "/default/registry/nope/")
    assert "Error: Format nope not supported by registries (404)" in browser.page_source
    screenshot("error")


def test_registry_folder_listing(published, data_dir, live_server, browser, screenshot):
    release = data_dir / "registry" / "default" / "deb" / "dists" / "bookworm" / "Release"
    release.parent.mkdir(parents=True)
    release.write_bytes(b"Origin: Default Fatbuildr Instance\n" * 100)
    browser.get(live_server.url + "/default/deb/dists/bookworm/")
    assert browser.title.startswith("Index of /default/deb/dists/bookworm/")
    screenshot("listing")
    assert "Release 3.4 KB" in browser.find_element(By.TAG_NAME, "tbody").text
    click(browser, "../")
    WebDriverWait(browser, 10).until(expected_conditions.title_contains("Index of /default/deb/"))

"""The live watch page in real headless Chromium, against the production web server
(scripts/serve) and real workers: lines arrive as the task writes them, the final state shows,
and a web server restarted mid-task resumes the page with no line lost or doubled."""

import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tasks import engine
from tasks.models import TaskResult
from tests.task_handlers import SHELL
from tests.workers import WebServer, wait_finished, wait_running

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

LINES = 24
# One output line every 0.4 s, with log lines from the engine around them.
SCRIPT = f"for i in $(seq 1 {LINES}); do echo line $i; sleep 0.4; done"


def output_lines(browser) -> list[str]:
    text = "".join(
        pre.get_attribute("textContent")
        for pre in browser.find_elements(By.CSS_SELECTOR, "#journal pre.output")
    )
    return text.splitlines()


def log_messages(browser) -> list[str]:
    return [
        line.get_attribute("textContent")
        for line in browser.find_elements(By.CSS_SELECTOR, "#journal .log .message")
    ]


def final_state(browser) -> str:
    final = browser.find_element(By.ID, "final-state")
    return final.text if final.is_displayed() else ""


def test_watch_page_follows_a_task_and_resumes_after_a_restart(
    start_worker, default_instance, browser, screenshot, tmp_path, static_root
):
    start_worker()
    web = WebServer(tmp_path, static_root=static_root)
    try:
        task = wait_running(engine.submit(default_instance, SHELL, user="tester", message=SCRIPT))
        browser.get(f"{web.url}/default/watch/{task.pk}.html")
        assert browser.title == f"Watch task {SHELL} {task.pk} · Fatbuildr"
        WebDriverWait(browser, 20).until(lambda b: len(output_lines(b)) >= 3)
        seen = output_lines(browser)
        assert len(seen) < LINES, "the lines arrive while the task runs"
        screenshot("watch-running")

        # The web server goes away mid-task (killed: a graceful stop would wait for the
        # open stream to end), and comes back on the same port.
        web.kill()
        time.sleep(1.5)
        assert final_state(browser) == ""
        web = WebServer(tmp_path, port=web.port, static_root=static_root)

        WebDriverWait(browser, 60).until(lambda b: final_state(b) == "Task succeeded")
        screenshot("watch-finished")
        assert output_lines(browser) == [f"line {i}" for i in range(1, LINES + 1)]
        messages = log_messages(browser)
        assert len(messages) == len(set(messages)), messages
        assert messages[-1] == "Task succeeded"
        assert browser.find_element(By.ID, "task-state").text == "finished (success)"
        # The page did reconnect to the new server (both log to the same file).
        log = web.log_path.read_text()
        assert log.count(f"/default/watch/{task.pk}.events") == 2, log
    finally:
        web.stop()
    assert wait_finished(task).result == TaskResult.SUCCESS


def test_watch_page_of_a_finished_task_without_javascript(
    start_worker, default_instance, browser, screenshot, tmp_path, static_root
):
    start_worker()
    task = wait_finished(
        engine.submit(default_instance, SHELL, user="tester", message="echo one; echo two")
    )
    web = WebServer(tmp_path, static_root=static_root)
    try:
        browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
        browser.get(f"{web.url}/default/watch/{task.pk}.html")
        screenshot("watch-finished-no-js")
        assert output_lines(browser) == ["one", "two"]
        assert final_state(browser) == "Task succeeded"
        browser.set_window_size(390, 844)  # a phone: no sideways scrolling of the page
        screenshot("watch-finished-phone")
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
    finally:
        web.stop()

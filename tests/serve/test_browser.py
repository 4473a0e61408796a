"""The page in a real browser: headless Chromium (Debian's chromium and chromium-driver) driven
by selenium against `imgret serve` started as a person starts it.

Type a query, see the right photo first, open another, save a note, see it move to the top;
keys (arrows, Enter, Esc) and no error in the browser's console (a Content-Security-Policy
violation would show there). ``IMGRET_SCREENSHOT=docs/serve.png`` also saves the page.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve.conftest import REAL_MODELS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = [
    pytest.mark.slow,
    REAL_MODELS,
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
        reason="apt-get install chromium chromium-driver (scripts/test.sh does)",
    ),
]
QUERY = "a red double-decker bus"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(index_copy) -> Iterator[str]:
    """`imgret serve` on a free port; yields its address once it says it is ready."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "imgret.cli", "serve", "--index", str(index_copy)]
        + ["--port", str(port), "--device", "cpu"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )
    assert process.stderr is not None
    try:
        for line in process.stderr:
            if "ready" in line:
                break
        else:
            pytest.fail(f"imgret serve stopped with {process.wait()}")
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _first_hits(driver, n: int = 1) -> list[str]:
    cards = driver.find_elements("css selector", "#results .hit")
    return [card.get_attribute("data-path") for card in cards[:n]]


def test_search_open_a_photo_save_a_note_and_see_it_move_up(server, browser):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.get(server)
    assert "Type what you are looking for" in browser.find_element("id", "status").text
    box = browser.find_element("id", "q")
    box.send_keys(QUERY)  # no Enter: the page searches as one types
    wait.until(lambda d: _first_hits(d) == ["bus.jpg"])
    first = browser.find_element("css selector", "#results .hit")
    assert first.find_element("css selector", ".badge").text.startswith("#1 · 0.")
    assert "bus" in [m.text for m in first.find_elements("css selector", "mark")]
    thumbnail = first.find_element("css selector", "img")
    wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", thumbnail) > 0)
    paths = [c.get_attribute("data-path") for c in browser.find_elements("css selector", ".hit")]
    before = paths.index("zidane.jpg")
    assert before > 0

    if os.environ.get("IMGRET_SCREENSHOT"):
        browser.find_element("tag name", "body").screenshot(os.environ["IMGRET_SCREENSHOT"])

    browser.find_element("css selector", '.hit[data-path="zidane.jpg"]').click()
    dialog = browser.find_element("id", "detail")
    wait.until(lambda d: dialog.is_displayed())
    assert browser.find_element("id", "detail-title").text == "zidane.jpg"
    note = browser.find_element("id", "note")
    note.send_keys("a red double-decker bus in london")
    browser.find_element("id", "save-note").click()
    wait.until(lambda d: "Saved" in d.find_element("id", "note-status").text)
    parts = [
        p.get_attribute("data-part")
        for p in browser.find_elements("css selector", "#detail-parts .best")
    ]
    assert parts == ["note"]
    wait.until(lambda d: _first_hits(d) == ["zidane.jpg"])

    note.send_keys(Keys.ESCAPE)
    wait.until(lambda d: not dialog.is_displayed())
    box.send_keys(Keys.ARROW_DOWN)
    assert browser.switch_to.active_element.get_attribute("data-path") == "zidane.jpg"
    browser.switch_to.active_element.send_keys(Keys.ARROW_RIGHT)
    assert browser.switch_to.active_element.get_attribute("data-path") == _first_hits(browser, 2)[1]
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait.until(lambda d: dialog.is_displayed())
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait.until(lambda d: not dialog.is_displayed())
    browser.find_element("tag name", "body").send_keys(Keys.ESCAPE)
    wait.until(lambda d: not _first_hits(d))

    box.send_keys("zzzz qqqq xxxx")
    wait.until(lambda d: _first_hits(d))  # MiniLM ranks every image: never an empty page
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_more_like_this_and_the_about_panel(server, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.get(server)
    browser.find_element("id", "q").send_keys("many elephants")
    wait.until(lambda d: _first_hits(d) == ["000000054718.jpg"])
    browser.find_element("css selector", "#results .hit .similar").click()
    wait.until(lambda d: "photos like 000000054718.jpg" in d.find_element("id", "status").text)
    assert "000000054718.jpg" not in _first_hits(browser, 20)
    browser.find_element("id", "about-button").click()
    wait.until(lambda d: "18 (18 searchable)" in d.find_element("id", "about-facts").text)
    assert "minilm" in browser.find_element("id", "about-facts").text


def test_a_phone_width_shows_one_column_without_sideways_scrolling(server, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(390, 844)
    browser.get(server)
    browser.find_element("id", "q").send_keys("many elephants")
    WebDriverWait(browser, 30).until(lambda d: _first_hits(d) == ["000000054718.jpg"])
    width = browser.execute_script("return document.documentElement.clientWidth")
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width
    cards = browser.find_elements("css selector", "#results .hit")
    assert len({card.location["x"] for card in cards[:4]}) == 1  # one column

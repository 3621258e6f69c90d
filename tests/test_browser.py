"""Open every page of the smoke-scale book in headless Chromium (Debian's chromium + chromedriver).

Checks that every image loaded, that no output cell shows a Python error, that every
results table (a table with an "ours" column) also has the paper's column, that no page
mentions internal files or process ("FACTS", "mct.txt", "issue"), that every figure has a
caption, that no table cell reads "None", and that every page of this smoke build carries the
banner saying its numbers mean nothing; saves a screenshot of each page under
``_build/smoke/screenshots/`` as build artifacts.
"""
import functools
import http.server
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PAPER_CHAPTERS = ("02_baselines", "03_ast", "04_mct", "05_tgdd")


def ensure_chromium() -> str | None:
    """Find Debian's chromium and chromedriver, installing them with apt-get when possible.

    Returns None when ready, else the reason the browser test cannot run here.
    """
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return None
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return "chromium/chromedriver are missing and cannot be installed (needs root and apt-get)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"], check=True, env=env,
                       timeout=900, capture_output=True)
    except (subprocess.SubprocessError, OSError) as err:
        return f"installing chromium with apt-get failed: {err}"
    return None if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER) else "chromium not found after install"


@pytest.fixture(scope="module")
def served_book(smoke_build):
    html = (smoke_build / "html").resolve()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *args: None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", html
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    reason = ensure_chromium()
    if reason:
        pytest.skip(f"browser test cannot run here: {reason}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,2000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def math_typeset(browser, seconds: float = 15.0) -> bool:
    """Wait for MathJax (served from the book's _static) to typeset the page's math."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if browser.execute_script("return !!document.querySelector('mjx-container')"):
            return True
        time.sleep(0.2)
    return False


def pages(html: Path) -> list[Path]:
    return sorted(p.relative_to(html) for p in (html / "book").rglob("*.html"))


FORBIDDEN = re.compile(r"FACTS|mct\.txt|(?i:\bissues?\b)")
NONE_CELLS = """
return Array.from(document.querySelectorAll('td, th')).filter(c => c.textContent.trim() === 'None').length;
"""
UNCAPTIONED_FIGURES = """
return Array.from(document.querySelectorAll('figure')).filter(f => {
    const c = f.querySelector('figcaption'); return !c || !c.textContent.trim(); }).length;
"""
BANNER = "Smoke build"
CHECK_IMAGES = """
return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);
"""
RESULT_TABLES = """
return Array.from(document.querySelectorAll('table')).map(t =>
    Array.from(t.querySelectorAll('thead th')).map(th => th.textContent.trim()));
"""


def test_every_page_renders_cleanly(browser, served_book, smoke_build):
    base, html = served_book
    shots = smoke_build / "screenshots"
    shots.mkdir(exist_ok=True)
    found = pages(html)
    assert any(str(p).startswith("book/notebooks/") for p in found)
    problems = []
    for page in found:
        browser.get(f"{base}/{page.as_posix()}")
        broken = browser.execute_script(CHECK_IMAGES)
        if broken:
            problems.append(f"{page}: images not loaded: {broken}")
        if browser.find_elements("css selector", ".math") and not math_typeset(browser):
            problems.append(f"{page}: math is not typeset (MathJax did not load from the book)")
        browser.save_screenshot(str(shots / (page.as_posix().replace("/", "__").replace(".html", ".png"))))
        text = browser.find_element("tag name", "body").text
        errors = browser.find_elements("css selector", ".output.traceback, .output.error, .cell_output .traceback")
        if errors or "Traceback (most recent call last)" in text:
            problems.append(f"{page}: an output cell shows a Python error")
        if match := FORBIDDEN.search(text):
            problems.append(f"{page}: mentions {match.group(0)!r}")
        if browser.execute_script(NONE_CELLS):
            problems.append(f"{page}: a table cell reads 'None'")
        if browser.execute_script(UNCAPTIONED_FIGURES):
            problems.append(f"{page}: a figure without a caption")
        if BANNER not in text:
            problems.append(f"{page}: no smoke-build banner")
        for headers in browser.execute_script(RESULT_TABLES):
            if any(h.startswith("ours") for h in headers) and not any(h.startswith("paper") for h in headers):
                problems.append(f"{page}: results table without the paper's column: {headers}")
        if page.stem in PAPER_CHAPTERS:
            tables = browser.execute_script(RESULT_TABLES)
            # "ours" may carry the statistic it shows: "ours (last epoch, MTT's protocol)"
            if not any(any(x.startswith("ours") for x in h) and any(x.startswith("paper") for x in h)
                       for h in tables):
                problems.append(f"{page}: no table with the paper's column beside ours")
    assert not problems, "\n".join(problems)

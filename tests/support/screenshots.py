"""Screenshots of the browser tests: with AUTHSEC_DOCS_SCREENSHOTS=1 they become the documentation's images
(docs/img/<folder>/<name>.png, shown by docs/dashboard.md and the other pages); with AUTHSEC_TEST_ARTIFACTS=<dir>
they are kept there for a failing run's reader. Without either nothing is taken (a screenshot costs time)."""

from __future__ import annotations

import os
from pathlib import Path

from selenium.webdriver.remote.webdriver import WebDriver

WIDTH = 1280
EXTRA = 140  # the browser's own chrome: a window of height H shows a viewport a little shorter
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


def save_docs_screenshot(driver: WebDriver, name: str, folder: str = "dashboard") -> list[Path]:
    """Save the current viewport as `<name>.png` where the environment asks for it; returns the files written."""
    targets = []
    if os.environ.get("AUTHSEC_DOCS_SCREENSHOTS") == "1":
        targets.append(DOCS_IMG / folder)
    if artifacts := os.environ.get("AUTHSEC_TEST_ARTIFACTS"):
        targets.append(Path(artifacts) / folder)
    written: list[Path] = []
    if not targets:
        return written
    # The whole page (up to 2000 px high) at a desktop width, then the window as it was.
    size = driver.get_window_size()
    driver.set_window_size(WIDTH, 800)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, min(max(int(height) + EXTRA, 600), 2000))
    for directory in targets:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.png"
        assert driver.save_screenshot(str(path)), f"screenshot {path} not written"
        written.append(path)
    driver.set_window_size(size["width"], size["height"])
    return written

"""The chatbot page in a real headless browser: Debian's chromium driven by playwright.

pytest tests/test_chatbot_browser.py -m browser
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"Debian's chromium is not installed at {CHROMIUM}"),
]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the [dev] extra)")

try:  # the trained-model fixture and the server wrapper live beside the other chatbot tests
    from test_chatbot_app import Server
    from test_chatbot_inference import tiny_model_dir  # noqa: F401
except ModuleNotFoundError:
    from tests.test_chatbot_app import Server
    from tests.test_chatbot_inference import tiny_model_dir  # noqa: F401


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(["--model", str(tiny_model_dir)], tmp_path_factory.mktemp("browser-server") / "server.log")
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def test_the_page_chats_and_shows_the_heatmap(server: Server, tmp_path: Path) -> None:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.goto(server.url, wait_until="load")
            sync_api.expect(page.get_by_text("Example prompts")).to_be_visible(timeout=30_000)
            message = page.locator('textarea[data-testid="textbox"]').first
            message.fill("red cat dog tree")
            message.press("Enter")
            bot = page.locator('[data-testid="bot"]').last
            sync_api.expect(bot).to_contain_text("tree dog cat red", timeout=30_000)
            heatmap = page.locator("#heatmap img")
            sync_api.expect(heatmap).to_be_visible(timeout=30_000)
            assert heatmap.evaluate("image => image.naturalWidth") > 100
            sync_api.expect(page.get_by_text("tiny-reverser").first).to_be_visible()
            screenshot = tmp_path / "chatbot.png"
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 10_000
        finally:
            browser.close()

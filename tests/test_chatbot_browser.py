"""The chatbot page in a real headless browser: Debian's chromium driven by playwright.

pytest tests/test_chatbot_browser.py -m browser
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import skip_or_fail_in_ci

CHROMIUM = "/usr/bin/chromium"

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if shutil.which(CHROMIUM) is None:
    skip_or_fail_in_ci("browser", f"Debian's chromium is not installed at {CHROMIUM}", module_level=True)
try:
    from playwright import sync_api
except ImportError:
    skip_or_fail_in_ci("browser", "playwright is not installed (the [dev] extra)", module_level=True)

# The trained-model fixture and its factory live beside the other chatbot tests.
import test_chatbot_inference  # noqa: E402
from test_chatbot_inference import train_tiny_model  # noqa: E402

from benchmarks.chatbot_server import ChatbotServer as Server  # noqa: E402

tiny_model_dir = test_chatbot_inference.tiny_model_dir  # the fixtures, shared by name
tiny_additive_model_dir = test_chatbot_inference.tiny_additive_model_dir
tiny_model_without_attention_dir = test_chatbot_inference.tiny_model_without_attention_dir

KOREAN_WORDS = ["나는", "어제", "사과를", "샀다", "오늘", "하늘", "바다", "고양이"]
KOREAN_WORDS += ["학교", "친구", "책을", "읽었다", "밥을", "먹었다", "집에", "갔다"]


@pytest.fixture(scope="module")
def korean_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny reverser of Korean phrases, so that the page shows a Hangul reply and heatmap."""
    return train_tiny_model(
        tmp_path_factory.mktemp("tiny-korean"),
        name="tiny-reverser-ko",
        vocabulary=KOREAN_WORDS,
        examples=("나는 어제 사과를 샀다", "오늘 하늘 바다"),
    )


@pytest.fixture(scope="module")
def translation_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny reverser saved again as a translation model: its `training_info.json` names the task
    and its own examples (and no model card), as a training run of `task: translation` saves them."""
    directory = tmp_path_factory.mktemp("tiny-translator")
    shutil.copytree(tiny_model_dir, directory, dirs_exist_ok=True)
    (directory / "README.md").unlink()
    info = {"model_name": "tiny-translator", "task": "translation", "examples": ["blue bird tree", "car road"]}
    (directory / "training_info.json").write_text(json.dumps(info), encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def server(
    tiny_model_dir: Path, korean_model_dir: Path, translation_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("browser-server") / "server.log"
    models = [tiny_model_dir, korean_model_dir, translation_model_dir]
    server = Server([argument for model in models for argument in ("--model", str(model))], log=log)
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.fixture()
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, url: str, locale: str):
    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 1300}, accept_downloads=True)
    page = context.new_page()
    page.goto(url, wait_until="load")
    return page


def chat(page, text: str, reply: str) -> None:
    message = page.locator('textarea[data-testid="textbox"]').first
    message.fill(text)
    message.press("Enter")
    sync_api.expect(page.locator('[data-testid="bot"]').last).to_contain_text(reply, timeout=30_000)


def hover_text_of_the_middle_cell(page) -> str:
    """Hover the centre of the heatmap's plotting area; Plotly then shows that cell's hover label."""
    area = page.locator("#heatmap .nsewdrag").first
    sync_api.expect(area).to_be_visible(timeout=30_000)
    box = area.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    hover = page.locator("#heatmap .hoverlayer .hovertext").first
    sync_api.expect(hover).to_be_visible(timeout=10_000)
    return hover.text_content()


def test_the_page_chats_and_shows_an_interactive_heatmap_and_downloads(server: Server, browser, tmp_path: Path) -> None:
    page = open_page(browser, server.url, "en-US")
    sync_api.expect(page.get_by_text("Example prompts")).to_be_visible(timeout=30_000)
    chat(page, "red cat dog tree", "tree dog cat red")
    sync_api.expect(page.locator("#heatmap .js-plotly-plot")).to_be_visible(timeout=30_000)
    # Tick labels are the tokens; the middle of a 5 x 5 map is output "cat" over source "dog".
    ticks = page.locator("#heatmap .xtick text").all_text_contents()
    assert ticks == ["red", "cat", "dog", "tree", "</s>"]
    text = hover_text_of_the_middle_cell(page)
    assert "cat ← dog" in text and "weight 0." in text, text
    # The two attention files download from the page.
    downloads = page.locator("#attention-downloads")
    links = downloads.get_by_role("link")
    sync_api.expect(links).to_have_count(2, timeout=30_000)
    assert [
        name.split("?")[0].rsplit("/", 1)[-1] for name in links.evaluate_all("links => links.map(a => a.href)")
    ] == [
        "attention.json",
        "attention.csv",
    ]
    with page.expect_download() as download_info:
        links.first.click()
    saved = tmp_path / "attention.json"
    download_info.value.save_as(saved)
    exported = json.loads(saved.read_text(encoding="utf-8"))
    assert exported["output_tokens"] == [" tree", " dog", " cat", " red", "</s>"]
    sync_api.expect(page.get_by_text("tiny-reverser").first).to_be_visible()


def test_a_korean_browser_gets_korean_labels_and_a_hangul_heatmap(server: Server, browser, tmp_path: Path) -> None:
    page = open_page(browser, server.url, "ko-KR")
    korean = ("예시 질문", "보내기", "어텐션 히트맵", "어텐션 내려받기 (JSON, CSV)", "대화 지우기")
    english = (
        "Example prompts",
        "Send",
        "Attention heatmap",
        "Download the attention (JSON, CSV)",
        "Clear conversation",
    )
    shown, absent = korean, english
    for label in shown:
        sync_api.expect(page.get_by_text(label, exact=True).first).to_be_visible(timeout=30_000)
    for label in absent:
        assert page.get_by_text(label, exact=True).count() == 0, label
    page.locator("#model input").click()
    page.get_by_role("option", name="tiny-reverser-ko").click()
    sync_api.expect(page.get_by_text("tiny-reverser-ko").first).to_be_visible()
    chat(page, "나는 어제 사과를 샀다", "샀다 사과를 어제 나는")
    sync_api.expect(page.locator("#heatmap .js-plotly-plot")).to_be_visible(timeout=30_000)
    assert page.locator("#heatmap .xtick text").all_text_contents() == ["나는", "어제", "사과를", "샀다", "</s>"]
    assert "←" in hover_text_of_the_middle_cell(page)
    screenshot = tmp_path / "chatbot-korean.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000


def test_each_tab_shows_the_selected_models_own_examples(server: Server, browser) -> None:
    page = open_page(browser, server.url, "en-US")
    model = page.locator("#model input")
    sync_api.expect(model).to_have_value("tiny-reverser", timeout=30_000)
    sync_api.expect(page.get_by_text("sun moon water fire", exact=True)).to_be_visible(timeout=30_000)
    assert page.get_by_text("오늘 하늘 바다", exact=True).count() == 0  # another model's examples
    # The Translate tab picks the translation model and shows its examples; a click fills the box.
    page.get_by_role("tab", name="Translate").click()
    sync_api.expect(model).to_have_value("tiny-translator", timeout=30_000)
    example = page.get_by_text("blue bird tree", exact=True)
    sync_api.expect(example).to_be_visible(timeout=30_000)
    sync_api.expect(page.get_by_text("sun moon water fire", exact=True)).to_be_hidden()
    example.click()
    sync_api.expect(page.get_by_label("Text to translate")).to_have_value("blue bird tree", timeout=30_000)
    # A model of another task, picked on this tab, offers no prompts here and says why.
    model.click()
    page.get_by_role("option", name="tiny-reverser-ko").click()
    sync_api.expect(page.get_by_text("was trained for qa, not translation")).to_be_visible(timeout=30_000)
    sync_api.expect(page.get_by_text("blue bird tree", exact=True)).to_be_hidden()
    # Back on the Chat tab, the chat examples are the Korean model's own.
    page.get_by_role("tab", name="Chat").click()
    sync_api.expect(page.get_by_text("오늘 하늘 바다", exact=True)).to_be_visible(timeout=30_000)
    sync_api.expect(page.get_by_text("sun moon water fire", exact=True)).to_have_count(0)


@pytest.fixture(scope="module")
def compare_server(
    tiny_model_dir: Path,
    tiny_additive_model_dir: Path,
    tiny_model_without_attention_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    """Three models of different attention types: general, additive and none."""
    log = tmp_path_factory.mktemp("browser-compare-server") / "server.log"
    models = [tiny_model_dir, tiny_additive_model_dir, tiny_model_without_attention_dir]
    server = Server([argument for model in models for argument in ("--model", str(model))], log=log)
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def test_the_compare_tab_shows_three_outputs_and_two_heatmaps_on_one_scale(compare_server: Server, browser) -> None:
    page = open_page(browser, compare_server.url, "en-US")
    # The panel of the last reply's heatmap belongs to the Chat and Translate tabs, not this one.
    panel = page.locator("#attention-panel")
    sync_api.expect(panel).to_be_visible(timeout=30_000)
    page.get_by_role("tab", name="Compare").click()
    sync_api.expect(panel).to_be_hidden(timeout=30_000)
    chosen = page.locator("#compare-models")
    for name in ("tiny-reverser", "tiny-additive", "tiny-no-attention"):  # the ready models that read the same input
        sync_api.expect(chosen.get_by_text(name, exact=True)).to_be_visible(timeout=30_000)
    source = page.locator("#compare-input textarea")
    source.fill("red cat dog tree")
    source.press("Enter")
    sync_api.expect(page.locator("#compare-heatmaps .js-plotly-plot")).to_be_visible(timeout=60_000)
    # Three outputs side by side: one column per model.
    table = page.locator("#compare-outputs table")
    headers = [text.strip() for text in table.locator("th").all_text_contents()]
    assert headers == ["", "tiny-reverser", "tiny-additive", "tiny-no-attention"]
    output_row = [text.strip() for text in table.locator("tr").nth(1).locator("td").all_text_contents()]
    assert output_row[:3] == ["output", "tree dog cat red", "tree dog cat red"]
    assert len(output_row) == 4  # the model without attention has an output cell too
    # Two heatmaps (the models with attention), one colour bar, the same source tokens on both.
    heatmaps = page.locator("#compare-heatmaps g.hm")
    sync_api.expect(heatmaps).to_have_count(2, timeout=30_000)
    assert page.locator("#compare-heatmaps .colorbar").count() == 1
    for axis in ("xtick", "x2tick"):  # Plotly's class names of the two panels' source ticks
        ticks = page.locator(f"#compare-heatmaps .{axis} text").all_text_contents()
        assert ticks == ["red", "cat", "dog", "tree", "</s>"], axis
    # The model without attention says it has no heatmap; the others' agreement is stated.
    sync_api.expect(table).to_contain_text("no heatmap: this model has no attention")
    lines = page.locator("#compare-lines")
    sync_api.expect(lines).to_contain_text("tiny-no-attention")
    sync_api.expect(lines).to_contain_text("no attention, so no heatmap")
    sync_api.expect(lines).to_contain_text("agrees with tiny-reverser's on")
    page.get_by_role("tab", name="Translate").click()
    sync_api.expect(panel).to_be_visible(timeout=30_000)


def test_the_compare_tab_asks_for_two_models(compare_server: Server, browser) -> None:
    page = open_page(browser, compare_server.url, "ko-KR")
    page.get_by_role("tab", name="비교").click()
    sync_api.expect(page.get_by_text("비교할 모델", exact=True)).to_be_visible(timeout=30_000)
    chosen = page.locator("#compare-models")
    for name in ("tiny-no-attention", "tiny-additive"):  # leave one model chosen
        chosen.locator(".token", has_text=name).locator(".token-remove").click()
    sync_api.expect(chosen.locator(".token")).to_have_count(1)
    source = page.locator("#compare-input textarea")
    source.fill("red cat")
    source.press("Enter")
    sync_api.expect(page.locator("#compare-notice")).to_contain_text("Choose at least two models", timeout=30_000)
    assert page.locator("#compare-heatmaps .js-plotly-plot").count() == 0

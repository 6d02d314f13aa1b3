"""Heatmap labels in Hangul render from the font that a pip package ships, with or without system
CJK fonts, and a missing font degrades to one logged line and a drawn heatmap.

    pytest tests/test_heatmap_fonts.py
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from seq2seq_tools import attention as attention_module
from seq2seq_tools.attention import (
    MISSING_GLYPH,
    AttentionMap,
    attention_figure,
    font_files,
    heatmap_font_families,
    missing_glyphs,
    packaged_font_path,
)

font_manager = pytest.importorskip("matplotlib.font_manager", reason="matplotlib is not installed (the [train] extra)")

# 나는 어제 사과를 샀다 → I bought an apple yesterday, with a few Han characters in the output.
SOURCE = [" 나는", " 어제", " 사과를", " 샀다", "</s>"]
OUTPUT = [" I", " bought", " 사과", " 世界", "</s>"]
HANGUL = {character for label in SOURCE + OUTPUT for character in label if "\uac00" <= character <= "\ud7a3"}


def clear_font_caches() -> None:
    font_manager.FontManager._findfont_cached.cache_clear()
    font_manager._get_font.cache_clear()


@pytest.fixture(params=["system fonts", "no system fonts"])
def fonts(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """matplotlib's font manager as on this machine, or as on one with no system fonts at all: only
    the fonts that ship inside matplotlib (DejaVu) remain; the packaged font is added on use."""
    if request.param == "no system fonts":
        import matplotlib

        bundled = [
            font for font in font_manager.fontManager.ttflist if font.fname.startswith(matplotlib.get_data_path())
        ]
        monkeypatch.setattr(font_manager.fontManager, "ttflist", bundled)
    clear_font_caches()
    yield request.param
    clear_font_caches()


def draw(attention: AttentionMap, title: str) -> tuple[object, bytes, list[str]]:
    """The figure, its PNG, and matplotlib's warnings while drawing it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure = attention_figure(attention, title=title)
        png = io.BytesIO()
        figure.savefig(png, format="png")
    return figure, png.getvalue(), [str(warning.message) for warning in caught]


def test_hangul_labels_render_from_the_packaged_font(fonts: str) -> None:
    path = packaged_font_path()
    assert path is not None, "koreanize-matplotlib (the [train] and [chat] extras) ships the Hangul font"
    families = heatmap_font_families()
    if fonts == "no system fonts":
        assert not any(font.fname.startswith("/usr/share/fonts") for font in font_manager.fontManager.ttflist)
    files = font_files(families)
    charmaps = [font_manager.get_font(str(file)).get_charmap() for file in files]
    # Each Hangul character is drawn from the first font that has it: the packaged one, not a system font.
    for character in HANGUL:
        first = next(file for file, charmap in zip(files, charmaps, strict=True) if ord(character) in charmap)
        assert first == path, f"{character} would come from {first}"
    assert missing_glyphs(SOURCE + OUTPUT + ["인사"], families) == set()

    figure, png, messages = draw(AttentionMap(SOURCE, OUTPUT, np.eye(5, dtype=np.float32)), "인사")
    assert not [message for message in messages if "missing" in message], messages
    axes = figure.axes[0]
    assert [label.get_text() for label in axes.get_xticklabels()] == ["나는", "어제", "사과를", "샀다", "</s>"]
    assert [label.get_text() for label in axes.get_yticklabels()] == ["I", "bought", "사과", "世界", "</s>"]
    assert png.startswith(b"\x89PNG")


def test_without_a_hangul_font_the_heatmap_logs_one_line_and_draws_boxes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import matplotlib

    bundled = [font for font in font_manager.fontManager.ttflist if font.fname.startswith(matplotlib.get_data_path())]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", bundled)
    monkeypatch.setattr(attention_module, "PACKAGED_FONT_PACKAGE", "no_such_font_package")
    clear_font_caches()
    try:
        assert packaged_font_path() is None
        with caplog.at_level(logging.WARNING, logger="seq2seq_tools.attention"):
            figure, png, messages = draw(AttentionMap(SOURCE, OUTPUT, np.eye(5, dtype=np.float32)), "인사")
    finally:
        clear_font_caches()
    records = [record for record in caplog.records if record.name == "seq2seq_tools.attention"]
    assert len(records) == 1, [record.getMessage() for record in records]
    line = records[0].getMessage()
    assert "\n" not in line and "koreanize-matplotlib" in line
    assert all(character in line for character in HANGUL | {"世", "界", "인", "사"})
    assert not [message for message in messages if "missing" in message], messages
    labels = [label.get_text() for label in figure.axes[0].get_xticklabels()]
    assert labels == [MISSING_GLYPH * 2, MISSING_GLYPH * 2, MISSING_GLYPH * 3, MISSING_GLYPH * 2, "</s>"]
    assert png.startswith(b"\x89PNG")


def test_the_packaged_font_is_a_file_inside_site_packages_not_a_system_font() -> None:
    path = packaged_font_path()
    assert path is not None and path.is_file()
    assert not Path(path).is_relative_to("/usr/share/fonts")
    assert "koreanize_matplotlib" in path.parts

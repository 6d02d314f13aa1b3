"""The page's heatmap and attention downloads (`chatbot.attention_view`), without a server."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from chatbot.attention_view import AttentionDownloads, attention_plot
from seq2seq_tools.attention import AttentionMap


def attention() -> AttentionMap:
    weights = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32)
    return AttentionMap(source_labels=[" red", " cat", "</s>"], output_labels=[" chat", "</s>"], weights=weights)


def test_the_heatmap_is_the_figure_plotly_builds_from_it() -> None:
    """Built without plotly's validators, the figure is one that plotly accepts as it is (an unknown
    key or a bad value would raise), and its JSON is what plotly writes for it."""
    figure = attention_plot(attention(), title="a <model>")
    validated = go.Figure(figure.to_plotly_json())
    assert json.loads(figure.to_json()) == json.loads(validated.to_json())
    [heatmap] = validated.data
    assert [list(row) for row in heatmap.z] == [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]
    assert list(validated.layout.xaxis.ticktext) == ["red", "cat", "&lt;/s&gt;"]  # as text, not an HTML tag
    assert validated.layout.yaxis.autorange == "reversed" and validated.layout.title.text == "a <model>"
    assert "title" not in attention_plot(attention()).layout


def test_download_folders_are_pruned_now_and_then(tmp_path: Path) -> None:
    downloads = AttentionDownloads(tmp_path, max_age_s=60.0, prune_every_s=3600.0)
    json_path, csv_path = map(Path, downloads.write(attention()))
    assert json.loads(json_path.read_text(encoding="utf-8"))["source_tokens"] == [" red", " cat", "</s>"]
    assert csv_path.read_bytes().startswith(b"\xef\xbb\xbf")  # a byte-order mark for spreadsheets
    old = json_path.parent
    hour_ago = time.time() - 3600
    for path in (json_path, csv_path, old):
        os.utime(path, (hour_ago, hour_ago))
    downloads.write(attention())
    assert old.exists()  # pruned at most once an hour: the first write looked already
    AttentionDownloads(tmp_path, max_age_s=60.0, prune_every_s=0.0).write(attention())
    assert not old.exists() and len(list(tmp_path.iterdir())) == 2

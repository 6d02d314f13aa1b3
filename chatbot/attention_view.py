"""The last reply's attention as the page shows it: an interactive Plotly heatmap, and JSON and CSV
files to download.

The heatmap is drawn by the browser (plotly.js inside Gradio's `gr.Plot`), so labels in any script
use the reader's own fonts, and hovering a cell shows its source token, output token and weight.
No gradio import here: the app wires these into components.
"""

from __future__ import annotations

import csv
import functools
import html
import io
import json
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq_tools.attention import AttentionMap

HOVER_TEMPLATE = "%{customdata[1]} ← %{customdata[0]}<br>weight %{z:.3f}<extra></extra>"
# Download folders older than this are removed: Gradio copies the files into its own cache (which
# serves them to the page) before it sends the reply, so ours are scratch copies once it is sent.
DOWNLOAD_MAX_AGE_S = 300.0
# How often a server looks for old download folders.
DOWNLOAD_PRUNE_EVERY_S = 60.0


def _label(token: str) -> str:
    """A token as Plotly text: Plotly reads text as HTML, where `</s>` would be a tag and vanish."""
    return html.escape(token.strip() or "␣", quote=False)


def _heatmap(attention: AttentionMap, **style: Any) -> tuple[Any, list[str], list[str]]:
    """The Plotly heatmap trace of `attention` (cell positions on both axes, tokens in the hover text)
    with `style` (its colour settings), and the source and output tick labels."""
    import plotly.graph_objects as go

    rows, columns = attention.weights.shape
    sources = [_label(token) for token in attention.source_labels]
    outputs = [_label(token) for token in attention.output_labels]
    hover = [[[source, output] for source in sources] for output in outputs]  # (rows, columns, 2)
    heatmap = go.Heatmap(
        z=attention.weights.astype(np.float64).round(4).tolist(),  # (rows, columns)
        x=list(range(columns)),
        y=list(range(rows)),
        customdata=hover,
        hovertemplate=HOVER_TEMPLATE,
        **style,
    )
    return heatmap, sources, outputs


@dataclass
class PlotlyFigure:
    """A Plotly figure as plain data: what `plotly.graph_objects.Figure(...).to_plotly_json()` holds
    for the same traces and layout. Building it skips plotly's validators, which cost a reply more
    than decoding it; `plotly.graph_objects.Figure(figure.to_plotly_json())` validates it when wanted.

    Args:
        data: the traces, each a dict with its `type`.
        layout: the layout; `to_json` adds plotly's default template, as a validated figure's JSON has it.
    """

    data: list[dict[str, Any]]
    layout: dict[str, Any]

    def to_plotly_json(self) -> dict[str, Any]:
        return {"data": self.data, "layout": self.layout}

    def to_json(self) -> str:
        """The JSON plotly.js draws (what `gr.Plot` sends to the browser)."""
        return json.dumps({"data": self.data, "layout": {"template": _default_template(), **self.layout}})


@functools.cache
def _default_template() -> dict[str, Any]:
    """plotly's default template, as a figure built by plotly carries it."""
    import plotly.io

    return plotly.io.templates[plotly.io.templates.default].to_plotly_json()


@functools.cache
def _colorscale(name: str) -> list[list[Any]]:
    """A named colour scale as `[[position, colour], ...]`, as plotly's validator writes it."""
    import plotly.colors

    colours = plotly.colors.get_colorscale(name)
    return [[position, colour] for position, colour in colours]


def attention_plot(attention: AttentionMap, title: str | None = None) -> PlotlyFigure:
    """A Plotly heatmap of `attention`: source tokens across (on top), output tokens down.

    Axes are cell positions with the tokens as tick text, so a token that occurs twice keeps two
    columns (categorical axes would merge them). Values go in as plain lists, not numpy arrays:
    Plotly serialises arrays as typed binary blocks that older plotly.js builds cannot read.
    """
    rows, columns = attention.weights.shape
    sources = [_label(token) for token in attention.source_labels]
    outputs = [_label(token) for token in attention.output_labels]
    heatmap = {
        "type": "heatmap",
        "z": attention.weights.astype(np.float64).round(4).tolist(),  # (rows, columns)
        "x": list(range(columns)),
        "y": list(range(rows)),
        "customdata": [[[source, output] for source in sources] for output in outputs],  # (rows, columns, 2)
        "hovertemplate": HOVER_TEMPLATE,
        "zmin": 0.0,
        "zmax": 1.0,
        "colorscale": _colorscale("Viridis"),
        "colorbar": {"title": {"text": "weight"}},
    }
    layout = {
        "xaxis": {"tickmode": "array", "tickvals": list(range(columns)), "ticktext": sources, "side": "top",
                  "tickangle": -45},
        "yaxis": {"tickmode": "array", "tickvals": list(range(rows)), "ticktext": outputs, "autorange": "reversed"},
        "margin": {"l": 90, "r": 30, "t": 130 if title else 100, "b": 30},
        "height": int(min(900, max(320, 34 * rows + 200))),
    }  # fmt: skip
    if title:
        layout["title"] = {"text": title}
    return PlotlyFigure([heatmap], layout)


def comparison_plot(maps: list[tuple[str, AttentionMap]]) -> Any:
    """The heatmaps of several models' replies to one input, side by side in one Plotly figure.

    One colour scale serves them all (a shared `coloraxis`, 0 to 1, one colour bar), and where the
    models read the source as the same tokens they share one source axis: the same ticks, and
    zooming or panning one moves the others. Output tokens run down each panel, as in
    `attention_plot`. `maps` pairs each panel's title (the model's name) with its map.
    Returns a `plotly.graph_objects.Figure`.
    """
    from plotly.subplots import make_subplots

    titles = [_label(title) for title, _ in maps]
    figure = make_subplots(rows=1, cols=len(maps), subplot_titles=titles, horizontal_spacing=0.06)
    shared = all(attention.source_labels == maps[0][1].source_labels for _, attention in maps)
    for column, (_, attention) in enumerate(maps, start=1):
        heatmap, sources, outputs = _heatmap(attention, coloraxis="coloraxis")
        rows, columns = attention.weights.shape
        figure.add_trace(heatmap, row=1, col=column)
        figure.update_xaxes(
            tickmode="array",
            tickvals=list(range(columns)),
            ticktext=sources,
            side="top",
            tickangle=-45,
            matches="x" if shared and column > 1 else None,
            row=1,
            col=column,
        )
        figure.update_yaxes(
            tickmode="array", tickvals=list(range(rows)), ticktext=outputs, autorange="reversed", row=1, col=column
        )
    longest = max(attention.weights.shape[0] for _, attention in maps)
    figure.update_annotations(yshift=70)  # the panel titles, above the source tokens
    figure.update_layout(
        coloraxis={"cmin": 0.0, "cmax": 1.0, "colorscale": "Viridis", "colorbar": {"title": {"text": "weight"}}},
        height=int(min(900, max(340, 30 * longest + 220))),
        margin={"l": 70, "r": 30, "t": 160, "b": 30},
    )
    return figure


def attention_csv(attention: AttentionMap) -> str:
    """The matrix as CSV: a header row of source tokens, then one row per output token."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["output \\ source", *attention.source_labels])
    for token, row in zip(attention.output_labels, attention.weights.tolist(), strict=True):
        writer.writerow([token, *row])
    return text.getvalue()


def attention_json(attention: AttentionMap) -> str:
    """The tokens and the full-precision matrix as JSON (the keys of `AttentionMap.to_dict`)."""
    content = {
        "source_tokens": attention.source_labels,
        "output_tokens": attention.output_labels,
        "weights": attention.weights.tolist(),  # (output tokens, source tokens)
    }
    return json.dumps(content, ensure_ascii=False)


class AttentionDownloads:
    """Where each reply's `attention.json` and `attention.csv` are written for the page to offer:
    a folder of their own per reply under `root` (by default one in the system temp directory, where
    Gradio may serve files from), so that concurrent users' files keep fixed names apart.

    Folders older than `max_age_s` are removed, looked for at most every `prune_every_s`: Gradio has
    copied the files into its own cache long before, and a long-running server must not fill the disk
    (nor list a folder of thousands of replies at every reply).
    """

    def __init__(
        self,
        root: str | Path | None = None,
        max_age_s: float = DOWNLOAD_MAX_AGE_S,
        prune_every_s: float = DOWNLOAD_PRUNE_EVERY_S,
    ):
        self.root = Path(root) if root is not None else Path(tempfile.gettempdir()) / "seq2seq-rnn-attention"
        self.max_age_s, self.prune_every_s = max_age_s, prune_every_s
        self._lock = threading.Lock()
        self._last_pruned = float("-inf")

    def write(self, attention: AttentionMap) -> list[str]:
        """Write the reply's two files and return their paths. They are scratch copies for one
        download, written without syncing them to disk."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._maybe_prune()
        folder = self.root / uuid.uuid4().hex
        folder.mkdir()
        paths = [folder / "attention.json", folder / "attention.csv"]
        paths[0].write_text(attention_json(attention), encoding="utf-8")
        # With a byte-order mark: spreadsheet programs otherwise read UTF-8 CSV as a legacy code page.
        paths[1].write_text(attention_csv(attention), encoding="utf-8-sig")
        return [str(path) for path in paths]

    def _maybe_prune(self) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last_pruned < self.prune_every_s:
                return
            self._last_pruned = now
        cutoff = time.time() - self.max_age_s
        for folder in self.root.iterdir():
            try:
                if folder.stat().st_mtime < cutoff:
                    for file in folder.iterdir():
                        file.unlink()
                    folder.rmdir()
            except OSError:  # another server is removing it too
                continue


def write_attention_files(attention: AttentionMap, root: str | Path | None = None) -> list[str]:
    """`attention.json` and `attention.csv` of one reply in a new folder under `root` (see
    `AttentionDownloads`, which a server keeps to prune old folders now and then)."""
    return AttentionDownloads(root, prune_every_s=0.0).write(attention)


__all__ = [
    "AttentionDownloads",
    "PlotlyFigure",
    "attention_csv",
    "attention_json",
    "attention_plot",
    "comparison_plot",
    "write_attention_files",
]

"""The last reply's attention as the page shows it: an interactive Plotly heatmap, and JSON and CSV
files to download.

The heatmap is drawn by the browser (plotly.js inside Gradio's `gr.Plot`), so labels in any script
use the reader's own fonts, and hovering a cell shows its source token, output token and weight.
No gradio import here: the app wires these into components.
"""

from __future__ import annotations

import csv
import html
import io
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq_tools.attention import AttentionMap
from seq2seq_tools.files import write_atomically

# Download folders older than this are removed when a new one is written: Gradio has copied the
# files into its own cache long before, and a long-running server must not fill the disk.
DOWNLOAD_MAX_AGE_S = 3600.0


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
        hovertemplate="%{customdata[1]} ← %{customdata[0]}<br>weight %{z:.3f}<extra></extra>",
        **style,
    )
    return heatmap, sources, outputs


def attention_plot(attention: AttentionMap, title: str | None = None) -> Any:
    """A Plotly heatmap of `attention`: source tokens across (on top), output tokens down.

    Axes are cell positions with the tokens as tick text, so a token that occurs twice keeps two
    columns (categorical axes would merge them). Values go in as plain lists, not numpy arrays:
    Plotly serialises arrays as typed binary blocks that older plotly.js builds cannot read.
    Returns a `plotly.graph_objects.Figure`.
    """
    import plotly.graph_objects as go

    heatmap, sources, outputs = _heatmap(
        attention, zmin=0.0, zmax=1.0, colorscale="Viridis", colorbar={"title": {"text": "weight"}}
    )
    rows, columns = attention.weights.shape
    figure = go.Figure(heatmap)
    figure.update_xaxes(tickmode="array", tickvals=list(range(columns)), ticktext=sources, side="top", tickangle=-45)
    figure.update_yaxes(tickmode="array", tickvals=list(range(rows)), ticktext=outputs, autorange="reversed")
    figure.update_layout(
        title={"text": title} if title else None,
        height=int(min(900, max(320, 34 * rows + 200))),
        margin={"l": 90, "r": 30, "t": 130 if title else 100, "b": 30},
    )
    return figure


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


def _remove_old_downloads(root: Path, max_age_s: float) -> None:
    cutoff = time.time() - max_age_s
    for folder in root.iterdir():
        try:
            if folder.stat().st_mtime < cutoff:
                for file in folder.iterdir():
                    file.unlink()
                folder.rmdir()
        except OSError:  # another request is removing it too
            continue


def write_attention_files(attention: AttentionMap, root: str | Path | None = None) -> list[str]:
    """Write `attention.json` and `attention.csv` in a new folder of their own under `root` (by
    default a folder in the system temp directory, where Gradio may serve files from) and return
    their paths. One folder per reply keeps concurrent users' files apart under fixed names."""
    root = Path(root) if root is not None else Path(tempfile.gettempdir()) / "seq2seq-rnn-attention"
    root.mkdir(parents=True, exist_ok=True)
    _remove_old_downloads(root, DOWNLOAD_MAX_AGE_S)
    folder = root / uuid.uuid4().hex
    folder.mkdir()
    paths = [folder / "attention.json", folder / "attention.csv"]
    write_atomically(paths[0], attention_json(attention))
    # With a byte-order mark: spreadsheet programs otherwise read UTF-8 CSV as a legacy code page.
    write_atomically(paths[1], attention_csv(attention), encoding="utf-8-sig")
    return [str(path) for path in paths]


__all__ = ["attention_csv", "attention_json", "attention_plot", "comparison_plot", "write_attention_files"]

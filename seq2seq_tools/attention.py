"""Attention maps of generated text, and their heatmaps: shared by training and the chatbot.

`attention_map` reads the cross-attention of one sequence out of a `generate()` output (under beam
search, through `beam_indices`, so the map is the returned hypothesis's own); `hard_alignment`
turns a map into Pharaoh `i-j` pairs; `attention_figure` draws it with matplotlib, imported only
when a figure is drawn (nothing in the model package needs matplotlib). Its labels use a Hangul
font that a pip package ships, so Korean heatmaps render without system CJK fonts; characters no
font has are logged once and drawn as boxes.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hf_seq2seq_rnn.tokenization_seq2seq_rnn import display_tokens

logger = logging.getLogger(__name__)


@dataclass
class AttentionMap:
    """The cross-attention of one reply.

    Args:
        source_labels: one readable label per source token (`</s>` included).
        output_labels: one label per generated token (the final `</s>` included when reached).
        weights (`np.ndarray` of shape `(len(output_labels), len(source_labels))`): row t is the
            alignment of output token t over the source; each row sums to 1.
    """

    source_labels: list[str]
    output_labels: list[str]
    weights: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_tokens": self.source_labels,
            "output_tokens": self.output_labels,
            "weights": self.weights.astype(np.float64).round(4).tolist(),  # float32 would print 0.3333 as 0.33329999
        }


def attention_map(tokenizer: Any, source_ids: torch.Tensor, outputs: Any, row: int = 0) -> AttentionMap | None:
    """The cross-attention of returned sequence `row` of a `generate()` output.

    `outputs` comes from `generate(..., output_attentions=True, return_dict_in_generate=True)`:
    `cross_attentions` holds, per generated step, a tuple with one tensor per attention layer of
    shape `(batch * beams, 1, 1, src_len)`. With beam search, the rows belong to the beams alive
    at that step; `beam_indices` `(batch, steps)` names, per step, the beam the returned sequence
    came from (-1 after it ended). Without beams, row `row` is the sequence's own; its steps after
    its `</s>`, or after its last token where a length cap stopped it without one (the padding of a
    batch that runs on for its longest member), are left out. `source_ids` are that row's source
    tokens without padding. Returns None for models without attention.
    """
    steps = outputs.cross_attentions
    if not steps or steps[0] is None or steps[0][0] is None:
        return None
    token_ids = outputs.sequences[row, 1:]  # (new,) without the decoder start token
    eos = getattr(tokenizer, "eos_token_id", None)
    ended = (token_ids == eos).nonzero() if eos is not None else []
    if len(ended):
        token_ids = token_ids[: int(ended[0, 0]) + 1]  # up to and with the first </s>
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is not None and pad != eos:  # as `generation._hypothesis` cuts the returned tokens
        real = (token_ids != pad).nonzero()
        token_ids = token_ids[: int(real[-1, 0]) + 1 if len(real) else 0]
    beam_indices = getattr(outputs, "beam_indices", None)
    rows = []
    for t, layers in enumerate(steps[: len(token_ids)]):
        alignment = layers[-1]  # (batch * beams, 1, 1, src_len)
        beam = row
        if beam_indices is not None:
            beam = int(beam_indices[row, t])
            if beam < 0:  # the returned hypothesis had already ended
                break
        rows.append(alignment[beam, 0, 0, : len(source_ids)].float().cpu())  # (src_len,)
    weights = torch.stack(rows).numpy() if rows else np.zeros((0, len(source_ids)), dtype=np.float32)
    return AttentionMap(
        source_labels=display_tokens(tokenizer, source_ids.tolist()),
        output_labels=display_tokens(tokenizer, token_ids[: len(rows)].tolist()),
        weights=weights,  # (new, src_len)
    )


def hard_alignment(
    attention: AttentionMap, special: tuple[str, ...] = ("</s>", "<s>", "<pad>")
) -> list[tuple[int, int]]:
    """Pharaoh pairs `(source index, output index)`: each output token aligned to the source token it
    attends to most, as Marian's hard alignments and fast_align's output are read.

    Indices are token positions in `source_labels` and `output_labels` (0-based). Special tokens
    (`special`) take no part: an output `</s>` gets no pair, and the argmax runs over the real source
    tokens only, since every row's weight on the source `</s>` says nothing about a word.
    """
    sources = [index for index, label in enumerate(attention.source_labels) if label not in special]
    if not sources:
        return []
    pairs = []
    for output, label in enumerate(attention.output_labels):
        if label in special:
            continue
        row = attention.weights[output, sources]  # (real sources,)
        pairs.append((sources[int(np.argmax(row))], output))
    return pairs


def pharaoh(pairs: list[tuple[int, int]]) -> str:
    """`i-j` pairs separated by spaces: one line of a fast_align / Marian alignment file."""
    return " ".join(f"{source}-{output}" for source, output in pairs)


# A pip-installable font with every Hangul syllable (NanumGothic, SIL OFL 1.1, in the [train] and
# [chat] extras), so that Korean heatmaps render on machines without system CJK fonts. The package
# is located, never imported: importing it sets matplotlib's global rcParams.
PACKAGED_FONT_DISTRIBUTION = "koreanize-matplotlib"
PACKAGED_FONT_PACKAGE = "koreanize_matplotlib"
PACKAGED_FONT_FILE = "fonts/NanumGothic.ttf"
# System faces tried after the packaged one, for scripts it lacks (most Han characters, kana).
SYSTEM_CJK_FAMILIES = ("Noto Sans CJK KR", "Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans CJK TC")
# What a character no font can draw is shown as: a box, as matplotlib would, without its warnings.
MISSING_GLYPH = "\N{WHITE SQUARE}"


def packaged_font_path() -> Path | None:
    """The packaged Hangul font file, or None when its package is not installed."""
    spec = importlib.util.find_spec(PACKAGED_FONT_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / PACKAGED_FONT_FILE
        if path.is_file():
            return path
    return None


def heatmap_font_families() -> list[str]:
    """Font families for heatmap labels, in the order matplotlib tries them for each glyph.

    matplotlib's own DejaVu Sans first (Latin labels render from a small font, about 3x faster than
    from a CJK one), then the packaged NanumGothic, registered with matplotlib's font manager on
    first use, then one system Noto Sans CJK face when fonts-noto-cjk is installed. The packaged
    font comes before the system one so that Hangul looks the same on every machine.
    """
    from matplotlib import font_manager

    families = ["DejaVu Sans"]
    path = packaged_font_path()
    if path is not None:
        registered = {Path(font.fname) for font in font_manager.fontManager.ttflist}
        if path not in registered:
            font_manager.fontManager.addfont(str(path))
        families.append(font_manager.get_font(str(path)).family_name)
    installed = {font.name for font in font_manager.fontManager.ttflist}
    families += [name for name in SYSTEM_CJK_FAMILIES if name in installed][:1]
    return families


def font_files(families: Sequence[str]) -> list[Path]:
    """The file matplotlib draws each family from (families it cannot find are left out)."""
    from matplotlib import font_manager

    files = []
    for family in families:
        try:
            found = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
        except ValueError:
            continue
        files.append(Path(found))
    return files


def missing_glyphs(texts: Iterable[str], families: Sequence[str]) -> set[str]:
    """The characters of `texts` that none of the fonts of `families` has a glyph for."""
    from matplotlib import font_manager

    charmaps = [font_manager.get_font(str(path)).get_charmap() for path in font_files(families)]
    return {
        character
        for text in texts
        for character in text
        if not character.isspace() and not any(ord(character) in charmap for charmap in charmaps)
    }


def _boxed(text: str, missing: set[str]) -> str:
    return "".join(MISSING_GLYPH if character in missing else character for character in text)


def attention_figure(attention: AttentionMap, title: str | None = None):
    """Draw the heatmap of an attention map: source tokens across, output tokens down.

    Returns a `matplotlib.figure.Figure` built without pyplot (no global figure registry, safe
    in server threads).
    """
    from matplotlib.figure import Figure

    families = heatmap_font_families()
    source_labels = [label.strip() or "␣" for label in attention.source_labels]
    output_labels = [label.strip() or "␣" for label in attention.output_labels]
    missing = missing_glyphs([*source_labels, *output_labels, title or ""], families)
    if missing:  # one line here instead of one matplotlib warning per glyph at draw time
        logger.warning(
            "No installed font draws %s; the heatmap shows them as %s (pip install %s for Hangul, or "
            "install a Noto font for other scripts)",
            "".join(sorted(missing)),
            MISSING_GLYPH,
            PACKAGED_FONT_DISTRIBUTION,
        )
        source_labels = [_boxed(label, missing) for label in source_labels]
        output_labels = [_boxed(label, missing) for label in output_labels]
        title = title and _boxed(title, missing)
    rows, columns = attention.weights.shape
    width = min(14.0, max(4.0, 0.55 * columns + 2.0))
    height = min(14.0, max(3.0, 0.45 * rows + 1.6))
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(attention.weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    axes.xaxis.tick_top()  # before the labels: it switches to the other label set
    axes.xaxis.set_label_position("top")
    axes.set_xticks(range(columns), source_labels, rotation=60, ha="left", fontfamily=families)
    axes.set_yticks(range(rows), output_labels, fontfamily=families)
    axes.set_xlabel("source tokens", fontfamily=families)
    axes.set_ylabel("output tokens", fontfamily=families)
    if title:
        axes.set_title(title, fontfamily=families, pad=12)
    figure.colorbar(image, ax=axes, fraction=0.04, label="attention weight")
    return figure


__all__ = [
    "AttentionMap",
    "attention_figure",
    "attention_map",
    "hard_alignment",
    "heatmap_font_families",
    "missing_glyphs",
    "packaged_font_path",
    "pharaoh",
]

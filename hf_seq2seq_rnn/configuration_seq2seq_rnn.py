"""Configuration of the recurrent encoder–decoder with attention.

One vocabulary serves source and target. A joint subword vocabulary (Sennrich et al., 2016) is
what a multilingual or chat model wants anyway (question and answer share a language), it lets one
`tokenizers` tokenizer sit beside the weights as any Hugging Face checkpoint's does. The encoder and
decoder still keep embedding tables of their own: a word's role differs between reading and writing.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from transformers import PreTrainedConfig

from .numbers_seq2seq_rnn import is_number, is_whole

# The hf-seq2seq-rnn release these files belong to, the one source of the version: pyproject.toml
# reads it from here, and a saved config.json records it (as VERSION_KEY) beside transformers_version,
# so that a loader can tell which release wrote a model, even when the package itself is not
# installed and this file runs as a model folder's remote code.
SEQ2SEQ_RNN_VERSION = "0.1.0"
VERSION_KEY = "seq2seq_rnn_version"
# The classes a saved directory maps to, so that it loads through the Auto classes with remote code.
AUTO_MAP = {
    "AutoConfig": "configuration_seq2seq_rnn.Seq2SeqRNNConfig",
    "AutoModel": "modeling_seq2seq_rnn.Seq2SeqRNNModel",
    "AutoModelForSeq2SeqLM": "modeling_seq2seq_rnn.Seq2SeqRNNForConditionalGeneration",
}
# The pipeline task a saved directory offers: `pipeline(PIPELINE_TASK, model=dir, trust_remote_code=True)`.
PIPELINE_TASK = "seq2seq-rnn"
CUSTOM_PIPELINES = {
    PIPELINE_TASK: {
        "impl": "pipeline_seq2seq_rnn.Seq2SeqRNNPipeline",
        "pt": ["AutoModelForSeq2SeqLM"],
        "tf": [],
        "type": "text",
    }
}
# `attention_type`'s accepted values and what each computes, in the order of the attention module's
# registry (`attention_seq2seq_rnn.ATTENTION_CLASSES`, which refuses to load unless it names the same
# types, with a context exactly for those not in `WITHOUT_CONTEXT`). A plain table, so that the
# configuration needs neither the attention module nor torch, as Marian's imports nothing of its model.
ATTENTION_DESCRIPTIONS = {
    "none": "No attention: the fixed context vector of Sutskever et al. (2014) and Cho et al. (2014). The "
    "decoder's output is its recurrent state, `h~_t = s_t`; `forward` returns `(None, None)`",
    "dot": "`score(q, k_j) = q^T k_j` (Luong et al., 2015, eq. 8), with the current decoder state as `q`",
    "general": "`score(q, k_j) = q^T W_a k_j` (Luong et al., 2015, eq. 8), with the current decoder state as `q`",
    "additive": "`score(q, k_j) = v_a^T tanh(W_a q + U_a k_j)` (Bahdanau et al., 2015, appendix A.1.2), with the "
    "previous decoder state as `q`; `U_a k_j` is `project_keys`, computed once per source",
}
# The attention types that compute no context: no alignments, and nothing for input feeding to feed.
WITHOUT_CONTEXT = ("none",)
CellType = Literal["lstm", "gru", "peephole_lstm"]
AttentionType = Literal[*ATTENTION_DESCRIPTIONS]
InitScheme = Literal["scaled_embeddings", "uniform", "pytorch"]
CELL_TYPES = typing.get_args(CellType)
ATTENTION_TYPES = typing.get_args(AttentionType)
INIT_SCHEMES = typing.get_args(InitScheme)


def setting(default: Any, help: str, minimum: float | None = None) -> Any:
    """An architecture setting: its default, its meaning (the config's docstring and every command's
    `--help`) and, for a number, the least value accepted."""
    return field(default=default, metadata={"help": help, "minimum": minimum})


@dataclass(frozen=True)
class Seq2SeqRNNSettings:
    """The architecture's settings, each declared once: its type, default and meaning. `Seq2SeqRNNConfig`
    takes them as keyword arguments and checks them (`check_settings`), its docstring lists them, and
    `training.config` makes each a training key and flag."""

    vocab_size: int = setting(8000, "size of the vocabulary shared by source and target.", minimum=1)
    embedding_size: int = setting(256, "width of the token embeddings.", minimum=1)
    hidden_size: int = setting(
        256,
        "width of the recurrent state of each layer. With a bidirectional encoder each direction has "
        "`hidden_size // 2` units, so that encoder states and decoder states have the same width (as in "
        "OpenNMT's `brnn`).",
        minimum=1,
    )
    num_layers: int = setting(2, "stacked recurrent layers in the encoder and in the decoder.", minimum=1)
    cell_type: CellType = setting(
        "lstm",
        '`"lstm"`, `"gru"` (Cho et al., 2014) or `"peephole_lstm"` (Gers & Schmidhuber, 2000: the gates also '
        "read the cell state).",
    )
    bidirectional_encoder: bool = setting(True, "read the source in both directions.")
    attention_type: AttentionType = setting(
        "general",
        "the attention over the source, one class each (attention_seq2seq_rnn.ATTENTION_CLASSES): "
        + "; ".join(f'`"{name}"`: {meaning}' for name, meaning in ATTENTION_DESCRIPTIONS.items()),
    )
    input_feeding: bool = setting(
        False,
        "feed the previous attentional hidden state to the next decoder step (Luong et al., 2015, section 3.3).",
    )
    peeky: bool = setting(
        False,
        "feed the encoder summary (the top layer's final state) to every decoder step and to the output layer "
        "(Cho et al., 2014, section 2.2).",
    )
    reverse_source: bool = setting(
        False, "read each source sentence backwards (Sutskever et al., 2014, section 3.3). Padding stays at the end."
    )
    dropout: float = setting(
        0.1, "dropout on embeddings, between recurrent layers and on the attentional hidden state.", minimum=0.0
    )
    teacher_forcing_ratio: float = setting(
        1.0,
        "the probability, during training, that a decoder step reads the reference token rather than the "
        "model's own previous prediction. Training scripts may override it per step "
        "(`forward(teacher_forcing_ratio=)`).",
        minimum=0.0,
    )
    label_smoothing: float = setting(0.0, "label smoothing of the cross-entropy loss.", minimum=0.0)
    tie_word_embeddings: bool = setting(
        False, "share the decoder's input embedding with the output layer (Press & Wolf, 2017)."
    )
    init: InitScheme = setting(
        "scaled_embeddings",
        "how new weights are initialised (weights loaded from a checkpoint are never touched). "
        '`"scaled_embeddings"`: U(-init_range, init_range) for every weight but the embeddings, which are drawn '
        "from N(0, 16 / embedding_size) (an expected norm of 4 at any width, so N(0, 1) at width 16), with the "
        "padding row zeroed, the forget-gate bias of LSTMs set to 1 (Gers et al., 2000) and the general score's "
        'W_a set to 0 (uniform first alignments). `"uniform"`: every parameter from U(-init_range, init_range), '
        'as in Sutskever et al. (2014), section 3.4. `"pytorch"`: each layer\'s own PyTorch initialisation '
        "(U(-1/sqrt(hidden), 1/sqrt(hidden)) for recurrent weights, N(0, 1) for embeddings, Kaiming-uniform for "
        'linear layers), the forget-gate bias at 1 and the padding embedding zeroed. Why "scaled_embeddings" '
        'is the default: it learns the textbook\'s character tasks with small embeddings, where "uniform" does '
        'not, and keeps the translation quality of "uniform" (README, "Initialization", gives the figures).',
    )
    init_range: float = setting(
        0.1, 'the range of the uniform draws ("scaled_embeddings", "uniform"); above 0.', minimum=0.0
    )


SETTINGS = {item.name: item for item in fields(Seq2SeqRNNSettings)}
SETTING_TYPES = typing.get_type_hints(Seq2SeqRNNSettings)
# The settings that are probabilities, checked to lie in [0, 1].
PROBABILITIES = ("dropout", "teacher_forcing_ratio", "label_smoothing")


def check_settings(values: dict[str, Any]) -> None:
    """Raise `ValueError` naming the setting and what it accepts, for any value of `values` no model can use."""
    for name, value in values.items():
        hint = SETTING_TYPES[name]
        if typing.get_origin(hint) is Literal and value not in typing.get_args(hint):
            accepted = ", ".join(map(repr, typing.get_args(hint)))
            raise ValueError(f"{name}={value!r} is not supported; accepted values: {accepted}")
        if hint is bool and not isinstance(value, bool):
            raise ValueError(f"{name}={value!r} must be True or False")
        if hint is int and not (is_whole(value) and value >= SETTINGS[name].metadata["minimum"]):
            raise ValueError(f"{name}={value!r} must be an integer >= {SETTINGS[name].metadata['minimum']}")
        if name in PROBABILITIES and not (is_number(value) and 0.0 <= value <= 1.0):
            raise ValueError(f"{name}={value!r} must be a number between 0 and 1")
    init_range = values["init_range"]
    if not (is_number(init_range) and init_range > 0):
        raise ValueError(f"init_range={init_range!r} must be a finite positive number")
    if values["bidirectional_encoder"] and values["hidden_size"] % 2:
        raise ValueError(
            f"hidden_size={values['hidden_size']} must be even with bidirectional_encoder=True: "
            "each direction has hidden_size // 2 units"
        )
    if values["input_feeding"] and values["attention_type"] in WITHOUT_CONTEXT:
        with_context = tuple(name for name in ATTENTION_TYPES if name not in WITHOUT_CONTEXT)
        raise ValueError(
            "input_feeding=True needs attention: it feeds the attentional hidden state; "
            f"use attention_type in {with_context} or input_feeding=False"
        )


def has_attention(config: Any) -> bool:
    """Whether a model of `config` attends to its source (returns alignments): False for a type
    without a context and for a config of another model type, which has no `attention_type`."""
    attention_type = getattr(config, "attention_type", None)
    return attention_type in ATTENTION_DESCRIPTIONS and attention_type not in WITHOUT_CONTEXT


def _check_token_ids(vocab_size: int, token_ids: dict[str, object]) -> None:
    for name, token_id in token_ids.items():
        if not (is_whole(token_id) and 0 <= token_id < vocab_size):
            raise ValueError(f"{name}={token_id!r} must be an integer in [0, vocab_size={vocab_size})")


def _settings_docstring() -> str:
    """The `Args:` entries of the settings, for the config's docstring."""
    names = {int: "int", float: "float", bool: "bool"}
    return "".join(
        f"        {name} (`{names.get(SETTING_TYPES[name], 'str')}`, defaults to {item.default!r}): "
        f"{item.metadata['help']}\n"
        for name, item in SETTINGS.items()
    )


class Seq2SeqRNNConfig(PreTrainedConfig):
    __doc__ = f"""
    Configuration of [`Seq2SeqRNNModel`] and [`Seq2SeqRNNForConditionalGeneration`].

    Args:
{_settings_docstring()}        pad_token_id, bos_token_id, eos_token_id, unk_token_id (`int`): special token ids;
            decoding starts from `decoder_start_token_id` (defaults to `bos_token_id`).

    Each setting is declared once, in `Seq2SeqRNNSettings`. A saved config.json also holds
    `seq2seq_rnn_version`, the release that wrote it: not a setting (a value read from a file is
    dropped), `to_dict` always writes the running release.
    """

    model_type = "seq2seq_rnn"
    keys_to_ignore_at_inference = ["cache", "past_key_values"]

    def __init__(
        self,
        pad_token_id: int = 0,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        unk_token_id: int = 3,
        decoder_start_token_id: int | None = None,
        is_encoder_decoder: bool = True,
        use_cache: bool = True,
        **kwargs,
    ):
        """The settings of `Seq2SeqRNNSettings` as keyword arguments (each defaults to its declared value),
        the special token ids, and the `PreTrainedConfig` arguments."""
        settings = {name: kwargs.pop(name, item.default) for name, item in SETTINGS.items()}
        check_settings(settings)
        decoder_start_token_id = bos_token_id if decoder_start_token_id is None else decoder_start_token_id
        _check_token_ids(
            settings["vocab_size"],
            {
                "pad_token_id": pad_token_id,
                "bos_token_id": bos_token_id,
                "eos_token_id": eos_token_id,
                "unk_token_id": unk_token_id,
                "decoder_start_token_id": decoder_start_token_id,
            },
        )
        tie_word_embeddings = settings.pop("tie_word_embeddings")
        for name, value in settings.items():
            setattr(self, name, float(value) if SETTING_TYPES[name] is float else value)
        self.unk_token_id = unk_token_id
        self.use_cache = use_cache
        # Which release wrote a loaded file is the loader's business (seq2seq_tools.loading); kept
        # here it would be written back unchanged by a newer release.
        kwargs.pop(VERSION_KEY, None)
        kwargs["auto_map"] = {**AUTO_MAP, **(kwargs.get("auto_map") or {})}
        kwargs["custom_pipelines"] = {**CUSTOM_PIPELINES, **(kwargs.get("custom_pipelines") or {})}
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            decoder_start_token_id=decoder_start_token_id,
            is_encoder_decoder=is_encoder_decoder,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )

    @property
    def num_hidden_layers(self) -> int:
        """The library's name for `num_layers`."""
        return self.num_layers

    def to_dict(self) -> dict[str, Any]:
        """The config as a dict, stamped with the release that writes it, as transformers stamps
        `transformers_version`: `save_pretrained` writes this into config.json."""
        output = super().to_dict()
        output[VERSION_KEY] = SEQ2SEQ_RNN_VERSION
        return output


__all__ = [
    "Seq2SeqRNNConfig",
    "SEQ2SEQ_RNN_VERSION",
    "VERSION_KEY",
    "CELL_TYPES",
    "ATTENTION_TYPES",
    "INIT_SCHEMES",
    "WITHOUT_CONTEXT",
    "has_attention",
    "PIPELINE_TASK",
]

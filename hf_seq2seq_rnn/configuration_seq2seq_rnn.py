"""Configuration of the recurrent encoder–decoder with attention.

One vocabulary serves source and target. A joint subword vocabulary (Sennrich et al., 2016) is
what a multilingual or chat model wants anyway (question and answer share a language), it lets one
`tokenizers` tokenizer sit beside the weights as any Hugging Face checkpoint's does. The encoder and
decoder still keep embedding tables of their own: a word's role differs between reading and writing.
"""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedConfig

from .attention_seq2seq_rnn import ATTENTION_CLASSES

# The hf-seq2seq-rnn release these files belong to, the one source of the version: pyproject.toml
# reads it from here, and a saved config.json records it (as VERSION_KEY) beside transformers_version,
# so that a loader can tell which release wrote a model, even when the package itself is not
# installed and this file runs as a model folder's remote code.
SEQ2SEQ_RNN_VERSION = "0.1.0"
VERSION_KEY = "seq2seq_rnn_version"
CELL_TYPES = ("lstm", "gru", "peephole_lstm")
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
# `attention_type`'s accepted values: the names of the attention classes, in the registry's order.
ATTENTION_TYPES = tuple(ATTENTION_CLASSES)
INIT_SCHEMES = ("scaled_embeddings", "uniform", "pytorch")


def _check_choice(name: str, value: object, accepted: tuple[str, ...]) -> None:
    if value not in accepted:
        raise ValueError(f"{name}={value!r} is not supported; accepted values: {', '.join(map(repr, accepted))}")


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")


def _check_probability(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value!r} must be a number between 0 and 1")


class Seq2SeqRNNConfig(PreTrainedConfig):
    r"""
    Configuration of [`Seq2SeqRNNModel`] and [`Seq2SeqRNNForConditionalGeneration`].

    Args:
        vocab_size (`int`, defaults to 8000): size of the vocabulary shared by source and target.
        embedding_size (`int`, defaults to 256): width of the token embeddings.
        hidden_size (`int`, defaults to 256): width of the recurrent state of each layer. With a
            bidirectional encoder each direction has `hidden_size // 2` units, so that encoder
            states and decoder states have the same width (as in OpenNMT's `brnn`).
        num_layers (`int`, defaults to 2): stacked recurrent layers in the encoder and in the decoder.
        cell_type (`str`, defaults to `"lstm"`): `"lstm"`, `"gru"` (Cho et al., 2014) or
            `"peephole_lstm"` (Gers & Schmidhuber, 2000: the gates also read the cell state).
        bidirectional_encoder (`bool`, defaults to `True`): read the source in both directions.
        attention_type (`str`, defaults to `"general"`): `"none"` (the fixed context vector of
            Sutskever et al., 2014 and Cho et al., 2014), `"dot"` or `"general"` (Luong et al., 2015,
            scored with the current decoder state) or `"additive"` (Bahdanau et al., 2015, scored
            with the previous decoder state).
        input_feeding (`bool`, defaults to `False`): feed the previous attentional hidden state to
            the next decoder step (Luong et al., 2015, section 3.3).
        peeky (`bool`, defaults to `False`): feed the encoder summary (the top layer's final state)
            to every decoder step and to the output layer (Cho et al., 2014, section 2.2).
        reverse_source (`bool`, defaults to `False`): read each source sentence backwards
            (Sutskever et al., 2014, section 3.3). Padding stays at the end.
        dropout (`float`, defaults to 0.1): dropout on embeddings, between recurrent layers and on
            the attentional hidden state.
        teacher_forcing_ratio (`float`, defaults to 1.0): the probability, during training, that a
            decoder step reads the reference token rather than the model's own previous
            prediction. Training scripts may override it per step (`forward(teacher_forcing_ratio=)`).
        label_smoothing (`float`, defaults to 0.0): label smoothing of the cross-entropy loss.
        tie_word_embeddings (`bool`, defaults to `False`): share the decoder's input embedding
            with the output layer (Press & Wolf, 2017).
        init (`str`, defaults to `"scaled_embeddings"`): how new weights are initialised (weights
            loaded from a checkpoint are never touched). `"scaled_embeddings"`: U(-init_range,
            init_range) for every weight but the embeddings, which are drawn from N(0, 16 /
            embedding_size) (an expected norm of 4 at any width, so N(0, 1) at width 16), with the
            padding row zeroed, the forget-gate bias of LSTMs set to 1 (Gers et al., 2000) and the
            general score's W_a set to 0 (uniform first alignments).
            `"uniform"`: every parameter from U(-init_range, init_range), as in Sutskever et al.
            (2014), section 3.4. `"pytorch"`: each layer's own PyTorch initialisation
            (U(-1/sqrt(hidden), 1/sqrt(hidden)) for recurrent weights, N(0, 1) for embeddings,
            Kaiming-uniform for linear layers), the forget-gate bias at 1 and the padding embedding
            zeroed. Why "scaled_embeddings" is the default: it learns the textbook's character tasks
            with small embeddings, where "uniform" does not, and keeps the translation quality of
            "uniform" (README, "Initialization", gives the figures).
        init_range (`float`, defaults to 0.1): the range of the uniform draws ("scaled_embeddings", "uniform").
        pad_token_id, bos_token_id, eos_token_id, unk_token_id (`int`): special token ids;
            decoding starts from `decoder_start_token_id` (defaults to `bos_token_id`).

    A saved config.json also holds `seq2seq_rnn_version`, the release that wrote it: not a setting
    (a value read from a file is dropped), `to_dict` always writes the running release.
    """

    model_type = "seq2seq_rnn"
    keys_to_ignore_at_inference = ["cache", "past_key_values"]

    def __init__(
        self,
        vocab_size: int = 8000,
        embedding_size: int = 256,
        hidden_size: int = 256,
        num_layers: int = 2,
        cell_type: str = "lstm",
        bidirectional_encoder: bool = True,
        attention_type: str = "general",
        input_feeding: bool = False,
        peeky: bool = False,
        reverse_source: bool = False,
        dropout: float = 0.1,
        teacher_forcing_ratio: float = 1.0,
        label_smoothing: float = 0.0,
        tie_word_embeddings: bool = False,
        init: str = "scaled_embeddings",
        init_range: float = 0.1,
        pad_token_id: int = 0,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        unk_token_id: int = 3,
        decoder_start_token_id: int | None = None,
        is_encoder_decoder: bool = True,
        use_cache: bool = True,
        **kwargs,
    ):
        _check_int("vocab_size", vocab_size, 1)
        _check_int("embedding_size", embedding_size, 1)
        _check_int("hidden_size", hidden_size, 1)
        _check_int("num_layers", num_layers, 1)
        _check_choice("cell_type", cell_type, CELL_TYPES)
        _check_choice("attention_type", attention_type, ATTENTION_TYPES)
        _check_choice("init", init, INIT_SCHEMES)
        for name, flag in (
            ("bidirectional_encoder", bidirectional_encoder),
            ("input_feeding", input_feeding),
            ("peeky", peeky),
            ("reverse_source", reverse_source),
            ("tie_word_embeddings", tie_word_embeddings),
        ):
            if not isinstance(flag, bool):
                raise ValueError(f"{name}={flag!r} must be True or False")
        if bidirectional_encoder and hidden_size % 2:
            raise ValueError(
                f"hidden_size={hidden_size} must be even with bidirectional_encoder=True: "
                "each direction has hidden_size // 2 units"
            )
        if input_feeding and attention_type == "none":
            raise ValueError(
                "input_feeding=True needs attention: it feeds the attentional hidden state; "
                f"use attention_type in {ATTENTION_TYPES[1:]} or input_feeding=False"
            )
        _check_probability("dropout", dropout)
        _check_probability("teacher_forcing_ratio", teacher_forcing_ratio)
        _check_probability("label_smoothing", label_smoothing)
        if isinstance(init_range, bool) or not isinstance(init_range, (int, float)) or init_range <= 0:
            raise ValueError(f"init_range={init_range!r} must be a positive number")
        decoder_start_token_id = bos_token_id if decoder_start_token_id is None else decoder_start_token_id
        for name, token_id in (
            ("pad_token_id", pad_token_id),
            ("bos_token_id", bos_token_id),
            ("eos_token_id", eos_token_id),
            ("unk_token_id", unk_token_id),
            ("decoder_start_token_id", decoder_start_token_id),
        ):
            if isinstance(token_id, bool) or not isinstance(token_id, int) or not 0 <= token_id < vocab_size:
                raise ValueError(f"{name}={token_id!r} must be an integer in [0, vocab_size={vocab_size})")

        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.cell_type = cell_type
        self.bidirectional_encoder = bidirectional_encoder
        self.attention_type = attention_type
        self.input_feeding = input_feeding
        self.peeky = peeky
        self.reverse_source = reverse_source
        self.dropout = float(dropout)
        self.teacher_forcing_ratio = float(teacher_forcing_ratio)
        self.label_smoothing = float(label_smoothing)
        self.init = init
        self.init_range = float(init_range)
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
    "PIPELINE_TASK",
]

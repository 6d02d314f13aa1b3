"""Training the subword or character tokenizer that sits beside a model.

`train_tokenizer(kind="bpe")`: a BPE model (Sennrich et al., 2016) over Unicode characters, words marked with "▁" as in
SentencePiece, and byte fallback: a character outside the learned alphabet becomes its UTF-8 bytes
(`<0xEA>` ...) instead of `<unk>`. Korean, Chinese and any other script therefore encode without
unknown tokens, and tokens stay readable for attention heatmaps (`▁안녕`, not byte soup).

`train_tokenizer(kind="char")`: one token per character (spaces included), the most frequent
characters of the data, no word marks; byte fallback only with `byte_fallback=True`, otherwise an
unseen character becomes `<unk>`. This is the vocabulary of the textbook's character-level tasks
(addition, date normalisation) and of syllable-level Korean.

`train_tokenizer(kind="morpheme")`: the BPE model above over Korean morphemes. Kiwi (`kiwipiepy`, the
`[ko]` extra; no Java) finds the morphemes of each word, and the subword model learns and applies its
merges inside them only (나는 → ▁나 는, 샀다 → ▁샀 다), as in Park et al. (2020), "An Empirical Study
of Tokenization Strategies for Various Korean NLP Tasks". The pieces are cut from the text as
written, so decoding gives back the original spelling and spacing. The analyzer runs in Python
before the `tokenizers` pipeline (`Seq2SeqRNNMorphemeTokenizer`), imported on first use: the
tokenizer loads without it, and encoding without it says how to install it.

All kinds normalize with NFKC, so composed (NFC) and decomposed (NFD, jamo) Hangul give the same ids.
"""

from __future__ import annotations

import functools
import importlib
import json
import unicodedata
from collections import Counter
from collections.abc import Iterable
from typing import Any

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK]  # ids 0, 1, 2, 3: the defaults of Seq2SeqRNNConfig
BYTE_TOKENS = [f"<0x{byte:02X}>" for byte in range(256)]
WORD_MARK = "▁"
TOKENIZER_KINDS = ("bpe", "char", "morpheme")
# A private-use character put between the morphemes of a word before the subword model; the
# pre-tokenizer splits on it and drops it, so it never becomes (part of) a token.
MORPHEME_MARK = "\ue000"
MISSING_ANALYZER = (
    "the morpheme tokenizer needs the Korean analyzer kiwipiepy: pip install 'hf-seq2seq-rnn[ko]' (or kiwipiepy)"
)


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 8000,
    min_frequency: int = 2,
    limit_alphabet: int = 1000,
    model_max_length: int = 128,
    kind: str = "bpe",
    byte_fallback: bool | None = None,
) -> PreTrainedTokenizerFast:
    """Train a tokenizer on `texts` (source and target sentences together).

    Args:
        texts: the training sentences; any iterable, consumed once.
        vocab_size: the largest size of the vocabulary, special (and byte) tokens included: at least
            261 for "bpe" (4 special + 256 byte tokens + 1), 5 for "char", 261 for "char" with bytes.
        min_frequency: merges ("bpe") or characters ("char") seen fewer times are not learned.
        limit_alphabet: the most frequent characters kept as tokens; rarer ones fall back to bytes ("bpe").
        model_max_length: the longest input, in tokens, the tokenizer's users should feed.
        kind: "bpe" (subwords with word marks), "char" (one token per character) or "morpheme"
            (subwords inside Korean morphemes; needs kiwipiepy).
        byte_fallback: encode unseen characters as their UTF-8 bytes; defaults to True for "bpe"
            and "morpheme" (which require it) and False for "char" (unseen characters become `<unk>`).

    Raises:
        ImportError: for kind="morpheme" without kiwipiepy (one line saying how to install it).

    Returns:
        A `PreTrainedTokenizerFast` (`Seq2SeqRNNMorphemeTokenizer` for "morpheme") with `<pad>`=0, `<s>`=1, `</s>`=2, `<unk>`=3 that appends `</s>`
        to every encoded text; `save_pretrained` writes it for `AutoTokenizer`.
    """
    byte_fallback = _checked_byte_fallback(kind, vocab_size, byte_fallback)
    if kind == "char":
        tokenizer = _char_tokenizer(texts, vocab_size, min_frequency, byte_fallback)
        return _wrap(tokenizer, model_max_length)
    if kind == "morpheme":
        texts = (split_morphemes(text) for text in texts)
    tokenizer = _bpe_tokenizer(texts, vocab_size, min_frequency, limit_alphabet, morphemes=kind == "morpheme")
    return _wrap(tokenizer, model_max_length, Seq2SeqRNNMorphemeTokenizer if kind == "morpheme" else None)


def _checked_byte_fallback(kind: str, vocab_size: int, byte_fallback: bool | None) -> bool:
    """`train_tokenizer`'s `byte_fallback` with its default filled in, after the checks of `kind`,
    `byte_fallback` and `vocab_size` (a `ValueError` naming what is accepted)."""
    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"kind={kind!r} is not supported; accepted values: {', '.join(map(repr, TOKENIZER_KINDS))}")
    if byte_fallback is None:
        byte_fallback = kind != "char"
    if kind != "char" and not byte_fallback:
        raise ValueError(
            "byte_fallback=False is only accepted with kind='char': the BPE tokenizers always have byte fallback"
        )
    minimum = len(SPECIAL_TOKENS) + (len(BYTE_TOKENS) if byte_fallback else 0) + 1
    if vocab_size < minimum:
        what = "special and byte tokens" if byte_fallback else "special tokens"
        raise ValueError(
            f"vocab_size={vocab_size} is too small for the {kind} tokenizer: the {what} alone take {minimum - 1}; "
            f"pass vocab_size >= {minimum}"
        )
    return byte_fallback


def _bpe_tokenizer(
    texts: Iterable[str], vocab_size: int, min_frequency: int, limit_alphabet: int, morphemes: bool
) -> Tokenizer:
    """Byte-fallback BPE with word marks trained on `texts`; with `morphemes`, the texts carry
    `MORPHEME_MARK` between morphemes, which the pre-tokenizer splits on and drops."""
    tokenizer = Tokenizer(models.BPE(unk_token=UNK, byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=WORD_MARK, prepend_scheme="always")
    if morphemes:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [tokenizer.pre_tokenizer, pre_tokenizers.Split(MORPHEME_MARK, behavior="removed")]
        )
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace(WORD_MARK, " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS + BYTE_TOKENS,
        limit_alphabet=limit_alphabet,
        show_progress=False,
    )
    tokenizer.train_from_iterator((text for text in texts if text), trainer=trainer)
    # The trainer reserved ids 4..259 for the byte tokens as "special" tokens; as such, decoding
    # would skip them. Keep them in the vocabulary as ordinary tokens.
    serialized = json.loads(tokenizer.to_str())
    serialized["added_tokens"] = [token for token in serialized["added_tokens"] if token["content"] in SPECIAL_TOKENS]
    return Tokenizer.from_str(json.dumps(serialized))


def _char_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int, byte_fallback: bool) -> Tokenizer:
    """A BPE model without merges over the `vocab_size` most frequent characters: one token per character."""
    counts = Counter()
    for text in texts:
        counts.update(unicodedata.normalize("NFKC", text))
    reserved = SPECIAL_TOKENS + (BYTE_TOKENS if byte_fallback else [])
    characters = [char for char, count in counts.most_common() if count >= min_frequency and char not in reserved]
    tokens = reserved + sorted(characters[: vocab_size - len(reserved)])
    tokenizer = Tokenizer(
        models.BPE(
            vocab={token: index for index, token in enumerate(tokens)},
            merges=[],
            unk_token=UNK,
            byte_fallback=byte_fallback,
            fuse_unk=False,
        )
    )
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return tokenizer


def _wrap(
    tokenizer: Tokenizer, model_max_length: int, wrapper: type[PreTrainedTokenizerFast] | None = None
) -> PreTrainedTokenizerFast:
    """The `transformers` tokenizer around `tokenizer`: appends `</s>`, pads and truncates on the right."""
    eos_id = tokenizer.token_to_id(EOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, eos_id)]
    )
    return (wrapper or PreTrainedTokenizerFast)(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        model_max_length=model_max_length,
        padding_side="right",
        truncation_side="right",
    )


def _is_hangul(char: str) -> bool:
    """Hangul syllables and jamo (the letters of decomposed text) alike."""
    return "\uac00" <= char <= "\ud7a3" or "\u1100" <= char <= "\u11ff" or "\u3130" <= char <= "\u318f"


@functools.lru_cache(maxsize=1)
def _analyzer() -> Any:
    """One Kiwi analyzer per process (loading its model takes seconds), imported on first use."""
    try:  # imported here: the tokenizer loads, saves and decodes without it (and the Hub copy checks imports)
        kiwipiepy = importlib.import_module("kiwipiepy")
    except ImportError as error:
        raise ImportError(MISSING_ANALYZER) from error
    return kiwipiepy.Kiwi()


def split_morphemes(text: str) -> str:
    """`text`, NFKC-normalized, with `MORPHEME_MARK` between the morphemes of each Korean word.

    Kiwi's morphemes are dictionary forms (샀다 → 사 + 었 + 다); the cuts are made at their start
    offsets in the text as written (샀|다), only inside words and next to Hangul, so removing the
    marks gives back the normalized text exactly.
    """
    text = unicodedata.normalize("NFKC", text).replace(MORPHEME_MARK, "")
    if not any(_is_hangul(char) for char in text):
        return text
    pieces, last = [], 0
    for cut in sorted({token.start for token in _analyzer().tokenize(text)}):
        inside_word = last < cut < len(text) and not text[cut - 1].isspace() and not text[cut].isspace()
        if inside_word and (_is_hangul(text[cut - 1]) or _is_hangul(text[cut])):
            pieces.append(text[last:cut])
            last = cut
    pieces.append(text[last:])
    return MORPHEME_MARK.join(pieces)


def _split_inputs(texts: Any) -> Any:
    """`split_morphemes` over a text, a batch of texts, or a batch of text pairs."""
    if isinstance(texts, str):
        return split_morphemes(texts)
    if isinstance(texts, (list, tuple)):
        return type(texts)(_split_inputs(text) for text in texts)
    return texts


class Seq2SeqRNNMorphemeTokenizer(PreTrainedTokenizerFast):
    """The subword tokenizer over Korean morphemes (`train_tokenizer(kind="morpheme")`).

    Its `tokenizer.json` is an ordinary BPE pipeline that splits on `MORPHEME_MARK`; this class puts the
    marks into the text (Kiwi's analysis) before that pipeline runs. Decoding needs no analyzer.
    Saved beside a model, the class's file is copied too, so `AutoTokenizer.from_pretrained(path,
    trust_remote_code=True)` rebuilds it in a process that never imported this package.
    """

    def _encode_plus(self, text: Any, text_pair: Any = None, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("is_split_into_words"):
            text, text_pair = _split_inputs(text), _split_inputs(text_pair)
        return super()._encode_plus(text, text_pair, *args, **kwargs)


def display_tokens(tokenizer: PreTrainedTokenizerFast, token_ids: Iterable[int]) -> list[str]:
    """Readable labels for token ids (attention heatmaps): the word mark shown as a space,
    byte tokens joined back into the characters they spell where they complete one."""
    labels: list[str] = []
    pending: list[int] = []
    for token_id in token_ids:
        token = tokenizer.convert_ids_to_tokens(int(token_id))
        if token in BYTE_TOKENS:
            pending.append(int(token[3:5], 16))
            try:
                labels.append(bytes(pending).decode("utf-8"))
                pending = []
            except UnicodeDecodeError:
                labels.append("·")
            continue
        pending = []
        labels.append(token.replace(WORD_MARK, " ") if token not in SPECIAL_TOKENS else token)
    return labels

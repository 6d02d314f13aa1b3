"""Training the subword or character tokenizer that sits beside a model.

`train_tokenizer(kind="bpe")`: a BPE model (Sennrich et al., 2016) over Unicode characters, words marked with "▁" as in
SentencePiece, and byte fallback: a character outside the learned alphabet becomes its UTF-8 bytes
(`<0xEA>` ...) instead of `<unk>`. Korean, Chinese and any other script therefore encode without
unknown tokens, and tokens stay readable for attention heatmaps (`▁안녕`, not byte soup).

`train_tokenizer(kind="char")`: one token per character (spaces included), the most frequent
characters of the data, no word marks; byte fallback only with `byte_fallback=True`, otherwise an
unseen character becomes `<unk>`. This is the vocabulary of the textbook's character-level tasks
(addition, date normalisation) and of syllable-level Korean.
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK]  # ids 0, 1, 2, 3: the defaults of Seq2SeqRNNConfig
BYTE_TOKENS = [f"<0x{byte:02X}>" for byte in range(256)]
WORD_MARK = "▁"
TOKENIZER_KINDS = ("bpe", "char")


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
        kind: "bpe" (subwords with word marks) or "char" (one token per character).
        byte_fallback: encode unseen characters as their UTF-8 bytes; defaults to True for "bpe"
            (which requires it) and False for "char" (unseen characters become `<unk>`).

    Returns:
        A `PreTrainedTokenizerFast` with `<pad>`=0, `<s>`=1, `</s>`=2, `<unk>`=3 that appends `</s>`
        to every encoded text; `save_pretrained` writes it for `AutoTokenizer`.
    """
    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"kind={kind!r} is not supported; accepted values: {', '.join(map(repr, TOKENIZER_KINDS))}")
    if byte_fallback is None:
        byte_fallback = kind == "bpe"
    if kind == "bpe" and not byte_fallback:
        raise ValueError(
            "byte_fallback=False is only accepted with kind='char': the BPE tokenizer always has byte fallback"
        )
    minimum = len(SPECIAL_TOKENS) + (len(BYTE_TOKENS) if byte_fallback else 0) + 1
    if vocab_size < minimum:
        what = "special and byte tokens" if byte_fallback else "special tokens"
        raise ValueError(
            f"vocab_size={vocab_size} is too small for the {kind} tokenizer: the {what} alone take {minimum - 1}; "
            f"pass vocab_size >= {minimum}"
        )
    if kind == "char":
        tokenizer = _char_tokenizer(texts, vocab_size, min_frequency, byte_fallback)
        return _wrap(tokenizer, model_max_length)
    tokenizer = Tokenizer(models.BPE(unk_token=UNK, byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=WORD_MARK, prepend_scheme="always")
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
    tokenizer = Tokenizer.from_str(json.dumps(serialized))
    return _wrap(tokenizer, model_max_length)


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


def _wrap(tokenizer: Tokenizer, model_max_length: int) -> PreTrainedTokenizerFast:
    """The `transformers` tokenizer around `tokenizer`: appends `</s>`, pads and truncates on the right."""
    eos_id = tokenizer.token_to_id(EOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, eos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        model_max_length=model_max_length,
        padding_side="right",
        truncation_side="right",
    )


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

"""Training the subword tokenizer that sits beside a model.

A BPE model (Sennrich et al., 2016) over Unicode characters, words marked with "▁" as in
SentencePiece, and byte fallback: a character outside the learned alphabet becomes its UTF-8 bytes
(`<0xEA>` ...) instead of `<unk>`. Korean, Chinese and any other script therefore encode without
unknown tokens, and tokens stay readable for attention heatmaps (`▁안녕`, not byte soup).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK]  # ids 0, 1, 2, 3: the defaults of Seq2SeqRNNConfig
BYTE_TOKENS = [f"<0x{byte:02X}>" for byte in range(256)]
WORD_MARK = "▁"


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 8000,
    min_frequency: int = 2,
    limit_alphabet: int = 1000,
    model_max_length: int = 128,
) -> PreTrainedTokenizerFast:
    """Train a byte-fallback BPE tokenizer on `texts` (source and target sentences together).

    Args:
        texts: the training sentences; any iterable, consumed once.
        vocab_size: the size of the vocabulary, special and byte tokens included (at least 300).
        min_frequency: merges seen fewer times are not learned.
        limit_alphabet: the most frequent characters kept as tokens; rarer ones fall back to bytes.
        model_max_length: the longest input, in tokens, the tokenizer's users should feed.

    Returns:
        A `PreTrainedTokenizerFast` with `<pad>`=0, `<s>`=1, `</s>`=2, `<unk>`=3 that appends `</s>`
        to every encoded text; `save_pretrained` writes it for `AutoTokenizer`.
    """
    minimum = len(SPECIAL_TOKENS) + len(BYTE_TOKENS) + 1
    if vocab_size < minimum:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: the special and byte tokens alone take {minimum - 1}; "
            f"pass at least {minimum}"
        )
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

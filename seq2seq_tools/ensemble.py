"""Ensembles loaded from folders or Hub ids: the models of `hf_seq2seq_rnn.ensemble_seq2seq_rnn`,
after a check that their tokenizers agree.

    from seq2seq_tools.ensemble import load_ensemble
    ensemble, tokenizer = load_ensemble(["runs/en-fr-seed1", "runs/en-fr-seed2"])
    ensemble.generate(**tokenizer(["Good morning."], return_tensors="pt"), num_beams=5)

The ensemble itself (`Seq2SeqRNNEnsemble`: the members' log-probabilities averaged at every step)
lives beside the generation code it must match; loading its members and comparing their tokenizers
(token to id and special token ids, `check_same_tokenizer`) is this module's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hf_seq2seq_rnn.ensemble_seq2seq_rnn import Seq2SeqRNNEnsemble

from . import loading

SPECIAL_TOKENS = ("pad_token_id", "bos_token_id", "eos_token_id", "unk_token_id")


def check_same_tokenizer(tokenizers: Sequence[Any], names: Sequence[str]) -> None:
    """Refuse tokenizers that do not map every token to the same id (their vocabularies and special token
    ids, `SPECIAL_TOKENS`).

    Args:
        tokenizers: one per model.
        names: the models' names, for the message.

    Raises:
        ValueError: naming the first model and the first one whose tokenizer differs, and how.
    """
    first = tokenizers[0]
    for tokenizer, name in zip(tokenizers[1:], names[1:], strict=True):
        if tokenizer.get_vocab() != first.get_vocab():
            difference = f"vocabularies of {len(first.get_vocab())} and {len(tokenizer.get_vocab())} tokens"
            if len(first.get_vocab()) == len(tokenizer.get_vocab()):
                difference = f"vocabularies of {len(tokenizer.get_vocab())} tokens that differ"
        else:
            special = [key for key in SPECIAL_TOKENS if getattr(first, key, None) != getattr(tokenizer, key, None)]
            if not special:
                continue
            difference = "special token ids (" + ", ".join(special) + ")"
        raise ValueError(
            f"{names[0]} and {name} have different tokenizers ({difference}); an ensemble averages the "
            "log-probabilities of the same tokens, so its models must share a tokenizer: train the others with "
            f"the first one's (python -m training.train ... --tokenizer {names[0]})"
        )


def ensemble_of(models: Sequence[Any], tokenizers: Sequence[Any], names: Sequence[str]) -> Seq2SeqRNNEnsemble:
    """The ensemble of loaded `models` (in eval mode), after checking that their `tokenizers` agree.

    Raises:
        ValueError: tokenizers or configs that differ, naming both models (by `names`).
    """
    check_same_tokenizer(tokenizers, names)
    return Seq2SeqRNNEnsemble(models).eval()


def load_ensemble(sources: Sequence[str | Path], *, trust_remote_code: bool = False) -> tuple[Seq2SeqRNNEnsemble, Any]:
    """The ensemble of the models at `sources` (folders or Hub ids), in eval mode, and their tokenizer.

    Raises:
        ValueError: tokenizers or configs that differ (naming both models), and what
            `seq2seq_tools.loading.load_model_and_tokenizer` raises.
    """
    names = [str(source) for source in sources]
    loaded = [loading.load_model_and_tokenizer(name, trust_remote_code=trust_remote_code) for name in names]
    tokenizers = [tokenizer for _, tokenizer in loaded]
    return ensemble_of([model for model, _ in loaded], tokenizers, names), tokenizers[0]


__all__ = ["check_same_tokenizer", "ensemble_of", "load_ensemble"]

"""Global attention over the encoder states: one class per `attention_type`, named in `ATTENTION_CLASSES`.

Only the score differs between the types (each class's docstring writes its own); the masked
softmax and the context are shared (`Seq2SeqRNNAttention`). With decoder query `q` and encoder
state `k_j`:

    alignment_j = softmax_j(score(q, k_j)) over real source tokens only; 0 on padding
    context     = sum_j alignment_j k_j

Each class also tells the decoder what it needs: whether its query is the state before the
recurrent step (`query_before_step`) and how wide a context it returns (`context_size`). Adding a
type is one class here, one entry in `ATTENTION_CLASSES`, and its name and meaning in the config's
plain table (`configuration_seq2seq_rnn.ATTENTION_DESCRIPTIONS`, which keeps the config free of
torch); this module refuses to load while the two disagree.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from .configuration_seq2seq_rnn import ATTENTION_TYPES, WITHOUT_CONTEXT, Seq2SeqRNNConfig


class GeneralScoreMatrix(nn.Linear):
    """`W_a` of the general score: a square map without bias. Its own class so that the default
    init can start it at zero, where every score is 0 and the first alignments are uniform."""

    def __init__(self, size: int):
        super().__init__(size, size, bias=False)


class Seq2SeqRNNAttention(nn.Module):
    """The shared part of every attention: the masked softmax over the scores and the context.

    A subclass defines `score`; its class attributes say what the decoder does around it:

    - `query_before_step`: False (Luong et al., 2015, section 3.1) when the query is the current
      decoder state `s_t`, taken after the recurrent step, so the decoder can run all steps in one
      RNN call and attend afterwards; True (Bahdanau et al., 2015, eq. 5–6) when it is the
      previous state `s_{t-1}`: the context `c_t` is then an extra input to the recurrent step, and
      the decoder loops over the steps.
    - `has_context`: whether there is a context at all; `context_size(config)` is its width, which
      the decoder adds to the recurrent input (when `query_before_step`) and to the input of the
      attentional hidden state `h~_t = tanh(W_c [c_t ; s_t])`.
    """

    query_before_step: ClassVar[bool] = False
    has_context: ClassVar[bool] = True

    def __init__(self, config: Seq2SeqRNNConfig):
        super().__init__()

    @classmethod
    def context_size(cls, config: Seq2SeqRNNConfig) -> int:
        """The width of the context: an average of encoder states, `hidden_size`; 0 without one."""
        return config.hidden_size if cls.has_context else 0

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor | None:
        """The part of the score that depends on the keys only, computed once per source (carried in
        the decoder state); `None` when the score has none.

        Args:
            keys (`torch.Tensor` of shape `(batch, src_len, hidden_size)`): the encoder states.
        """
        return None

    def score(self, query: torch.Tensor, keys: torch.Tensor, projected_keys: torch.Tensor | None) -> torch.Tensor:
        """`score(q, k_j)` of every query and key: `(batch, tgt_len, src_len)`."""
        raise NotImplementedError

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        mask: torch.Tensor,
        projected_keys: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """
        Args:
            query (`torch.Tensor` of shape `(batch, tgt_len, hidden_size)`): decoder states.
            keys (`torch.Tensor` of shape `(batch, src_len, hidden_size)`): encoder states.
            mask (`torch.BoolTensor` of shape `(batch, src_len)`): True on real source tokens.
            projected_keys (`torch.Tensor` of shape `(batch, src_len, hidden_size)`, *optional*):
                `project_keys(keys)`; computed here when not given.

        Returns:
            context `(batch, tgt_len, hidden_size)` and alignment `(batch, tgt_len, src_len)`.
        """
        if projected_keys is None:
            projected_keys = self.project_keys(keys)
        scores = self.score(query, keys, projected_keys)  # (B, T, S)
        scores = scores.masked_fill(~mask.unsqueeze(1), torch.finfo(scores.dtype).min)
        alignment = torch.softmax(scores, dim=-1)  # (B, T, S): exp(min - max) is exactly 0 on padding
        context = torch.bmm(alignment, keys)  # (B, T, H)
        return context, alignment


class NoAttention(Seq2SeqRNNAttention):
    """No attention: the fixed context vector of Sutskever et al. (2014) and Cho et al. (2014). The
    decoder's output is its recurrent state, `h~_t = s_t`; `forward` returns `(None, None)`."""

    has_context = False

    def forward(self, *args: torch.Tensor | None, **kwargs: torch.Tensor | None) -> tuple[None, None]:
        """Takes what `Seq2SeqRNNAttention.forward` takes; no context, no alignment."""
        return None, None


class DotAttention(Seq2SeqRNNAttention):
    """`score(q, k_j) = q^T k_j` (Luong et al., 2015, eq. 8), with the current decoder state as `q`."""

    def score(self, query: torch.Tensor, keys: torch.Tensor, projected_keys: torch.Tensor | None) -> torch.Tensor:
        return torch.bmm(query, keys.transpose(1, 2))  # (B, T, S)


class GeneralAttention(Seq2SeqRNNAttention):
    """`score(q, k_j) = q^T W_a k_j` (Luong et al., 2015, eq. 8), with the current decoder state as `q`."""

    def __init__(self, config: Seq2SeqRNNConfig):
        super().__init__(config)
        self.query_projection = GeneralScoreMatrix(config.hidden_size)  # W_a

    def score(self, query: torch.Tensor, keys: torch.Tensor, projected_keys: torch.Tensor | None) -> torch.Tensor:
        return torch.bmm(self.query_projection(query), keys.transpose(1, 2))  # (B, T, S)


class AdditiveAttention(Seq2SeqRNNAttention):
    """`score(q, k_j) = v_a^T tanh(W_a q + U_a k_j)` (Bahdanau et al., 2015, appendix A.1.2), with
    the previous decoder state as `q`; `U_a k_j` is `project_keys`, computed once per source."""

    query_before_step = True

    def __init__(self, config: Seq2SeqRNNConfig):
        super().__init__(config)
        size = config.hidden_size
        self.query_projection = nn.Linear(size, size, bias=False)  # W_a
        self.key_projection = nn.Linear(size, size, bias=True)  # U_a (with the bias of the tanh)
        self.score_vector = nn.Linear(size, 1, bias=False)  # v_a

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        return self.key_projection(keys)  # (B, S, H)

    def score(self, query: torch.Tensor, keys: torch.Tensor, projected_keys: torch.Tensor | None) -> torch.Tensor:
        hidden = torch.tanh(self.query_projection(query).unsqueeze(2) + projected_keys.unsqueeze(1))  # (B, T, S, H)
        return self.score_vector(hidden).squeeze(-1)  # (B, T, S)


# `config.attention_type` -> its class, in the order of the config's table of names.
ATTENTION_CLASSES: dict[str, type[Seq2SeqRNNAttention]] = {
    "none": NoAttention,
    "dot": DotAttention,
    "general": GeneralAttention,
    "additive": AdditiveAttention,
}


def check_registry(classes: dict[str, type[Seq2SeqRNNAttention]]) -> None:
    """Raise `ImportError` unless `classes` names the config's attention types (`ATTENTION_TYPES`), in its
    order, and the types without a context are the config's `WITHOUT_CONTEXT`: a type added on one side
    only would be accepted by the config and fail at model time, or never be offered."""
    without_context = tuple(name for name, kind in classes.items() if not kind.has_context)
    if tuple(classes) != ATTENTION_TYPES or without_context != WITHOUT_CONTEXT:
        raise ImportError(
            f"the attention classes {tuple(classes)} (without a context: {without_context}) differ from the "
            f"config's table, configuration_seq2seq_rnn.ATTENTION_DESCRIPTIONS {ATTENTION_TYPES} (without a "
            f"context: {WITHOUT_CONTEXT}); add the type to both"
        )


check_registry(ATTENTION_CLASSES)

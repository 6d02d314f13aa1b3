"""Global attention over the encoder states: the dot, general and additive scores.

Only the score differs between the variants; the masked softmax and the context are shared.
With decoder query `q` (the current state for Luong, the previous one for Bahdanau) and encoder
state `k_j`:

    dot:      score(q, k_j) = q^T k_j                          (Luong et al., 2015, eq. 8)
    general:  score(q, k_j) = q^T W_a k_j                      (Luong et al., 2015, eq. 8)
    additive: score(q, k_j) = v_a^T tanh(W_a q + U_a k_j)      (Bahdanau et al., 2015, appendix A.1.2)

    alignment_j = softmax_j(score(q, k_j)) over real source tokens only; 0 on padding
    context     = sum_j alignment_j k_j
"""

from __future__ import annotations

import torch
from torch import nn

from .configuration_seq2seq_rnn import Seq2SeqRNNConfig


class GeneralScoreMatrix(nn.Linear):
    """`W_a` of the general score: a square map without bias. Its own class so that the default
    init can start it at zero, where every score is 0 and the first alignments are uniform."""

    def __init__(self, size: int):
        super().__init__(size, size, bias=False)


class Seq2SeqRNNAttention(nn.Module):
    """The attention of `config.attention_type` ("dot", "general" or "additive")."""

    def __init__(self, config: Seq2SeqRNNConfig):
        super().__init__()
        self.attention_type = config.attention_type
        size = config.hidden_size
        if self.attention_type == "general":
            self.query_projection = GeneralScoreMatrix(size)  # W_a
        elif self.attention_type == "additive":
            self.query_projection = nn.Linear(size, size, bias=False)  # W_a
            self.key_projection = nn.Linear(size, size, bias=True)  # U_a (with the bias of the tanh)
            self.score_vector = nn.Linear(size, 1, bias=False)  # v_a

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor | None:
        """`U_a k_j` for the additive score, computed once per source; `None` for the others.

        Args:
            keys (`torch.Tensor` of shape `(batch, src_len, hidden_size)`): the encoder states.
        """
        return self.key_projection(keys) if self.attention_type == "additive" else None

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        mask: torch.Tensor,
        projected_keys: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            query (`torch.Tensor` of shape `(batch, tgt_len, hidden_size)`): decoder states.
            keys (`torch.Tensor` of shape `(batch, src_len, hidden_size)`): encoder states.
            mask (`torch.BoolTensor` of shape `(batch, src_len)`): True on real source tokens.
            projected_keys (`torch.Tensor` of shape `(batch, src_len, hidden_size)`, *optional*):
                `project_keys(keys)`, for the additive score; computed here when not given.

        Returns:
            context `(batch, tgt_len, hidden_size)` and alignment `(batch, tgt_len, src_len)`.
        """
        if self.attention_type == "additive":
            if projected_keys is None:
                projected_keys = self.project_keys(keys)
            hidden = torch.tanh(self.query_projection(query).unsqueeze(2) + projected_keys.unsqueeze(1))
            scores = self.score_vector(hidden).squeeze(-1)  # (B, T, S)
        else:
            if self.attention_type == "general":
                query = self.query_projection(query)
            scores = torch.bmm(query, keys.transpose(1, 2))  # (B, T, S)
        scores = scores.masked_fill(~mask.unsqueeze(1), torch.finfo(scores.dtype).min)
        alignment = torch.softmax(scores, dim=-1)  # (B, T, S): exp(min - max) is exactly 0 on padding
        context = torch.bmm(alignment, keys)  # (B, T, H)
        return context, alignment

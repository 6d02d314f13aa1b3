"""Recurrent layers: the peephole LSTM, and reversing padded sequences.

`nn.LSTM` and `nn.GRU` serve the "lstm" and "gru" cells. The peephole LSTM (Gers & Schmidhuber,
2000; the variant of Graves, 2013, eq. 7–11) lets the input and forget gates read the previous
cell state and the output gate read the new one:

    i_t = σ(W_xi x_t + W_hi h_{t-1} + w_ci ⊙ c_{t-1} + b_i)
    f_t = σ(W_xf x_t + W_hf h_{t-1} + w_cf ⊙ c_{t-1} + b_f)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ tanh(W_xc x_t + W_hc h_{t-1} + b_c)
    o_t = σ(W_xo x_t + W_ho h_{t-1} + w_co ⊙ c_t + b_o)
    h_t = o_t ⊙ tanh(c_t)

`PeepholeLSTM` takes and returns the same tensors as a batch-first `nn.LSTM`, with the lengths of
the rows instead of a packed sequence: a row's state stops changing at its last real token.
"""

from __future__ import annotations

import torch
from torch import nn


class Dropout(nn.Dropout):
    """`nn.Dropout` that draws its mask on the CPU as uniform numbers below `1 - p`.

    The same distribution as `nn.Dropout`'s Bernoulli mask, but torch's CPU `bernoulli_` is several
    times slower than `rand_like(x) < 1 - p` (the commit that made this class gives the figures). Elsewhere (a
    GPU's fused kernel) it is `nn.Dropout` unchanged.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or input.device.type != "cpu":
            return super().forward(input)
        if self.p == 1.0:
            return input * 0.0
        keep = 1.0 - self.p
        # The draw in float32 whatever the input's dtype (a bf16 draw would shift the keep rate).
        mask = torch.rand(input.shape, device=input.device).lt_(keep).div_(keep)
        return input * mask.to(input.dtype)


def reverse_padded(sequences: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse the first `lengths[b]` steps of each row and leave the padding where it is.

    Args:
        sequences (`torch.Tensor` of shape `(batch, time, ...)`): right-padded rows.
        lengths (`torch.LongTensor` of shape `(batch,)`): real steps in each row.

    Returns:
        A tensor of the same shape; applying it twice gives back `sequences`.
    """
    batch, time = sequences.shape[:2]
    steps = torch.arange(time, device=sequences.device).expand(batch, time)  # (B, T)
    lengths = lengths.to(sequences.device).unsqueeze(1)  # (B, 1)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)  # (B, T)
    index = index.view(batch, time, *([1] * (sequences.dim() - 2))).expand_as(sequences)
    return sequences.gather(1, index)


class PeepholeLSTMLayer(nn.Module):
    """One direction of one layer of the peephole LSTM."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size))
        self.weight_peephole = nn.Parameter(torch.empty(3, hidden_size))  # w_ci, w_cf, w_co

    def forward(
        self, inputs: torch.Tensor, mask: torch.Tensor, hidden: torch.Tensor, cell: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the layer left to right.

        Args:
            inputs (`torch.Tensor` of shape `(batch, time, input_size)`)
            mask (`torch.Tensor` of shape `(batch, time, 1)`): 1.0 on real steps, 0.0 on padding.
            hidden, cell (`torch.Tensor` of shape `(batch, hidden_size)`): the initial state.

        Returns:
            outputs `(batch, time, hidden_size)` (zero on padding) and the final hidden and cell.
        """
        projected = nn.functional.linear(inputs, self.weight_ih, self.bias)  # (B, T, 4H)
        peep_input, peep_forget, peep_output = self.weight_peephole
        outputs = []
        for t in range(inputs.shape[1]):
            gates = projected[:, t] + nn.functional.linear(hidden, self.weight_hh)  # (B, 4H)
            gate_input, gate_forget, candidate, gate_output = gates.chunk(4, dim=-1)
            gate_input = torch.sigmoid(gate_input + peep_input * cell)
            gate_forget = torch.sigmoid(gate_forget + peep_forget * cell)
            new_cell = gate_forget * cell + gate_input * torch.tanh(candidate)
            gate_output = torch.sigmoid(gate_output + peep_output * new_cell)
            new_hidden = gate_output * torch.tanh(new_cell)
            keep = mask[:, t]  # (B, 1)
            hidden = torch.lerp(hidden, new_hidden, keep)
            cell = torch.lerp(cell, new_cell, keep)
            outputs.append(new_hidden * keep)
        return torch.stack(outputs, dim=1), hidden, cell


class PeepholeLSTM(nn.Module):
    """A stacked, optionally bidirectional, batch-first peephole LSTM with `nn.LSTM`'s interface."""

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0, bidirectional: bool = False
    ):
        super().__init__()
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_directions = 2 if bidirectional else 1
        self.dropout = Dropout(dropout)
        self.layers = nn.ModuleList(
            PeepholeLSTMLayer(input_size if layer == 0 else hidden_size * self.num_directions, hidden_size)
            for layer in range(num_layers)
            for _ in range(self.num_directions)
        )

    def forward(
        self,
        inputs: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
        lengths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """
        Args:
            inputs (`torch.Tensor` of shape `(batch, time, input_size)`)
            state (`tuple` of two `torch.Tensor` of shape `(num_layers * num_directions, batch, hidden_size)`):
                the initial hidden and cell state, zeros when `None` (layout of `nn.LSTM`).
            lengths (`torch.LongTensor` of shape `(batch,)`): real steps in each row, all when `None`.

        Returns:
            outputs `(batch, time, num_directions * hidden_size)` and the final `(hidden, cell)`.
        """
        batch, time = inputs.shape[:2]
        if lengths is None:
            lengths = torch.full((batch,), time, dtype=torch.long, device=inputs.device)
        mask = (torch.arange(time, device=inputs.device) < lengths.to(inputs.device).unsqueeze(1)).to(inputs.dtype)
        mask = mask.unsqueeze(-1)  # (B, T, 1)
        if state is None:
            zeros = inputs.new_zeros(self.num_layers * self.num_directions, batch, self.hidden_size)
            state = (zeros, zeros)
        final_hidden, final_cell = [], []
        layer_input = inputs
        for layer in range(self.num_layers):
            direction_outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                sequence = layer_input if direction == 0 else reverse_padded(layer_input, lengths)
                outputs, hidden, cell = self.layers[index](sequence, mask, state[0][index], state[1][index])
                direction_outputs.append(outputs if direction == 0 else reverse_padded(outputs, lengths))
                final_hidden.append(hidden)
                final_cell.append(cell)
            layer_input = torch.cat(direction_outputs, dim=-1)  # (B, T, D * H)
            if layer < self.num_layers - 1:
                layer_input = self.dropout(layer_input)
        return layer_input, (torch.stack(final_hidden), torch.stack(final_cell))


def build_rnn(
    cell_type: str, input_size: int, hidden_size: int, num_layers: int, dropout: float, bidirectional: bool
) -> nn.Module:
    """The batch-first recurrent stack for `cell_type` ("lstm", "gru" or "peephole_lstm")."""
    if cell_type == "peephole_lstm":
        return PeepholeLSTM(input_size, hidden_size, num_layers, dropout=dropout, bidirectional=bidirectional)
    rnn_class = nn.LSTM if cell_type == "lstm" else nn.GRU
    return rnn_class(
        input_size,
        hidden_size,
        num_layers=num_layers,
        dropout=dropout if num_layers > 1 else 0.0,
        bidirectional=bidirectional,
        batch_first=True,
    )

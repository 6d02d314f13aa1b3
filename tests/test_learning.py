"""A tiny model of each family learns to reverse short sequences on the CPU."""

from __future__ import annotations

import pytest
import torch

from hf_seq2seq_rnn import Seq2SeqRNNConfig, Seq2SeqRNNForConditionalGeneration

SYMBOLS = 10  # token ids 4..13; 0-3 are <pad>, <s>, </s>, <unk>
EOS = 2


def reversal_batch(generator: torch.Generator, size: int, max_length: int = 6):
    """Sources of 2..max_length symbols (right-padded, ending in </s>) and their reversals as labels."""
    lengths = torch.randint(2, max_length + 1, (size,), generator=generator)
    symbols = torch.randint(4, 4 + SYMBOLS, (size, max_length), generator=generator)
    input_ids = torch.zeros(size, max_length + 1, dtype=torch.long)
    labels = torch.full((size, max_length + 1), -100, dtype=torch.long)
    for row, length in enumerate(lengths.tolist()):
        input_ids[row, :length] = symbols[row, :length]
        input_ids[row, length] = EOS
        labels[row, :length] = symbols[row, :length].flip(0)
        labels[row, length] = EOS
    return input_ids, (input_ids != 0).long(), labels


FAMILIES = {
    "lstm-general-input_feeding": dict(cell_type="lstm", attention_type="general", input_feeding=True),
    "gru-additive": dict(cell_type="gru", attention_type="additive"),
    "peephole_lstm-dot": dict(cell_type="peephole_lstm", attention_type="dot"),
    "lstm-none-peeky": dict(cell_type="lstm", attention_type="none", peeky=True),
    "gru-none-unidirectional": dict(cell_type="gru", attention_type="none", bidirectional_encoder=False),
}


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES.values(), ids=FAMILIES.keys())
def test_learns_to_reverse(family):
    torch.manual_seed(0)
    config = Seq2SeqRNNConfig(
        vocab_size=4 + SYMBOLS, embedding_size=32, hidden_size=64, num_layers=1, dropout=0.0, **family
    )
    model = Seq2SeqRNNForConditionalGeneration(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    # Decayed to 0: at a constant 1e-2 the context-vector GRU ended between 83% and 95% over seeds 0-3
    # under every init; with the decay, 96% or more (uniform and scaled_embeddings, seeds 0-3).
    steps = 600
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    generator = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(steps):
        input_ids, attention_mask, labels = reversal_batch(generator, 64)
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    model.eval()
    input_ids, attention_mask, labels = reversal_batch(torch.Generator().manual_seed(99), 200)
    generated = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=8, do_sample=False)
    correct = 0
    for row in range(200):
        target = labels[row][labels[row] != -100].tolist()
        correct += generated[row, 1 : 1 + len(target)].tolist() == target
    assert correct / 200 >= 0.95, f"exact match {correct / 200:.2%} (final training loss {loss.item():.3f})"

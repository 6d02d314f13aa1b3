"""`python -m training.train` with a record of what each process trained on, for the DDP test.

    accelerate launch --num_processes 2 tests/ddp_probe.py RECORD_DIR TRAIN_FLAGS...

Runs the real training script's `main` unchanged. The only addition: the model's forward also
notes each training batch's source rows, and at the end every process writes its own copy of the
weights and the rows it trained on to `RECORD_DIR/rank-N.pt`.
"""

from __future__ import annotations

import os
import sys

import torch

from hf_seq2seq_rnn import Seq2SeqRNNForConditionalGeneration
from training.train import main


def run(record_dir: str, arguments: list[str]) -> int:
    seen: list[list[int]] = []
    models: list[torch.nn.Module] = []
    forward = Seq2SeqRNNForConditionalGeneration.forward

    def recording_forward(self, input_ids=None, attention_mask=None, *args, labels=None, **kwargs):
        if self.training and labels is not None:
            models[:] = [self]
            for row, mask in zip(input_ids.tolist(), attention_mask.tolist(), strict=True):
                seen.append([token for token, real in zip(row, mask, strict=True) if real])
        return forward(self, input_ids, attention_mask, *args, labels=labels, **kwargs)

    Seq2SeqRNNForConditionalGeneration.forward = recording_forward
    code = main(arguments)
    rank = int(os.environ.get("RANK", "0"))
    weights = {name: tensor.detach().clone() for name, tensor in models[0].state_dict().items()}
    torch.save({"weights": weights, "seen": seen}, os.path.join(record_dir, f"rank-{rank}.pt"))
    return code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2:]))

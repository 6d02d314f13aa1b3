"""The loss of the language model: the mean token cross-entropy over the vocabulary.

`language_model_loss` is the one the model's `forward` returns; `uses_chunked_loss` chooses how it
is computed. At a vocabulary of 8,000 and a batch of 64 x 50 target tokens the logits alone hold
100 M floats; `chunked_linear_cross_entropy` computes the same loss and gradients while only
`chunk` rows of logits exist at once. A flat sibling of the modeling file, which imports it, so
`save_pretrained` copies it beside the weights.
"""

from __future__ import annotations

import torch
from torch import nn

# Target tokens whose logits exist at once in the training loss: (LOSS_CHUNK_TOKENS, vocab_size).
LOSS_CHUNK_TOKENS = 1024

# Below this many logits in a batch (4 MB in fp32) the training loss takes the plain path: the
# saving is nil there, and small models keep the exact arithmetic of `cross_entropy`'s backward.
CHUNKED_LOSS_MIN_LOGITS = 2**20


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    """The mean cross-entropy of `features @ W^T + b` against `labels` (-100 ignored, optional label
    smoothing as in `nn.functional.cross_entropy`), `chunk` tokens at a time.

    Each chunk's gradient is made in the forward pass, where its softmax is at hand:
    `d loss / d logits = softmax - ((1 - eps) onehot + eps / V)` over the real tokens, divided by
    their count; it is multiplied into the gradients of the features, weight and bias and dropped.
    So no `(tokens, vocab)` tensor outlives its chunk, and the matrix products are the same three
    as in the unchunked forward and backward.
    """

    @staticmethod
    def forward(ctx, features, weight, bias, labels, label_smoothing, chunk):  # noqa: D102
        vocab = weight.shape[0]
        # Only the real tokens' rows go through the output layer: padding has no loss and no gradient.
        real = (labels != -100).nonzero().squeeze(1)  # (n_real,)
        real_features, real_labels = features.index_select(0, real), labels.index_select(0, real)
        count = max(real.numel(), 1)
        grad_real = torch.empty_like(real_features)
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        grad_bias = None if bias is None else torch.zeros(vocab, dtype=torch.float32, device=weight.device)
        total = torch.zeros((), dtype=torch.float32, device=features.device)
        for start in range(0, real.numel(), chunk):
            rows = real_features[start : start + chunk]  # (n, F)
            target = real_labels[start : start + chunk].unsqueeze(1)  # (n, 1)
            log_probs = nn.functional.linear(rows, weight, bias).float().log_softmax(-1)  # (n, V)
            token_loss = -(1 - label_smoothing) * log_probs.gather(1, target) - label_smoothing * log_probs.mean(
                -1, keepdim=True
            )  # (n, 1)
            total += token_loss.sum()
            grad = log_probs.exp_()  # softmax, in place: (n, V)
            grad.scatter_add_(1, target, torch.full_like(target, -(1 - label_smoothing), dtype=grad.dtype))
            if label_smoothing:
                grad -= label_smoothing / vocab
            grad /= count
            grad = grad.to(rows.dtype)
            grad_real[start : start + chunk] = grad @ weight.to(rows.dtype)  # (n, F)
            grad_weight += (grad.t() @ rows).float()  # (V, F)
            if grad_bias is not None:
                grad_bias += grad.sum(0).float()
        grad_features = torch.zeros_like(features).index_copy_(0, real, grad_real)
        ctx.save_for_backward(grad_features, grad_weight, grad_bias)
        ctx.weight_dtype = weight.dtype
        return total / count

    @staticmethod
    def backward(ctx, grad_output):  # noqa: D102
        grad_features, grad_weight, grad_bias = ctx.saved_tensors
        grad_output = grad_output.float()
        return (
            grad_features * grad_output.to(grad_features.dtype),
            (grad_weight * grad_output).to(ctx.weight_dtype),
            None if grad_bias is None else (grad_bias * grad_output).to(ctx.weight_dtype),
            None,
            None,
            None,
        )


def chunked_linear_cross_entropy(
    features: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    labels: torch.Tensor,
    label_smoothing: float = 0.0,
    chunk: int | None = None,
) -> torch.Tensor:
    """`cross_entropy(linear(features, weight, bias), labels, ignore_index=-100, label_smoothing=...)`
    with at most `chunk` rows of logits at a time, forward and backward.

    Args:
        features (`torch.FloatTensor` of shape `(tokens, feature_size)`): the output layer's input.
        weight (`torch.FloatTensor` of shape `(vocab_size, feature_size)`), bias (`(vocab_size,)` or `None`).
        labels (`torch.LongTensor` of shape `(tokens,)`): target ids, -100 where ignored.
        chunk (`int`, *optional*): rows of logits at a time; `LOSS_CHUNK_TOKENS` by default.
    """
    chunk = LOSS_CHUNK_TOKENS if chunk is None else chunk
    return _ChunkedLinearCrossEntropy.apply(features, weight, bias, labels, float(label_smoothing), chunk)


def uses_chunked_loss(features: torch.Tensor, vocab_size: int, labels: torch.Tensor | None, training: bool) -> bool:
    """Whether the loss is computed a chunk of tokens at a time, so that the whole logits never exist:
    in training, with labels and gradients, once the batch has `CHUNKED_LOSS_MIN_LOGITS` logits or more.

    Args:
        features (`torch.FloatTensor` of shape `(batch, tgt_len, feature_size)`): the output layer's input.
    """
    if labels is None or not training or not torch.is_grad_enabled():
        return False
    return features.shape[0] * features.shape[1] * vocab_size >= CHUNKED_LOSS_MIN_LOGITS


def language_model_loss(
    labels: torch.Tensor,
    label_smoothing: float,
    logits: torch.Tensor | None,
    features: torch.Tensor,
    output_layer: nn.Linear,
) -> torch.Tensor:
    """The mean token cross-entropy against `labels` (-100 ignored), with `label_smoothing`: of
    `logits` when given, else of `output_layer(features)` a chunk at a time (`uses_chunked_loss`).

    Args:
        labels (`torch.LongTensor` of shape `(batch, tgt_len)`): target ids, -100 where ignored.
        logits (`torch.FloatTensor` of shape `(batch, tgt_len, vocab_size)`, *optional*).
        features (`torch.FloatTensor` of shape `(batch, tgt_len, feature_size)`): the output layer's input.
        output_layer (`nn.Linear`): features -> logits.
    """
    if logits is None:
        return chunked_linear_cross_entropy(
            features.reshape(-1, features.shape[-1]),  # (B * T, F)
            output_layer.weight,
            output_layer.bias,
            labels.reshape(-1).to(features.device),
            label_smoothing,
        )
    return nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),  # (B * T, V)
        labels.reshape(-1).to(logits.device),
        ignore_index=-100,
        label_smoothing=label_smoothing,
    )

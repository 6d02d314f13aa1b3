"""int8 weights for decoding on a CPU: dynamic quantization of the recurrent and linear layers.

    from seq2seq_tools.quantization import quantize_int8
    model = quantize_int8(model.eval())

`torch.ao.quantization.quantize_dynamic` stores the weights of every `nn.LSTM`, `nn.GRU` and
`nn.Linear` as int8 and quantizes each activation on the fly, per call (no calibration data). It
is what runs the recurrent layers in int8 on this torch: torchao's `quantize_`, which torch's
deprecation warning points to, replaces only `nn.Linear` weights, so the LSTM or GRU, most of a
decoding step's work, would stay in fp32. The peephole LSTM's layers hold raw parameters rather
than `nn.Linear` modules and stay fp32 (its attention and output layers are still quantized).
The embeddings stay fp32 too (a lookup, no product to speed up).
"""

from __future__ import annotations

import warnings

import torch

QUANTIZE_CHOICES = ("none", "int8")
QUANTIZED_LAYERS = {torch.nn.LSTM, torch.nn.GRU, torch.nn.Linear}


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` (in eval mode) with int8 weights in its LSTM, GRU and Linear layers.

    Only for inference on a CPU: the quantized layers have no backward pass and no GPU kernels.

    Raises:
        ValueError: for a model on another device than the CPU.
    """
    device = next(model.parameters()).device
    if device.type != "cpu":
        raise ValueError(f"int8 dynamic quantization runs on the CPU; the model is on {device}")
    with warnings.catch_warnings():
        # The module is deprecated in favour of torchao, which cannot quantize recurrent layers (above).
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao\.quantization")
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions.*")
        return torch.ao.quantization.quantize_dynamic(model.eval(), QUANTIZED_LAYERS, dtype=torch.qint8, inplace=False)


def maybe_quantize(model: torch.nn.Module, quantize: str | None) -> torch.nn.Module:
    """`model` as asked: unchanged for `None` or "none", int8 for "int8".

    Raises:
        ValueError: for any other value, naming the accepted ones.
    """
    check_quantize(quantize)
    return quantize_int8(model) if quantize == "int8" else model


def check_quantize(quantize: str | None) -> None:
    """Refuse, before a model is loaded, what `maybe_quantize` would refuse.

    Raises:
        ValueError: for any other value than `None`, "none" or "int8", naming the accepted ones.
    """
    if quantize not in (None, *QUANTIZE_CHOICES):
        raise ValueError(f"quantize={quantize!r}; accepted values: {', '.join(QUANTIZE_CHOICES)}")


__all__ = ["QUANTIZE_CHOICES", "check_quantize", "maybe_quantize", "quantize_int8"]

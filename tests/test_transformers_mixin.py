"""transformers' own `ModelTesterMixin`, run against our classes when its source is at hand.

The wheel does not ship transformers' `tests/` folder, so this file uses a copy outside the
repository (nothing is vendored) and skips, saying why, without one. To run it:

    pip download "transformers==$(python -c 'import transformers; print(transformers.__version__)')" \
        --no-binary :all: --no-deps -d /tmp/tf && tar xzf /tmp/tf/transformers-*.tar.gz -C /tmp/tf
    pip install parameterized
    TRANSFORMERS_TESTS_DIR=/tmp/tf/transformers-<version>/tests python -m pytest tests/test_transformers_mixin.py

The source distribution lacks `tests/exporters` and `tests/generation`; their two mixins are then
empty stand-ins, and `test_generation_tester_mixin_inheritance` (which asks the test class to
inherit the real `GenerationTesterMixin`) is skipped, saying why. `tests/test_model.py` and
`tests/test_hf_conventions.py` check generation and the output conventions without the source.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
import unittest
from pathlib import Path

import torch
from conftest import skip_or_fail_in_ci
from transformers.models.auto import modeling_auto

from hf_seq2seq_rnn import Seq2SeqRNNConfig, Seq2SeqRNNForConditionalGeneration, Seq2SeqRNNModel

TESTS_DIR = os.environ.get("TRANSFORMERS_TESTS_DIR")
PACKAGE = "transformers_source_tests"


def _import_model_tester_mixin(tests_dir: Path) -> types.ModuleType:
    """transformers' `tests/test_modeling_common.py` as a module of a package named `PACKAGE`."""
    package = types.ModuleType(PACKAGE)
    package.__path__ = [str(tests_dir)]
    sys.modules[PACKAGE] = package
    stand_ins = {"exporters.test_export": "ExportTesterMixin", "generation.test_utils": "GenerationTesterMixin"}
    for module_name, class_name in stand_ins.items():
        if not (tests_dir / (module_name.replace(".", "/") + ".py")).is_file():  # absent from the sdist
            for prefix in (module_name.split(".")[0], module_name):
                sys.modules.setdefault(f"{PACKAGE}.{prefix}", types.ModuleType(f"{PACKAGE}.{prefix}"))
            setattr(sys.modules[f"{PACKAGE}.{module_name}"], class_name, type(class_name, (), {}))
    spec = importlib.util.spec_from_file_location(
        f"{PACKAGE}.test_modeling_common", tests_dir / "test_modeling_common.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


if not TESTS_DIR:
    skip_or_fail_in_ci(
        "mixin",
        "set TRANSFORMERS_TESTS_DIR to a transformers source tests/ folder (see the module docstring)",
        module_level=True,
    )
try:
    import parameterized  # noqa: F401 - transformers' test_modeling_common imports it
except ImportError:
    skip_or_fail_in_ci("mixin", "transformers' test suite needs the parameterized package", module_level=True)
common = _import_model_tester_mixin(Path(TESTS_DIR))
# What a model inside transformers has: its class names in the auto mappings the mixin reads.
modeling_auto.MODEL_MAPPING_NAMES.setdefault("seq2seq_rnn", "Seq2SeqRNNModel")
modeling_auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES.setdefault(
    "seq2seq_rnn", "Seq2SeqRNNForConditionalGeneration"
)


class Seq2SeqRNNModelTester:
    """Small configs and inputs in the shape `ModelTesterMixin` asks its testers for."""

    def __init__(self, parent, batch_size: int = 3, seq_length: int = 7, vocab_size: int = 50, hidden_size: int = 16):
        self.parent = parent
        self.batch_size, self.vocab_size, self.hidden_size = batch_size, vocab_size, hidden_size
        # Labels come in the source's length, so source and target are equally long here.
        self.seq_length = self.encoder_seq_length = self.decoder_seq_length = seq_length
        self.num_hidden_layers = 2
        self.expected_num_hidden_layers = 2  # the embedding output and the top recurrent layer
        self.is_training = True

    def get_config(self) -> Seq2SeqRNNConfig:
        size = self.hidden_size
        return Seq2SeqRNNConfig(
            vocab_size=self.vocab_size, embedding_size=size, hidden_size=size, num_layers=self.num_hidden_layers
        )

    def prepare_config_and_inputs_for_common(self) -> tuple[Seq2SeqRNNConfig, dict[str, torch.Tensor]]:
        input_ids = common.ids_tensor([self.batch_size, self.seq_length], self.vocab_size - 4) + 4
        decoder_input_ids = common.ids_tensor([self.batch_size, self.decoder_seq_length], self.vocab_size - 4) + 4
        inputs = {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "decoder_input_ids": decoder_input_ids,
        }
        return self.get_config(), inputs


class Seq2SeqRNNModelTest(common.ModelTesterMixin, unittest.TestCase):
    all_model_classes = (Seq2SeqRNNModel, Seq2SeqRNNForConditionalGeneration)
    is_encoder_decoder = True
    has_attentions = False  # cross-attention only; no self-attention weights to return
    test_resize_embeddings = False  # separate encoder and decoder embeddings
    test_missing_keys = False

    def setUp(self):
        self.model_tester = Seq2SeqRNNModelTester(self)

    def test_generation_tester_mixin_inheritance(self):
        self.skipTest(
            "GenerationTesterMixin is not run here (the source distribution lacks it); "
            "tests/test_model.py checks generation: cached == uncached, beam scores, padding"
        )

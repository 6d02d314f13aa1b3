"""Shared test settings.

One torch thread: the test models are tiny, and on a 2-core machine two threads per process slow
down several-fold as soon as anything else runs.
"""

import os
import socket

import pytest
import torch

from hf_seq2seq_rnn import Seq2SeqRNNConfig, Seq2SeqRNNForConditionalGeneration
from hf_seq2seq_rnn.tokenization_seq2seq_rnn import train_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(1)


# Marks of transformers' own test suite, which tests/test_transformers_mixin.py runs when
# TRANSFORMERS_TESTS_DIR points at it (the project's runs use --strict-markers).
TRANSFORMERS_MARKS = (
    "accelerate_tests",
    "flash_attn_test",
    "flash_attn_3_test",
    "flash_attn_4_test",
    "torch_compile_test",
    "torch_export_test",
    "is_training_test",
    "is_tensor_parallel_test",
    "is_expert_parallel_test",
    "is_fsdp_test",
    "is_pipeline_test",
    "is_staging_test",
    "is_agent_test",
    "order",
)


def pytest_configure(config):
    for name in TRANSFORMERS_MARKS:
        config.addinivalue_line("markers", f"{name}: a mark of transformers' own test suite")


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """Each in-process training run starts from a clean Accelerate state, as a new process would
    (runs here use different precisions; Accelerate's own `AccelerateTestCase` resets the same way).
    Reset before the test too: a module-scoped fixture may have trained in-process."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def scramble_general_score(model: torch.nn.Module, seed: int = 0, std: float = 30.0) -> torch.nn.Module:
    """Draw the general score's `W_a` at random (in place) and return the model.

    The default init starts `W_a` at zero, where every score is 0 and every alignment is uniform:
    an equivalence test (parallel vs step loop, cached vs uncached, batch vs single, beam scores)
    on such a model cannot see a bug in the general query path. Models without a general score
    are returned unchanged.
    """
    from hf_seq2seq_rnn.attention_seq2seq_rnn import GeneralScoreMatrix

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, GeneralScoreMatrix):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * std)
    return model


def skip_or_fail_in_ci(group: str, reason: str, module_level: bool = False) -> None:
    """Skip a test whose tool (browser, allocator, transformers' test sources) is missing,
    except in CI: with `CI` set, a missing tool fails the test, unless `SEQ2SEQ_RNN_CI_SKIP` (a
    comma-separated list that .ci/run sets) names `group` as deliberately left out. So a CI
    machine that could not install a tool goes red instead of green with a group silently gone.

    Groups: "browser" (chromium, playwright), "allocator" (tcmalloc), "mixin" (transformers' test
    sources in TRANSFORMERS_TESTS_DIR)."""
    left_out = {name.strip() for name in os.environ.get("SEQ2SEQ_RNN_CI_SKIP", "").split(",") if name.strip()}
    if os.environ.get("CI") and group not in left_out:
        pytest.fail(
            f"{reason}; CI must run the {group!r} tests (or list {group!r} in SEQ2SEQ_RNN_CI_SKIP "
            "to leave them out on purpose)",
            pytrace=False,
        )
    pytest.skip(reason, allow_module_level=module_level)


# Twelve words in every rotation: enough text for a 320-token vocabulary, and outputs that differ
# from input to input even untrained.
TINY_WORDS = ["red", "cat", "dog", "sun", "moon", "water", "fire", "earth", "wind", "the", "and", "over"]
TINY_TEXTS = [" ".join(TINY_WORDS[i:] + TINY_WORDS[:i]) for i in range(len(TINY_WORDS))] * 10


def tiny_model(texts=TINY_TEXTS, *, vocab_size: int = 320, seed: int = 0, **settings):
    """(an untrained model in eval mode, its tokenizer trained on `texts`): the tests' one tiny-model
    factory. `settings` are `Seq2SeqRNNConfig` arguments; the sizes default to 16 wide."""
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
    torch.manual_seed(seed)
    config = Seq2SeqRNNConfig(
        **{"embedding_size": 16, "hidden_size": 16, **settings},
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        unk_token_id=tokenizer.unk_token_id,
    )
    return Seq2SeqRNNForConditionalGeneration(config).eval(), tokenizer


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the operating system picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# A tiny run of the training command on the embedded demo: a checkpoint every 2 steps, no evaluation
# in between, fp32 (tests pin the precision; only the probe's tests leave it to `auto`).
TINY_RUN = [
    "--config", "training/configs/translation_demo.yaml", "--demo-size", "200", "--validation-size", "20",
    "--embedding-size", "16", "--hidden-size", "16", "--num-layers", "1", "--num-beams", "1",
    "--max-eval-samples", "8", "--num-samples", "0", "--report-to", "none", "--num-threads", "1",
    "--checkpointing-steps", "2", "--eval-steps", "null", "--mixed-precision", "no",
]  # fmt: skip

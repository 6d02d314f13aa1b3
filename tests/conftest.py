"""Shared test settings.

One torch thread: the test models are tiny, and on a 2-core machine two threads per process slow
down several-fold as soon as anything else runs.
"""

import os

import pytest
import torch

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

"""Shared test settings.

One torch thread: the test models are tiny, and on a 2-core machine two threads per process slow
down several-fold as soon as anything else runs (see ../shared/FACTS.md).
"""

import os

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(1)

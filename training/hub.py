"""`--push-to-hub`: the final model folder to the Hugging Face Hub."""

from __future__ import annotations

import logging
import os

from .errors import TrainingInputError

logger = logging.getLogger(__name__)
# What stays local: the training state, TensorBoard logs and the heatmap image.
NOT_UPLOADED = ["checkpoints/*", "logs/*", "*.png"]


def push_to_hub(output_dir: str, hub_model_id: str | None) -> str:
    """Upload the model folder (not its checkpoints or logs) as `hub_model_id`, or as the folder's
    name; returns the repository id. Any failure is a `TrainingInputError`: the model stays saved."""
    from huggingface_hub import HfApi

    repo_id = hub_model_id or os.path.basename(os.path.abspath(output_dir))
    try:
        api = HfApi()
        api.create_repo(repo_id, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=output_dir, ignore_patterns=NOT_UPLOADED)
    except Exception as error:  # network, authentication and permission errors alike
        raise TrainingInputError(
            f"could not push to the Hub as {repo_id!r} ({error}); the model is saved in {output_dir}"
        ) from error
    logger.info(f"pushed to https://huggingface.co/{repo_id}")
    return repo_id

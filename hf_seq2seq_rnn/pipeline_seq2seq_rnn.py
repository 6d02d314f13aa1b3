"""The "seq2seq-rnn" pipeline: text in, generated text out.

transformers 5 removed the "translation" and "text2text-generation" pipelines; this one does
their job for any model of this project, for translation and chat alike:

    pipe = pipeline("seq2seq-rnn", model="my-model", trust_remote_code=True)
    pipe("How are you?", num_beams=5)   # [{"generated_text": "..."}]

A saved model directory carries this file and names it in `config.json` (`custom_pipelines`),
so the call works in a process that never imported `hf_seq2seq_rnn`.
"""

from __future__ import annotations

from typing import Any

from transformers import Pipeline

from .configuration_seq2seq_rnn import PIPELINE_TASK


class Seq2SeqRNNPipeline(Pipeline):
    """Generates a target text for each source text with the model's `generate()`.

    Call arguments: any `generate()` setting (`num_beams`, `do_sample`, `max_new_tokens`,
    `num_return_sequences`, ...), `truncation` (default True: sources longer than the
    tokenizer's `model_max_length` are cut) and `return_tensors` (token ids instead of text).
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def _sanitize_parameters(
        self, truncation: bool | None = None, return_tensors: bool | None = None, **generate_kwargs
    ):
        preprocess = {} if truncation is None else {"truncation": truncation}
        postprocess = {} if return_tensors is None else {"return_tensors": return_tensors}
        return preprocess, generate_kwargs, postprocess

    def preprocess(self, text: str, truncation: bool = True) -> dict[str, Any]:
        if not isinstance(text, str):
            raise ValueError(
                f"{PIPELINE_TASK} pipeline inputs are strings (or a list of strings), got {type(text).__name__}"
            )
        return self.tokenizer(text, truncation=truncation, return_tensors="pt")

    def _forward(self, model_inputs: dict[str, Any], **generate_kwargs) -> dict[str, Any]:
        sequences = self.model.generate(**model_inputs, **generate_kwargs)  # (num_return_sequences, T)
        return {"output_ids": sequences}

    def postprocess(self, model_outputs: dict[str, Any], return_tensors: bool = False) -> list[dict[str, Any]]:
        if return_tensors:
            return [{"generated_token_ids": ids} for ids in model_outputs["output_ids"]]
        return [
            {"generated_text": self.tokenizer.decode(ids, skip_special_tokens=True)}
            for ids in model_outputs["output_ids"]
        ]

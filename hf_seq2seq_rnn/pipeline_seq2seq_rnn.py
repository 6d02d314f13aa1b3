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
        sequences = self.model.generate(**model_inputs, **generate_kwargs)  # (B * num_return_sequences, T)
        batch = model_inputs["input_ids"].shape[0]
        # (B, num_return_sequences, T): with `batch_size` > 1 the pipeline splits the output along
        # its first axis, one source's sequences to each, as transformers' own text2text pipeline did.
        return {"output_ids": sequences.reshape(batch, sequences.shape[0] // batch, *sequences.shape[1:])}

    def postprocess(self, model_outputs: dict[str, Any], return_tensors: bool = False) -> list[dict[str, Any]]:
        [sequences] = model_outputs["output_ids"]  # (num_return_sequences, T): one source's
        if return_tensors:
            return [{"generated_token_ids": ids} for ids in sequences]
        return [{"generated_text": self.tokenizer.decode(ids, skip_special_tokens=True)} for ids in sequences]

"""Exact match after SQuAD's answer normalization (Rajpurkar et al., 2016), as an `evaluate` module.

Normalization: lowercase, drop punctuation and the articles a/an/the, collapse whitespace.
"""

import re
import string

import datasets
import evaluate

_DESCRIPTION = "Percentage of predictions equal to their reference after SQuAD normalization."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`), references (`list[str]`): one reference per prediction.
Returns:
    exact_match (`float`, 0-100).
"""
_CITATION = "Rajpurkar et al., SQuAD: 100,000+ Questions for Machine Comprehension of Text, EMNLP 2016."


def normalize_answer(text: str) -> str:
    text = "".join(character for character in text.lower() if character not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ExactMatch(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        matches = [normalize_answer(p) == normalize_answer(r) for p, r in zip(predictions, references, strict=True)]
        return {"exact_match": 100.0 * sum(matches) / max(len(matches), 1)}

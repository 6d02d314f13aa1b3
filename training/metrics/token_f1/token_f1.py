"""Token-overlap F1 between prediction and reference, SQuAD's answer metric, as an `evaluate` module.

Both sides are normalized as in SQuAD (lowercase, no punctuation, no articles) and split on spaces;
F1 is the harmonic mean of the precision and recall of the shared tokens (a multiset), averaged
over pairs (Rajpurkar et al., 2016).
"""

import collections
import re
import string

import datasets
import evaluate

_DESCRIPTION = "Mean token-overlap F1 after SQuAD normalization."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`), references (`list[str]`): one reference per prediction.
Returns:
    f1 (`float`, 0-100).
"""
_CITATION = "Rajpurkar et al., SQuAD: 100,000+ Questions for Machine Comprehension of Text, EMNLP 2016."


def normalized_tokens(text: str) -> list[str]:
    text = "".join(character for character in text.lower() if character not in set(string.punctuation))
    return re.sub(r"\b(a|an|the)\b", " ", text).split()


def pair_f1(prediction: str, reference: str) -> float:
    predicted, expected = normalized_tokens(prediction), normalized_tokens(reference)
    if not predicted or not expected:
        return float(predicted == expected)
    shared = sum((collections.Counter(predicted) & collections.Counter(expected)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(predicted), shared / len(expected)
    return 2 * precision * recall / (precision + recall)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TokenF1(evaluate.Metric):
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
        scores = [pair_f1(p, r) for p, r in zip(predictions, references, strict=True)]
        return {"f1": 100.0 * sum(scores) / max(len(scores), 1)}

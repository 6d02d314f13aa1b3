"""chrF (Popović, 2015) as sacrebleu computes it, as an `evaluate` module shipped with the project."""

import datasets
import evaluate
import sacrebleu

_CITATION = """\
@inproceedings{popovic-2015-chrf,
  title = "chr{F}: character n-gram F-score for automatic {MT} evaluation",
  author = "Popovi{\\'c}, Maja",
  booktitle = "Proceedings of the Tenth Workshop on Statistical Machine Translation",
  year = "2015",
}
"""
_DESCRIPTION = "Corpus-level chrF (character 6-grams, beta 2) through sacrebleu; word_order=2 gives chrF++."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): the system outputs.
    references (`list[str]`): one reference per prediction.
    word_order (`int`, defaults to 0): word n-gram order (2 for chrF++).
Returns:
    score (`float`, 0-100), signature.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Chrf(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, word_order=0):
        metric = sacrebleu.CHRF(word_order=word_order)
        result = metric.corpus_score(predictions, [references])
        return {"score": result.score, "signature": str(metric.get_signature())}

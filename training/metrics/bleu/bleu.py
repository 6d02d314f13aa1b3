"""Corpus BLEU (Papineni et al., 2002) as sacrebleu computes it (Post, 2018), as an `evaluate` module.

Shipped with the project so that `evaluate.load("training/metrics/bleu")` works offline; the Hub's
`sacrebleu` module computes the same numbers with the same defaults (13a tokenization, cased).
"""

import datasets
import evaluate
import sacrebleu

_CITATION = """\
@inproceedings{post-2018-call,
  title = "A Call for Clarity in Reporting {BLEU} Scores",
  author = "Post, Matt",
  booktitle = "Proceedings of the Third Conference on Machine Translation",
  year = "2018",
}
"""
_DESCRIPTION = "Corpus-level BLEU through sacrebleu, detokenized input, one reference per prediction."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): the system outputs, detokenized.
    references (`list[str]`): one reference per prediction.
    tokenize (`str`, defaults to "13a"): sacrebleu's tokenizer ("13a", "intl", "char", "ko-mecab", ...).
    lowercase (`bool`, defaults to False): compare lowercased.
Returns:
    score (`float`, 0-100), precisions, brevity_penalty, sys_len, ref_len, signature.
Example:
    >>> bleu = evaluate.load("training/metrics/bleu")
    >>> bleu.compute(predictions=["the cat sat"], references=["the cat sat"])["score"]
    100.00000000000004
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Bleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            reference_urls=["https://github.com/mjpost/sacrebleu"],
        )

    def _compute(self, predictions, references, tokenize="13a", lowercase=False):
        metric = sacrebleu.BLEU(tokenize=tokenize, lowercase=lowercase)
        result = metric.corpus_score(predictions, [references])
        return {
            "score": result.score,
            "precisions": result.precisions,
            "brevity_penalty": result.bp,
            "sys_len": result.sys_len,
            "ref_len": result.ref_len,
            "signature": str(metric.get_signature()),
        }

"""The evaluation's metric modules (`training/metrics/*`, loaded by `evaluate.load` as training
loads them) against sacrebleu and against exact match and token F1 worked out by hand."""

from __future__ import annotations

import pytest
import sacrebleu

from training.evaluation import load_metrics

PREDICTIONS = ["the cat sat on the mat", "a quick brown fox jumps", "hello world", "completely different words"]
REFERENCES = ["the cat sat on a mat", "the quick brown fox jumped", "hello world", "nothing alike here"]


@pytest.fixture(scope="module")
def translation_metrics():
    return load_metrics("translation")


@pytest.fixture(scope="module")
def qa_metrics():
    return load_metrics("qa")


def test_bleu_is_sacrebleus_corpus_bleu(translation_metrics):
    result = translation_metrics["bleu"].compute(predictions=PREDICTIONS, references=REFERENCES)
    expected = sacrebleu.corpus_bleu(PREDICTIONS, [REFERENCES])
    assert result["score"] == pytest.approx(expected.score, abs=1e-9)
    assert result["precisions"] == pytest.approx(expected.precisions)
    assert 0 < result["score"] < 100
    same = translation_metrics["bleu"].compute(predictions=REFERENCES, references=REFERENCES)
    assert same["score"] == pytest.approx(100.0)


def test_chrf_is_sacrebleus_corpus_chrf(translation_metrics):
    result = translation_metrics["chrf"].compute(predictions=PREDICTIONS, references=REFERENCES)
    assert result["score"] == pytest.approx(sacrebleu.corpus_chrf(PREDICTIONS, [REFERENCES]).score, abs=1e-9)
    assert 0 < result["score"] < 100


def test_exact_match_after_squad_normalization(qa_metrics):
    # Equal after lowercasing, dropping punctuation and articles: 1st and 2nd; the 3rd is not.
    result = qa_metrics["exact_match"].compute(
        predictions=["The Cat.", "a  dog!", "red", "An apple"], references=["cat", "dog", "blue", "apples"]
    )
    assert result["exact_match"] == pytest.approx(100 * 2 / 4)


def test_token_f1_by_hand(qa_metrics):
    predictions = ["the cat sat on mat", "red red blue", "", "dog", "The Dog."]
    references = ["a cat sat", "red blue blue", "", "cat", "dog"]
    by_hand = [
        2 * (2 / 4) * (2 / 2) / (2 / 4 + 2 / 2),  # cat, sat shared; precision 2/4, recall 2/2
        2 * (2 / 3) * (2 / 3) / (2 / 3 + 2 / 3),  # a multiset: one red and one blue shared
        1.0,  # both empty after normalization
        0.0,
        1.0,  # normalized alike
    ]
    result = qa_metrics["token_f1"].compute(predictions=predictions, references=references)
    assert result["f1"] == pytest.approx(100 * sum(by_hand) / len(by_hand))

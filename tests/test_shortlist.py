"""The vocabulary shortlist (`hf_seq2seq_rnn.shortlist_seq2seq_rnn`): learned, saved, loaded, refused
when wrong, and decoded with.

- A shortlist that covers the whole vocabulary decodes exactly as no shortlist does.
- A partial one decodes as transformers' own loop with the same shortlist as a mask, token for token:
  our search computes the output layer for those rows only.
- IBM Model 1 finds the translations of a toy lexicon that plain co-occurrence counts would not.
"""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import tiny_model
from test_search import assert_same_search, both, sources, varied_model

from hf_seq2seq_rnn import Seq2SeqRNNForConditionalGeneration
from hf_seq2seq_rnn.search_seq2seq_rnn import DecodingLoop, prepared_search
from hf_seq2seq_rnn.shortlist_seq2seq_rnn import (
    SHORTLIST_FILE,
    Shortlist,
    ShortlistLogitsProcessor,
    build_shortlist,
    check_setting,
    output_rows,
    vocabulary_fingerprint,
)
from seq2seq_tools.quantization import quantize_int8

REPO = Path(__file__).resolve().parent.parent
VOCAB = 30  # test_search's tiny copy models


def copy_shortlist(frequent: list[int], candidates: int = 2) -> Shortlist:
    """A shortlist for test_search's copy models (ids 4..29 copy themselves): each source token's first
    candidate is itself, then the next ids; `frequent` are the frequent tokens."""
    table = torch.stack([(torch.arange(VOCAB) + shift) % VOCAB for shift in range(candidates)], dim=1)
    return Shortlist(
        frequent=torch.tensor(frequent, dtype=torch.int32),
        candidates=table.to(torch.int32),
        always=torch.tensor([0, 1, 2, 3], dtype=torch.int32),
        vocab_size=VOCAB,
        vocabulary="",
        pairs=0,
        iterations=0,
    )


def with_shortlist(model: Seq2SeqRNNForConditionalGeneration, shortlist: Shortlist):
    model = copy.deepcopy(model)
    model.set_shortlist(shortlist)
    return model


@pytest.mark.parametrize("beams", [1, 5])
def test_a_shortlist_of_the_whole_vocabulary_decodes_as_no_shortlist(beams):
    model = varied_model()
    whole = with_shortlist(model, copy_shortlist(list(range(VOCAB))))
    input_ids, mask = sources()
    plain = model.generate(input_ids, attention_mask=mask, num_beams=beams, max_new_tokens=20)
    listed = whole.generate(input_ids, attention_mask=mask, num_beams=beams, max_new_tokens=20, shortlist=(VOCAB, 1))
    assert torch.equal(plain, listed)


@pytest.mark.parametrize("beams", [1, 2, 5])
@pytest.mark.parametrize("variant", ["lstm-general-feed", "gru-dot", "lstm-none-peeky"])
def test_a_partial_shortlist_decodes_as_transformers_loop_masked_to_it(variant, beams):
    model = with_shortlist(varied_model(variant), copy_shortlist([5, 9, 13, 17], candidates=1))
    input_ids, mask = sources()
    settings = dict(attention_mask=mask, num_beams=beams, max_new_tokens=20, shortlist=(4, 1))
    ours = model.generate(input_ids, **settings, return_dict_in_generate=True)
    theirs = model.generate(input_ids, **settings, custom_generate=None, return_dict_in_generate=True)
    assert torch.equal(ours.sequences, theirs.sequences)
    if beams > 1:
        assert torch.equal(ours.beam_indices, theirs.beam_indices)
    # Every output token is in the batch's shortlist: its sources' ids, the frequent ones, the specials.
    allowed = set(input_ids[mask.bool()].tolist()) | {5, 9, 13, 17, 0, 1, 2, 3}
    assert set(ours.sequences.unique().tolist()) <= allowed
    # And the shortlist changed something: the copy model's outputs without it use other tokens.
    plain = varied_model(variant).generate(input_ids, attention_mask=mask, num_beams=beams, max_new_tokens=20)
    assert not set(plain.unique().tolist()) <= {5, 9, 13, 17, 0, 1, 2, 3}


@pytest.mark.parametrize("beams", [1, 5])
def test_scores_asked_for_decode_with_the_shortlist_as_a_mask_and_still_equal(beams):
    """output_scores keeps every token's column: the shortlist is then applied as a processor in our
    loop too, and the scores equal transformers' loop's."""
    model = with_shortlist(varied_model(), copy_shortlist([5, 9, 13, 17], candidates=1))
    ours, theirs = both(model, num_beams=beams, shortlist=(4, 1))
    assert_same_search(ours, theirs, beams)
    assert torch.isinf(ours.scores[0]).any()  # masked columns


def test_int8_output_rows_are_the_int8_layer_s_rows():
    model = quantize_int8(varied_model())
    rows = torch.tensor([0, 2, 5, 7, 29])
    features = torch.randn(6, model.lm_head.in_features)
    assert torch.equal(output_rows(model.lm_head, rows)(features), model.lm_head(features)[:, rows])
    # int8 activations are quantized over the rows of each call, so our loop (which drops finished rows)
    # is compared with itself: the whole vocabulary as a shortlist decodes as no shortlist.
    whole = with_shortlist(model, copy_shortlist(list(range(VOCAB))))
    input_ids, mask = sources()
    settings = dict(attention_mask=mask, num_beams=5, max_new_tokens=20)
    assert torch.equal(
        whole.generate(input_ids, **settings, shortlist=(VOCAB, 1)), model.generate(input_ids, **settings)
    )


def test_requests_sharing_a_batch_decode_each_over_its_own_shortlist_as_alone():
    model = with_shortlist(varied_model(), copy_shortlist([5], candidates=1))
    input_ids, mask = sources()
    halves = (slice(0, 4), slice(4, 8))

    def search(rows: slice) -> Any:
        return model.generate(
            input_ids[rows], attention_mask=mask[rows], max_new_tokens=20, shortlist=(1, 1),
            custom_generate=prepared_search,
        )  # fmt: skip

    alone = []
    for rows in halves:
        loop = DecodingLoop(model)
        loop.add(prepared := search(rows))
        while len(loop):
            loop.step()
        alone.append(prepared.strategy.output())
    searches = [search(rows) for rows in halves]
    assert not torch.equal(searches[0].strategy.vocabulary, searches[1].strategy.vocabulary)
    loop = DecodingLoop(model)
    for prepared in searches:
        loop.add(prepared)
    while len(loop):
        loop.step()
    for prepared, own, rows in zip(searches, alone, halves, strict=True):
        shared = prepared.strategy.output()
        assert torch.equal(shared, own)
        allowed = set(input_ids[rows][mask[rows].bool()].tolist()) | {5, 0, 1, 2, 3}
        assert set(shared.unique().tolist()) <= allowed


def toy_lexicon_pairs(count: int = 400, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """Sentences of 2-5 source words 10..29 translated word by word to target word s + 20, with the
    target function word 5 in every sentence (the most frequent target token, co-occurring with all)."""
    generator = torch.Generator().manual_seed(seed)
    pairs = []
    for _ in range(count):
        length = int(torch.randint(2, 6, (1,), generator=generator))
        source = torch.randint(10, 30, (length,), generator=generator).tolist()
        pairs.append((source, [5, *(word + 20 for word in source)]))
    return pairs


def test_ibm_model_1_learns_the_lexicon_where_cooccurrence_counts_say_the_function_word():
    shortlist = build_shortlist(toy_lexicon_pairs(), vocab_size=60, always=[0, 1, 2, 3], candidates=3)
    assert shortlist.candidates[10:30, 0].tolist() == list(range(30, 50))
    assert shortlist.frequent[0] == 5
    assert shortlist.always.tolist() == [0, 1, 2, 3]
    assert (shortlist.candidates[:10] == -1).all()  # never seen as a source: no candidates
    rows = shortlist.rows(torch.tensor([[12, 17, 0]]), torch.tensor([[1, 1, 0]]), first=1, best=1)
    assert rows.tolist() == [0, 1, 2, 3, 5, 32, 37]


def saved_shortlist(folder: Path) -> Path:
    shortlist = build_shortlist(toy_lexicon_pairs(), vocab_size=60, always=[0, 1, 2, 3], vocabulary="abc")
    return shortlist.save(folder)


def test_a_saved_shortlist_loads_back_equal(tmp_path):
    path = saved_shortlist(tmp_path)
    assert path.name == SHORTLIST_FILE
    loaded = Shortlist.load(path, vocab_size=60, vocabulary="abc")
    original = build_shortlist(toy_lexicon_pairs(), vocab_size=60, always=[0, 1, 2, 3], vocabulary="abc")
    for field in dataclasses.fields(Shortlist):
        value, expected = getattr(loaded, field.name), getattr(original, field.name)
        assert torch.equal(value, expected) if isinstance(value, torch.Tensor) else value == expected


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing", "no shortlist file at"),
        ("truncated", "is not a complete shortlist file"),
        ("other_size", "made for a vocabulary of 60 tokens; this model has 61"),
        ("other_tokenizer", "made for another vocabulary"),
    ],
)
def test_a_wrong_shortlist_file_is_refused_with_what_to_do(tmp_path, damage, message):
    path = saved_shortlist(tmp_path)
    vocab_size, vocabulary = 60, "abc"
    if damage == "missing":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "other_size":
        vocab_size = 61
    else:
        vocabulary = "xyz"
    with pytest.raises(ValueError, match=message) as raised:
        Shortlist.load(path, vocab_size=vocab_size, vocabulary=vocabulary)
    assert "python -m training.shortlist" in str(raised.value)


@pytest.mark.parametrize("value", [(0, 0), (1,), (-1, 3), (1.5, 2), "a,b", True])
def test_a_bad_setting_names_what_is_accepted(value):
    with pytest.raises(ValueError, match="expected two whole numbers FIRST,BEST"):
        check_setting(value)
    assert check_setting("100,50") == (100, 50)


def test_a_model_without_a_shortlist_asked_for_one_says_how_to_build_it():
    model = varied_model()
    input_ids, mask = sources()
    with pytest.raises(ValueError, match="this model has no vocabulary shortlist.*python -m training.shortlist"):
        model.generate(input_ids, attention_mask=mask, shortlist=(10, 10))
    with pytest.raises(ValueError, match="holds at most 4 frequent tokens"):
        with_shortlist(model, copy_shortlist([5, 9, 13, 17])).generate(input_ids, attention_mask=mask, shortlist=(5, 1))


def test_the_processor_is_a_log_softmax_over_the_shortlist():
    scores = torch.randn(3, 10)
    rows = torch.tensor([1, 4, 7])
    masked = ShortlistLogitsProcessor(rows)(None, scores)
    torch.testing.assert_close(masked[:, rows], scores[:, rows].log_softmax(-1))
    assert torch.isinf(masked[:, [0, 2, 3, 5, 6, 8, 9]]).all()


def trained_tiny_folder(folder: Path) -> tuple[Path, list[str]]:
    """A tiny untrained model with its tokenizer saved in `folder`, and a corpus of pairs (a TSV)."""
    model, tokenizer = tiny_model()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    lines = [
        f"{text}\t{' '.join(reversed(text.split()))}" for text in ("red cat", "the dog and sun", "moon over water")
    ]
    (folder / "pairs.tsv").write_text("source\ttarget\n" + "\n".join(lines * 5) + "\n", encoding="utf-8")
    return folder, lines


def run(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *arguments], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_the_command_learns_a_shortlist_that_predict_and_from_pretrained_use(tmp_path):
    folder, _ = trained_tiny_folder(tmp_path / "model")
    built = run("-m", "training.shortlist", "--model", str(folder), "--dataset", str(folder / "pairs.tsv"))
    assert built.returncode == 0, built.stderr
    assert (folder / SHORTLIST_FILE).is_file()
    model = Seq2SeqRNNForConditionalGeneration.from_pretrained(folder)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    shortlist = model.load_shortlist(tokenizer)
    assert shortlist.vocabulary == vocabulary_fingerprint(tokenizer) and shortlist.pairs == 15
    model.save_pretrained(tmp_path / "copy")  # carried along, as push_to_hub's upload folder is written
    assert (tmp_path / "copy" / SHORTLIST_FILE).read_bytes() == (folder / SHORTLIST_FILE).read_bytes()
    source = tmp_path / "test.en"
    source.write_text("red cat\nmoon over water\n", encoding="utf-8")
    decoded = run(
        "-m", "training.predict", "--model", str(folder), "--dataset", str(source), "--output", str(tmp_path / "out"),
        "--shortlist", "5,3", "--num-beams", "2", "--max-new-tokens", "5",
    )  # fmt: skip
    assert decoded.returncode == 0, decoded.stderr
    assert len((tmp_path / "out").read_text(encoding="utf-8").splitlines()) == 2


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_predict_with_a_missing_or_cut_shortlist_exits_2_with_one_line(tmp_path, damage):
    folder, _ = trained_tiny_folder(tmp_path / "model")
    if damage == "truncated":
        saved = build_shortlist(toy_lexicon_pairs(), vocab_size=len(tiny_model()[1]), always=[0, 1, 2, 3])
        path = saved.save(folder)
        path.write_bytes(path.read_bytes()[:100])
    source = tmp_path / "test.en"
    source.write_text("red cat\n", encoding="utf-8")
    decoded = run(
        "-m", "training.predict", "--model", str(folder), "--dataset", str(source), "--output", str(tmp_path / "out"),
        "--shortlist", "5,3",
    )  # fmt: skip
    assert decoded.returncode == 2
    last = decoded.stderr.strip().splitlines()[-1]
    assert last.startswith("error: bad decoding settings:") and "python -m training.shortlist" in last
    assert "Traceback" not in decoded.stderr


@pytest.mark.parametrize("beams", [1, 4])
def test_an_ensemble_decodes_over_its_first_member_s_shortlist_as_its_masked_loop(beams):
    from hf_seq2seq_rnn import Seq2SeqRNNEnsemble

    shortlist = copy_shortlist([5, 9, 13, 17], candidates=1)
    ensemble = Seq2SeqRNNEnsemble([with_shortlist(varied_model(), shortlist), varied_model("gru-dot")]).eval()
    input_ids, mask = sources()
    settings = dict(attention_mask=mask, num_beams=beams, max_new_tokens=20, shortlist=(4, 1))
    ours = ensemble.generate(input_ids, **settings)
    assert torch.equal(ours, ensemble.generate(input_ids, **settings, custom_generate=None))
    assert set(ours.unique().tolist()) <= set(input_ids[mask.bool()].tolist()) | {5, 9, 13, 17, 0, 1, 2, 3}


def predict_summary(folder: Path, tmp_path: Path, *flags: str) -> tuple[dict, str]:
    """`training.predict` in this process on two sources: its summary and its output text."""
    from training.predict import parse_settings, predict

    source = tmp_path / "test.en"
    source.write_text("red cat\nmoon over water\n", encoding="utf-8")
    output = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
    arguments = ["--model", str(folder), "--dataset", str(source), "--output", str(output), "--summary", "none"]
    (summary,) = predict(parse_settings([*arguments, "--num-beams", "2", "--max-new-tokens", "5", *flags]))
    return summary, output.read_text(encoding="utf-8")


def test_predict_decodes_with_the_shortlist_by_default_when_the_model_has_one(tmp_path):
    """Without --shortlist, predict takes PREDICT_SHORTLIST within what the model's shortlist holds
    (this tiny one keeps fewer frequent tokens than 100): the same as given it by hand; --shortlist none,
    a model without a shortlist and a Q/A model decode over the whole vocabulary."""
    from training.predict_options import PREDICT_SHORTLIST

    folder, _ = trained_tiny_folder(tmp_path / "model")
    without, _ = predict_summary(folder, tmp_path)
    assert "shortlist" not in without["settings"]  # no shortlist file: the whole vocabulary, no error
    shortlist = build_shortlist(toy_lexicon_pairs(), vocab_size=len(tiny_model()[1]), always=[0, 1, 2, 3])
    shortlist.save(folder)
    first, best = (int(value) for value in PREDICT_SHORTLIST.split(","))
    held = (min(first, shortlist.frequent.numel()), min(best, shortlist.candidates.shape[1]))
    assert held[0] < first  # the default is clamped here, not refused
    default, default_text = predict_summary(folder, tmp_path)
    assert tuple(default["settings"]["shortlist"]) == held
    given, given_text = predict_summary(folder, tmp_path, "--shortlist", f"{held[0]},{held[1]}")
    assert tuple(given["settings"]["shortlist"]) == held and given_text == default_text
    off, _ = predict_summary(folder, tmp_path, "--shortlist", "none")
    assert "shortlist" not in off["settings"]
    answers, _ = predict_summary(folder, tmp_path, "--task", "qa")  # measured on translation only
    assert "shortlist" not in answers["settings"]


def test_predict_refuses_a_cut_shortlist_file_by_default_and_says_how_to_do_without(tmp_path):
    from training.errors import TrainingInputError

    folder, _ = trained_tiny_folder(tmp_path / "model")
    path = build_shortlist(toy_lexicon_pairs(), vocab_size=len(tiny_model()[1]), always=[0, 1, 2, 3]).save(folder)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(TrainingInputError, match="--shortlist none"):
        predict_summary(folder, tmp_path)
    off, _ = predict_summary(folder, tmp_path, "--shortlist", "none")
    assert "shortlist" not in off["settings"]


def test_compare_leaves_the_default_shortlist_off_when_a_model_has_none(tmp_path):
    """--compare decodes every model with the first one's settings: the first's shortlist by default
    would be asked of a second model without one."""
    from training.predict import parse_settings, predict

    first, _ = trained_tiny_folder(tmp_path / "first")
    second, _ = trained_tiny_folder(tmp_path / "second")
    build_shortlist(toy_lexicon_pairs(), vocab_size=len(tiny_model()[1]), always=[0, 1, 2, 3]).save(first)
    source = tmp_path / "test.en"
    source.write_text("red cat\nmoon over water\n", encoding="utf-8")
    flags = ["--model", str(first), "--model", str(second), "--compare", "--dataset", str(source)]
    (summary,) = predict(parse_settings([*flags, "--output", str(tmp_path / "side.tsv"), "--max-new-tokens", "4"]))
    assert "shortlist" not in summary["settings"] and len(summary["compare"]) == 2

"""The model's own search loop (`hf_seq2seq_rnn.search_seq2seq_rnn`) against transformers' own.

`model.generate()` decodes with the compact search; `generate(custom_generate=None)` with
transformers' `_sample` / `_beam_search`. On batches whose sentences end at different steps both
must give the same sequences token for token, the same `sequences_scores` and `beam_indices`, and
the same per-step scores, logits and cross-attentions wherever a returned output reads them, while
the compact search steps fewer rows.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from conftest import scramble_general_score, tiny_model
from transformers import GenerationConfig, TextIteratorStreamer

from hf_seq2seq_rnn import Seq2SeqRNNConfig, Seq2SeqRNNForConditionalGeneration
from hf_seq2seq_rnn.search_seq2seq_rnn import SearchSettings, coverage_term

EOS = 2
VARIANTS = {
    "lstm-general-feed": dict(attention_type="general", input_feeding=True),
    "gru-dot": dict(cell_type="gru", attention_type="dot"),
    "peephole-additive": dict(cell_type="peephole_lstm", attention_type="additive"),
    "lstm-none-peeky": dict(attention_type="none", peeky=True),
    "gru-general-unidirectional-reversed": dict(
        cell_type="gru", attention_type="general", bidirectional_encoder=False, reverse_source=True
    ),
    "lstm-additive-feed-peeky": dict(attention_type="additive", input_feeding=True, peeky=True),
}


def copy_batch(generator: torch.Generator, rows: int, max_length: int = 8) -> tuple[torch.Tensor, ...]:
    """Right-padded sources of 1 to `max_length` tokens, and labels that copy them and end with `</s>`."""
    lengths = torch.randint(1, max_length + 1, (rows,), generator=generator)
    mask = (torch.arange(max_length)[None] < lengths[:, None]).long()  # (rows, max_length)
    input_ids = torch.randint(4, 30, (rows, max_length), generator=generator).masked_fill(mask == 0, 0)
    labels = torch.full((rows, max_length + 1), -100)
    for row, length in enumerate(lengths.tolist()):
        labels[row, :length] = input_ids[row, :length]
        labels[row, length] = EOS
    return input_ids, mask, labels


@functools.cache
def _trained(variant: str) -> Seq2SeqRNNForConditionalGeneration:
    torch.manual_seed(0)
    config = Seq2SeqRNNConfig(
        **{"vocab_size": 30, "embedding_size": 16, "hidden_size": 16, "num_layers": 2, **VARIANTS[variant]}
    )
    model = Seq2SeqRNNForConditionalGeneration(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    generator = torch.Generator().manual_seed(0)
    for _ in range(100):
        input_ids, mask, labels = copy_batch(generator, 32)
        model(input_ids=input_ids, attention_mask=mask, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


def varied_model(variant: str = "lstm-general-feed", never_ends: bool = False) -> Seq2SeqRNNForConditionalGeneration:
    """A copy of a tiny model trained for a few seconds to copy its source: its outputs end at
    different steps, as the source lengths do (with `never_ends`, `</s>` is never chosen)."""
    model = copy.deepcopy(_trained(variant))
    if never_ends:
        with torch.no_grad():
            model.lm_head.bias[EOS] = -1e4
    return model


def sources() -> tuple[torch.Tensor, torch.Tensor]:
    """Eight right-padded sources of 1 to 8 tokens."""
    input_ids, mask, _ = copy_batch(torch.Generator().manual_seed(1), 8)
    return input_ids, mask


def both(model, **settings):
    """(compact search, transformers' own loop) on the same inputs and settings."""
    input_ids, mask = sources()
    common = dict(
        attention_mask=mask,
        max_new_tokens=settings.pop("max_new_tokens", 20),
        return_dict_in_generate=True,
        output_scores=True,
        output_logits=True,
        output_attentions=True,
    )
    ours = model.generate(input_ids, **common, **settings)
    theirs = model.generate(input_ids, **common, **settings, custom_generate=None)
    return ours, theirs


def assert_same_search(ours, theirs, beams: int) -> None:
    assert torch.equal(ours.sequences, theirs.sequences)
    if beams > 1:
        torch.testing.assert_close(ours.sequences_scores, theirs.sequences_scores, atol=1e-5, rtol=0)
        assert torch.equal(ours.beam_indices, theirs.beam_indices)
        rows = ours.beam_indices  # (returned, steps): the row each returned token came from
    else:
        generated = ours.sequences[:, 1:]
        ended_before = (generated == EOS).int().cumsum(dim=1) - (generated == EOS).int()
        row_ids = torch.arange(generated.shape[0])[:, None].expand_as(generated)
        rows = torch.where(ended_before == 0, row_ids, -1)  # -1 once the row's output has ended
    assert len(ours.scores) <= len(theirs.scores)
    for step in range(rows.shape[1]):
        read = rows[:, step][rows[:, step] >= 0]
        for name in ("scores", "logits"):
            torch.testing.assert_close(
                getattr(ours, name)[step][read], getattr(theirs, name)[step][read], atol=1e-5, rtol=0
            )
        if theirs.cross_attentions[step] is None:  # a model without attention
            assert ours.cross_attentions[step] is None
        else:
            torch.testing.assert_close(
                ours.cross_attentions[step][0][read], theirs.cross_attentions[step][0][read], atol=1e-6, rtol=0
            )


def lengths(output, beams: int) -> list[int]:
    if beams > 1:
        return output.beam_indices.ne(-1).sum(dim=1).tolist()
    return [row.index(EOS) + 1 if EOS in row else len(row) for row in output.sequences[:, 1:].tolist()]


@contextlib.contextmanager
def step_rows(model: Any) -> Iterator[list[int]]:
    """The rows of each decoder step the loop makes on `model` (`decode_features`) while in the block."""
    rows: list[int] = []
    features = model.decode_features

    def counting(input_ids, memory, state):
        rows.append(input_ids.shape[0])
        return features(input_ids, memory, state)

    model.decode_features = counting
    try:
        yield rows
    finally:
        del model.decode_features


@pytest.mark.parametrize("beams", [1, 2, 5])
@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
def test_equal_to_transformers_loop_across_variants(variant, beams):
    model = varied_model(variant)
    ours, theirs = both(model, num_beams=beams)
    assert_same_search(ours, theirs, beams)


@pytest.mark.parametrize("beams", [1, 2, 5])
def test_sentences_end_at_different_steps_and_the_batch_shrinks(beams):
    """The test batch is one where outputs end at different steps, and the rows each decoder step
    receives fall as they do (with the same result as transformers' loop)."""
    model = varied_model()
    with step_rows(model) as rows_per_step:
        ours, theirs = both(model, num_beams=beams)
    assert_same_search(ours, theirs, beams)
    ends = lengths(theirs, beams)
    assert len(set(ends)) > 2, f"the batch should end at several different steps, got lengths {ends}"
    assert rows_per_step[0] == 8  # beam search's first step runs once per sentence: its beams are copies
    assert rows_per_step[1] == 8 * beams or len(rows_per_step) == 1
    assert all(later <= earlier for earlier, later in itertools.pairwise(rows_per_step[1:]))
    assert rows_per_step[-1] < rows_per_step[0]
    assert len(rows_per_step) == len(theirs.scores)  # the same number of steps; fewer rows in them


@pytest.mark.parametrize(
    "settings",
    [
        dict(num_return_sequences=3, length_penalty=0.0),
        dict(num_return_sequences=5, length_penalty=1.0),
        dict(num_return_sequences=2, length_penalty=2.0),
        dict(length_penalty=-1.0),
        dict(early_stopping=True),
        dict(early_stopping=False, length_penalty=2.0),
        dict(early_stopping="never", length_penalty=0.0),
        dict(early_stopping="never", length_penalty=2.0),
        dict(early_stopping="never", length_penalty=-0.5),
    ],
    ids=lambda settings: ",".join(f"{k}={v}" for k, v in settings.items()),
)
def test_beam_settings_equal(settings):
    for variant in ("lstm-general-feed", "gru-dot"):
        ours, theirs = both(varied_model(variant), num_beams=5, **settings)
        assert_same_search(ours, theirs, 5)


PROCESSORS = {
    "no_repeat_ngram_size": dict(no_repeat_ngram_size=2),
    "repetition_penalty": dict(repetition_penalty=1.5),
    "min_new_tokens": dict(min_new_tokens=4),
    "bad_words_ids": dict(bad_words_ids=[[5], [7, 8]]),
    "forced_bos_and_eos": dict(forced_bos_token_id=9, forced_eos_token_id=EOS, max_new_tokens=12),
    "suppress_tokens": dict(suppress_tokens=[4, 6], begin_suppress_tokens=[10]),
    "all_together": dict(no_repeat_ngram_size=3, repetition_penalty=1.3, min_new_tokens=2, bad_words_ids=[[11]]),
}


@pytest.mark.parametrize("beams", [1, 3])
@pytest.mark.parametrize("name", list(PROCESSORS), ids=list(PROCESSORS))
def test_logits_processors_equal(name, beams):
    ours, theirs = both(varied_model(), num_beams=beams, **PROCESSORS[name])
    assert_same_search(ours, theirs, beams)


@pytest.mark.parametrize("beams", [1, 4])
def test_stopping_criteria_equal(beams):
    settings = dict(max_length=9) if beams > 1 else dict(max_length=9, stop_strings=None)
    input_ids, mask = sources()
    ours = model_output = varied_model(never_ends=True).generate(
        input_ids, attention_mask=mask, num_beams=beams, **settings
    )
    theirs = varied_model(never_ends=True).generate(
        input_ids, attention_mask=mask, num_beams=beams, custom_generate=None, **settings
    )
    assert torch.equal(ours, theirs) and model_output.shape[1] == 9


def test_greedy_returns_ids_alone_when_no_dict_is_asked():
    model = varied_model()
    input_ids, mask = sources()
    for beams in (1, 3):
        ours = model.generate(input_ids, attention_mask=mask, num_beams=beams, max_new_tokens=15)
        theirs = model.generate(
            input_ids, attention_mask=mask, num_beams=beams, max_new_tokens=15, custom_generate=None
        )
        assert isinstance(ours, torch.Tensor) and torch.equal(ours, theirs)


def test_streamer_gets_the_same_text_as_transformers_loop():
    model, tokenizer = tiny_model(num_layers=1)
    scramble_general_score(model)
    encoded = tokenizer(["the red cat over the moon"], return_tensors="pt")
    texts = []
    for custom in ({}, {"custom_generate": None}):
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        model.generate(**encoded, max_new_tokens=10, streamer=streamer, **custom)
        texts.append("".join(streamer))
    assert texts[0] == texts[1] and texts[0].strip()


def test_unsupported_settings_fall_back_to_transformers_loop_with_one_debug_line(caplog):
    model = varied_model()
    input_ids, mask = sources()
    with caplog.at_level(logging.DEBUG, logger="hf_seq2seq_rnn.search_seq2seq_rnn"):
        torch.manual_seed(3)
        ours = model.generate(input_ids, attention_mask=mask, num_beams=3, do_sample=True, max_new_tokens=10)
    torch.manual_seed(3)
    theirs = model.generate(
        input_ids, attention_mask=mask, num_beams=3, do_sample=True, max_new_tokens=10, custom_generate=None
    )
    assert torch.equal(ours, theirs)
    lines = [record.getMessage() for record in caplog.records if "own decoding loop" in record.getMessage()]
    assert len(lines) == 1 and "sampling" in lines[0]


def test_a_processor_with_per_row_state_falls_back():
    """`encoder_repetition_penalty` keeps the batch's source ids: compaction would misalign them."""
    model = varied_model()
    input_ids, mask = sources()
    settings = dict(attention_mask=mask, encoder_repetition_penalty=1.5, max_new_tokens=10)
    assert torch.equal(
        model.generate(input_ids, **settings), model.generate(input_ids, **settings, custom_generate=None)
    )


# The source-relative length cap.


@pytest.mark.parametrize("beams", [1, 3])
def test_length_cap_stops_each_sentence_at_a_times_source_plus_b(beams):
    model = varied_model(never_ends=True)  # nothing ends by itself
    input_ids, mask = sources()
    capped = model.generate(
        input_ids, attention_mask=mask, num_beams=beams, max_new_tokens=30, max_length_a=1.5, max_length_b=1
    )
    source_lengths = mask.sum(dim=1)
    expected = (1.5 * source_lengths + 1).floor().long()
    generated = capped[:, 1:]
    real = (generated != 0) & (generated != EOS)
    assert real.sum(dim=1).tolist() == expected.tolist()
    if beams == 1:  # the capped output is the uncapped one cut short
        full = model.generate(input_ids, attention_mask=mask, max_new_tokens=30)
        for row, limit in enumerate(expected.tolist()):
            assert torch.equal(capped[row, 1 : 1 + limit], full[row, 1 : 1 + limit])


def test_length_cap_also_in_transformers_loop_and_in_generation_config(tmp_path):
    model = varied_model(never_ends=True)
    input_ids, mask = sources()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=1, bos_token_id=1, eos_token_id=EOS, pad_token_id=0, max_length_a=0.5, max_length_b=2
    )
    model.save_pretrained(tmp_path)
    loaded = Seq2SeqRNNForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert (loaded.generation_config.max_length_a, loaded.generation_config.max_length_b) == (0.5, 2)
    ours = loaded.generate(input_ids, attention_mask=mask, max_new_tokens=30)
    expected = (0.5 * mask.sum(dim=1) + 2).floor().long()
    assert ours[:, 1:].ne(0).sum(dim=1).tolist() == expected.tolist()
    # transformers' own loop, for a setting the compact search hands over to it, honours the cap too
    torch.manual_seed(0)
    sampled = loaded.generate(input_ids, attention_mask=mask, max_new_tokens=30, do_sample=True)
    assert sampled[:, 1:].ne(0).sum(dim=1).le(expected).all()


@pytest.mark.parametrize("custom_generate", [None, "compact"], ids=["transformers-loop", "compact-search"])
def test_the_generation_configs_cap_is_switched_off_by_none_given_explicitly(custom_generate):
    """`generate(max_length_a=None, max_length_b=None)` decodes without the cap that the generation
    config sets (training saves 2 x source + 10); one term None leaves the other as the whole cap."""
    model = varied_model(never_ends=True)  # nothing ends by itself: every output runs to its limit
    model.generation_config = GenerationConfig(
        decoder_start_token_id=1, eos_token_id=EOS, pad_token_id=0, max_length_a=0.5, max_length_b=2
    )
    input_ids, mask = sources()
    loop = {} if custom_generate == "compact" else {"custom_generate": None}
    settings = dict(attention_mask=mask, max_new_tokens=12, **loop)
    capped = model.generate(input_ids, **settings)[:, 1:].ne(0).sum(dim=1)
    cap = (0.5 * mask.sum(dim=1) + 2).floor().long()
    assert capped.tolist() == cap.tolist() and cap.max() < 12
    uncapped = model.generate(input_ids, **settings, max_length_a=None, max_length_b=None)[:, 1:].ne(0).sum(dim=1)
    assert uncapped.tolist() == [12] * len(cap)
    b_alone = model.generate(input_ids, **settings, max_length_a=None)[:, 1:].ne(0).sum(dim=1)
    assert b_alone.tolist() == [2] * len(cap)


def test_a_huge_finite_cap_allows_every_token_instead_of_overflowing():
    """1e308 x source is inf in a double; cast to int64 unclamped it would be garbage (often the
    most negative int64, then clamped up to a cap of 1 token)."""
    limits = SearchSettings(max_length_a=1e308, max_length_b=1e308).new_token_limits(torch.tensor([0, 3, 100]))
    assert limits.dtype == torch.long and limits.min().item() >= 2**62


@pytest.mark.parametrize("bad", [-1, "2", float("nan"), float("inf"), True])
@pytest.mark.parametrize("name", ["max_length_a", "max_length_b", "coverage_penalty"])
def test_bad_search_settings_raise_value_error_naming_them(name, bad):
    model = varied_model()
    input_ids, mask = sources()
    with pytest.raises(ValueError, match=name):
        model.generate(input_ids, attention_mask=mask, max_new_tokens=5, **{name: bad})


@pytest.mark.parametrize("beams", [1, 4])
def test_transformers_loop_honours_the_length_cap_as_a_stopping_criterion(beams):
    """With `custom_generate=None` the cap becomes a stopping criterion of transformers' own loop,
    with the same outputs as the compact search's own cap."""
    model = varied_model()
    input_ids, mask = sources()
    settings = dict(attention_mask=mask, num_beams=beams, max_new_tokens=30, max_length_a=0.5, max_length_b=1)
    if beams > 1:
        settings.update(num_return_sequences=2, return_dict_in_generate=True, output_scores=True)
    ours = model.generate(input_ids, **settings)
    theirs = model.generate(input_ids, **settings, custom_generate=None)
    if beams > 1:
        assert torch.equal(ours.sequences, theirs.sequences)
        torch.testing.assert_close(ours.sequences_scores, theirs.sequences_scores, atol=1e-5, rtol=0)
    else:
        assert torch.equal(ours, theirs)


# The coverage penalty.


def test_coverage_penalty_off_or_zero_is_plain_beam_search():
    model = varied_model()
    plain, _ = both(model, num_beams=4)
    for beta in (None, 0.0):
        ours, theirs = both(model, num_beams=4, **({} if beta is None else {"coverage_penalty": beta}))
        assert torch.equal(ours.sequences, plain.sequences)


def test_coverage_penalty_scores_each_hypothesis_by_its_own_attention():
    """`sequences_scores` = log P / length ** lp + beta * sum_i log(min(coverage_i, 1)), with the
    coverage summed from the returned hypothesis's own cross-attentions (read through beam_indices)."""
    model = varied_model()
    input_ids, mask = sources()
    beta, penalty = 0.4, 1.0
    out = model.generate(
        input_ids,
        attention_mask=mask,
        num_beams=4,
        num_return_sequences=2,
        max_new_tokens=20,
        coverage_penalty=beta,
        length_penalty=penalty,
        return_dict_in_generate=True,
        output_scores=True,
        output_attentions=True,
    )
    for row in range(out.sequences.shape[0]):
        steps = int(out.beam_indices[row].ne(-1).sum())
        log_prob = sum(float(out.scores[t][out.beam_indices[row, t], out.sequences[row, t + 1]]) for t in range(steps))
        attention = torch.stack([out.cross_attentions[t][0][out.beam_indices[row, t], 0, 0] for t in range(steps)])
        coverage = attention.sum(dim=0)  # (S,)
        source = mask[row // 2].bool()
        expected = log_prob / steps**penalty + beta * float(coverage_term(coverage[None, None], source[None])[0, 0])
        assert abs(float(out.sequences_scores[row]) - expected) < 1e-4


def test_coverage_term_floors_untouched_tokens_and_ignores_padding():
    coverage = torch.tensor([[[0.0, 0.5, 2.0, 0.0]]])
    mask = torch.tensor([[True, True, True, False]])
    value = float(coverage_term(coverage, mask)[0, 0])
    assert value == pytest.approx(float(torch.tensor(1e-10).log() + torch.tensor(0.5).log()))


def test_search_settings_read_from_generation_config_with_overrides():
    config = GenerationConfig(max_length_a=1.2)
    settings = SearchSettings.from_config(config, {"max_length_b": 3})
    assert (settings.max_length_a, settings.max_length_b, settings.coverage_penalty) == (1.2, 3, None)
    limits = settings.new_token_limits(torch.tensor([0, 1, 5, 100]))
    assert limits.tolist() == [3, 4, 9, 123]  # int(1.2 * source + 3)
    assert SearchSettings(max_length_a=0.1).new_token_limits(torch.tensor([2])).tolist() == [1]  # at least one


@pytest.mark.parametrize("variant", ["lstm-general-feed", "gru-dot", "lstm-none-peeky"])
def test_the_embedding_gate_table_decodes_as_the_embedding_product_and_follows_weight_changes(variant):
    """Decoding gathers the embedding's share of the first layer's gates from a table; it picks the
    tokens the product would, and a changed embedding (as training changes it) makes a new table."""
    model = varied_model(variant)
    input_ids, mask = sources()
    settings = dict(
        attention_mask=mask, num_beams=3, max_new_tokens=20, return_dict_in_generate=True, output_scores=True
    )
    with_table = model.generate(input_ids, **settings)
    model.model.decoder.precompute_gates = False
    without = model.generate(input_ids, **settings)
    assert torch.equal(with_table.sequences, without.sequences)
    torch.testing.assert_close(with_table.sequences_scores, without.sequences_scores, atol=1e-5, rtol=0)
    model.model.decoder.precompute_gates = True
    with torch.no_grad():
        model.model.decoder.embed_tokens.weight.mul_(-1.0)
    changed = model.generate(input_ids, **settings)
    model.model.decoder.precompute_gates = False
    assert torch.equal(changed.sequences, model.generate(input_ids, **settings).sequences)
    assert not torch.equal(changed.sequences, with_table.sequences)

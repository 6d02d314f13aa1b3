"""Strategies that decide and one loop that steps (`hf_seq2seq_rnn.search_seq2seq_rnn`).

The strategies are driven here without a model, from scripted log-probabilities whose hypotheses
and scores are worked out by hand (as fairseq's search tests do); the loop is checked to give every
search that joins a running batch the output it gets alone.
"""

from __future__ import annotations

import math

import pytest
import torch
from test_search import EOS, copy_batch, step_rows, varied_model
from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList
from transformers.generation import EosTokenCriteria, MaxLengthCriteria

from hf_seq2seq_rnn.ensemble_seq2seq_rnn import Seq2SeqRNNEnsemble
from hf_seq2seq_rnn.search_seq2seq_rnn import (
    BeamSearch,
    DecodingLoop,
    GreedySearch,
    SearchSettings,
    prepared_search,
)

START, A, B = 1, 3, 4  # token ids of the scripted searches: 0 pad, 1 start, 2 </s>, then two words
NEVER = float("-inf")


def log_probs(*rows: dict[int, float]) -> torch.Tensor:
    """Log-probabilities `(rows, 5)` from each row's {token: probability} (the others impossible)."""
    table = torch.full((len(rows), 5), NEVER)
    for row, probabilities in enumerate(rows):
        assert math.isclose(sum(probabilities.values()), 1.0)
        for token, probability in probabilities.items():
            table[row, token] = math.log(probability)
    return table


def scripted(strategy_class, beams: int, max_length: int = 6, **settings):
    """A strategy for one sentence, with `</s>` and a length limit as generate() would prepare them."""
    config = GenerationConfig(
        num_beams=beams,
        num_return_sequences=beams,
        max_length=max_length,
        eos_token_id=EOS,
        pad_token_id=0,
        return_dict_in_generate=True,
        output_scores=True,
        **settings,
    )
    config._eos_token_tensor = torch.tensor([EOS])
    config._pad_token_tensor = torch.tensor(0)
    criteria = StoppingCriteriaList([MaxLengthCriteria(max_length), EosTokenCriteria(EOS)])
    input_ids = torch.full((beams, 1), START)
    mask = torch.ones((beams, 3), dtype=torch.long)
    return strategy_class(input_ids, LogitsProcessorList(), criteria, config, SearchSettings(), mask)


def test_beam_search_advance_on_scripted_log_probabilities():
    search = scripted(BeamSearch, beams=2, early_stopping=True, length_penalty=1.0)
    assert search.start_rows.tolist() == [0]  # the first step reads one row for the sentence
    assert search.tokens.tolist() == [START]
    # Step 1: A .5, B .3, </s> .2. </s> ranks third, outside the best two: nothing ends yet.
    keep = search.advance(log_probs({A: 0.5, B: 0.3, EOS: 0.2}), None)
    assert search.tokens.tolist() == [A, B]
    assert keep.state.tolist() == [0, 0] and keep.memory.tolist() == [0, 0]  # both beams from the one row
    assert not search.done
    # Step 2: beam A: </s> .6, A .1, B .3; beam B: </s> .1, A .8, B .1.
    # Totals: A</s> .30, BA .24, AB .15, AA .05, ... A</s> ends among the best two: finished at log(.3) / 2.
    keep = search.advance(log_probs({EOS: 0.6, A: 0.1, B: 0.3}, {EOS: 0.1, A: 0.8, B: 0.1}), None)
    assert search.tokens.tolist() == [A, B]  # BA and AB run on
    assert keep.state.tolist() == [1, 0]  # BA continues beam B's row, AB beam A's
    assert keep.memory is None  # beams reorder within the sentence: its memory rows stay
    assert search.newly_done == [] and not search.done
    # Step 3: BA: </s> .5, A .25, B .25; AB: </s> .9, A .05, B .05. Totals: AB</s> .135, BA</s> .12.
    # Both end among the best two; the finished list keeps A</s> (log .3 / 2) and AB</s> (log .135 / 3),
    # and with early_stopping=True two finished hypotheses end the sentence.
    search.advance(log_probs({EOS: 0.5, A: 0.25, B: 0.25}, {EOS: 0.9, A: 0.05, B: 0.05}), None)
    assert search.done and search.newly_done == [0]
    output = search.output()
    # The shorter hypothesis is filled with </s>: transformers' filler is `pad or eos`, and pad id 0 reads as false.
    assert output.sequences.tolist() == [[START, A, EOS, EOS], [START, A, B, EOS]]
    expected = torch.tensor([math.log(0.3) / 2, math.log(0.135) / 3])
    torch.testing.assert_close(output.sequences_scores, expected)
    # The row each token came from: A and B from beam 0; AB ran on as beam 1 when it ended.
    assert output.beam_indices.tolist() == [[0, 0, -1], [0, 0, 1]]


def test_beam_search_without_early_stopping_waits_until_no_open_beam_can_win():
    # early_stopping=False: a sentence ends once the best open beam, at its current length, cannot beat
    # the worst finished hypothesis. Step 1 ends both best continuations at once (</s> .6 and .3 are the best two).
    search = scripted(BeamSearch, beams=2, early_stopping=False, length_penalty=1.0)
    search.advance(log_probs({EOS: 0.6, A: 0.3, B: 0.1}), None)
    # Finished: </s> alone (log .6 / 1). Running: A (.3), B (.1). Bound: log .3 / 1 < log .6: B and A can
    # still finish, but neither can beat log .6, so with a second finished slot open the sentence goes on.
    assert not search.done
    search.advance(log_probs({EOS: 0.9, A: 0.05, B: 0.05}, {EOS: 0.5, A: 0.25, B: 0.25}), None)
    # A</s> (.27, log .27 / 2 = -0.65) fills the second slot; the worst finished is now -0.65 and the best
    # open beam (AA or AB at .015, / 2) cannot beat it: done.
    assert search.done
    output = search.output()
    assert output.sequences.tolist() == [[START, EOS, EOS], [START, A, EOS]]
    torch.testing.assert_close(output.sequences_scores, torch.tensor([math.log(0.6), math.log(0.27) / 2]))


def test_greedy_search_advance_drops_each_sentence_the_step_it_ends():
    search = scripted(GreedySearch, beams=1)
    config = search.config
    # Three sentences: the first ends at step 1, the third at step 2, the second at the length limit.
    batch = GreedySearch(
        torch.full((3, 1), START), LogitsProcessorList(), search.stopping_criteria, config, SearchSettings(),
        torch.ones((3, 2), dtype=torch.long),
    )  # fmt: skip
    keep = batch.advance(log_probs({EOS: 0.9, A: 0.1}, {A: 0.7, B: 0.3}, {B: 0.6, EOS: 0.4}), None)
    assert batch.newly_done == [0]
    assert keep.state.tolist() == [1, 2] and keep.memory.tolist() == [1, 2]
    assert batch.tokens.tolist() == [A, B]
    keep = batch.advance(log_probs({B: 1.0}, {EOS: 1.0}), None)
    assert batch.newly_done == [2] and keep.state.tolist() == [0]
    for _ in range(2):  # max_length 6: the prompt and five new tokens
        assert batch.advance(log_probs({A: 1.0}), None) is None
    assert not batch.done
    batch.advance(log_probs({A: 1.0}), None)
    assert batch.done and batch.newly_done == [1]
    assert batch.output().sequences.tolist() == [
        [START, EOS, 0, 0, 0, 0],
        [START, A, B, A, A, A],
        [START, B, EOS, 0, 0, 0],
    ]


def test_a_stopped_sentence_leaves_at_the_next_step():
    batch = GreedySearch(
        torch.full((2, 1), START), LogitsProcessorList(), StoppingCriteriaList([EosTokenCriteria(EOS)]),
        scripted(GreedySearch, beams=1).config, SearchSettings(), torch.ones((2, 2), dtype=torch.long),
    )  # fmt: skip
    batch.stop(1)
    keep = batch.advance(log_probs({A: 1.0}, {A: 1.0}), None)
    assert batch.newly_done == [1] and keep.state.tolist() == [0]


def prepare(model, input_ids, mask, **settings):
    """`generate()` up to its first step: the search ready to join a loop."""
    with torch.inference_mode():
        return model.generate(
            input_ids, attention_mask=mask, custom_generate=prepared_search, return_dict_in_generate=True,
            output_scores=True, output_attentions=True, max_new_tokens=12, **settings,
        )  # fmt: skip


@pytest.mark.parametrize(
    "first, second",
    [({"num_beams": 1}, {"num_beams": 1}), ({"num_beams": 3}, {"num_beams": 1}), ({"num_beams": 1}, {"num_beams": 4})],
    ids=["greedy+greedy", "beam+greedy", "greedy+beam"],
)
@pytest.mark.parametrize("kind", ["model", "ensemble"])
def test_a_search_that_joins_a_running_batch_gets_its_output_alone(first, second, kind):
    model = varied_model("lstm-additive-feed-peeky")
    if kind == "ensemble":  # two members, each with its own memory and state to pad and join
        model = Seq2SeqRNNEnsemble([model, varied_model("gru-dot")]).eval()
    generator = torch.Generator().manual_seed(3)
    early_ids, early_mask, _ = copy_batch(generator, 5, max_length=4)  # shorter sources than the late ones'
    late_ids, late_mask, _ = copy_batch(generator, 4, max_length=8)
    alone = []
    for (input_ids, mask), settings in (((early_ids, early_mask), first), ((late_ids, late_mask), second)):
        alone.append(prepare(model, input_ids, mask, **settings))
    with torch.inference_mode():
        expected = [
            model.generate(ids, attention_mask=mask, return_dict_in_generate=True, output_scores=True,
                           output_attentions=True, max_new_tokens=12, **settings)
            for (ids, mask), settings in (((early_ids, early_mask), first), ((late_ids, late_mask), second))
        ]  # fmt: skip
        products = []  # the rows of each output-layer product
        logits_of = model.decode_logits

        def counted_logits(features, rows, output=None):
            products.append(rows.stop - rows.start)
            return logits_of(features, rows, output)

        model.decode_logits = counted_logits
        with step_rows(model) as steps:  # the rows of each step
            loop = DecodingLoop(model)
            loop.add(alone[0])
            loop.step()
            loop.step()  # the late search joins after two steps, with a wider source
            loop.add(alone[1])
            memories = loop.memory.members if kind == "ensemble" else [loop.memory]
            assert len(loop) == 2 and all(m.keys.shape[1] == late_ids.shape[1] for m in memories)  # memory padded
            while len(loop):
                loop.step()
    for search, reference in zip(alone, expected, strict=True):
        output = search.strategy.output()
        assert torch.equal(output.sequences, reference.sequences)
        if getattr(reference, "sequences_scores", None) is not None:
            torch.testing.assert_close(output.sequences_scores, reference.sequences_scores, atol=1e-5, rtol=0)
            assert torch.equal(output.beam_indices, reference.beam_indices)
        for ours, theirs in zip(output.cross_attentions, reference.cross_attentions, strict=False):
            torch.testing.assert_close(ours[0], theirs[0], atol=1e-5, rtol=0)
    assert loop.memory is None and loop.state is None  # every row left
    # Neither search has a shortlist: one product of the whole output layer a step, over every row.
    assert products == steps


def test_seeded_sampling_of_one_sentence_equals_transformers_loop():
    model = varied_model()
    input_ids, mask, _ = copy_batch(torch.Generator().manual_seed(4), 1)
    settings = dict(do_sample=True, temperature=0.7, top_p=0.9, top_k=0)
    torch.manual_seed(11)
    search = prepare(model, input_ids, mask, **settings)
    with torch.inference_mode():
        loop = DecodingLoop(model)
        loop.add(search)
        while len(loop):
            loop.step()
        torch.manual_seed(11)
        reference = model.generate(input_ids, attention_mask=mask, max_new_tokens=12, **settings)
    assert torch.equal(search.strategy.output().sequences, reference)


def test_prepared_search_refuses_what_only_transformers_loop_decodes():
    model = varied_model()
    input_ids, mask, _ = copy_batch(torch.Generator().manual_seed(4), 2)
    with pytest.raises(ValueError, match="output_hidden_states is decoded by transformers' own loop"):
        prepare(model, input_ids, mask, output_hidden_states=True)

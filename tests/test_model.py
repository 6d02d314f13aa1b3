"""Properties of the model: shapes, masks, equivalent paths, generation and round trips."""

from __future__ import annotations

import itertools

import pytest
import torch
import transformers
from conftest import scramble_general_score
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

import hf_seq2seq_rnn
from hf_seq2seq_rnn import Seq2SeqRNNConfig, Seq2SeqRNNForConditionalGeneration, Seq2SeqRNNModel, Seq2SeqRNNState
from hf_seq2seq_rnn.attention_seq2seq_rnn import ATTENTION_CLASSES, check_registry
from hf_seq2seq_rnn.configuration_seq2seq_rnn import ATTENTION_TYPES, WITHOUT_CONTEXT
from hf_seq2seq_rnn.modeling_seq2seq_rnn import CACHE_FIELD
from hf_seq2seq_rnn.recurrent_seq2seq_rnn import Dropout, PeepholeLSTM, reverse_padded

VOCAB = 40
VARIANTS = [
    dict(cell_type=cell, attention_type=attention, bidirectional_encoder=bi, input_feeding=feed, peeky=peeky)
    for cell, attention, bi, feed, peeky in [
        ("lstm", "general", True, True, False),
        ("lstm", "dot", False, False, True),
        ("lstm", "additive", True, False, False),
        ("lstm", "none", True, False, False),
        ("gru", "general", True, False, False),
        ("gru", "additive", False, True, True),
        ("gru", "none", False, False, True),
        ("peephole_lstm", "dot", True, True, False),
        ("peephole_lstm", "none", True, False, True),
    ]
]
VARIANT_IDS = ["-".join(str(v) for v in variant.values()) for variant in VARIANTS]
# The registered attention types: a new one is tested with no edit here.
WITH_CONTEXT = [name for name, attention in ATTENTION_CLASSES.items() if attention.has_context]
PARALLEL = [name for name, attention in ATTENTION_CLASSES.items() if not attention.query_before_step]


def make_model(seed: int = 0, uniform_attention: bool = False, **overrides) -> Seq2SeqRNNForConditionalGeneration:
    """A small untrained model. Under the default init its general score's `W_a` is then drawn at
    random, unless `uniform_attention`: the zero `W_a` of that init makes every alignment uniform,
    and the equivalence tests below blind to the general query path."""
    torch.manual_seed(seed)
    settings = dict(vocab_size=VOCAB, embedding_size=12, hidden_size=16, num_layers=2, dropout=0.0)
    settings.update(overrides)
    model = Seq2SeqRNNForConditionalGeneration(Seq2SeqRNNConfig(**settings)).eval()
    if uniform_attention or model.config.init != "scaled_embeddings":
        return model
    return scramble_general_score(model, seed)


def make_batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three right-padded sources of lengths 7, 4 and 6, and labels padded with -100."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(4, VOCAB, (3, 7), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    for row, length in ((1, 4), (2, 6)):
        attention_mask[row, length:] = 0
        input_ids[row, length:] = 0
    labels = torch.randint(4, VOCAB, (3, 5), generator=generator)
    labels[1, 3:] = -100
    return input_ids, attention_mask, labels


def assert_every_parameter_gets_a_gradient(model: nn.Module, label: object = "") -> None:
    """Every trainable weight gets a finite gradient that is not zero everywhere (a weight cut off
    from the loss gets `None` or zeros), and the padding rows of the embeddings get exactly zero."""
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"{label} {name}: no gradient"
        assert torch.isfinite(parameter.grad).all(), f"{label} {name}: non-finite gradient"
        assert parameter.grad.abs().max() > 0, f"{label} {name}: gradient zero everywhere"
    for embedding in (model.model.encoder.embed_tokens, model.model.decoder.embed_tokens):
        assert embedding.weight.grad[model.config.pad_token_id].abs().max() == 0, f"{label}: padding row learns"


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_every_variant_trains_and_generates(variant):
    model = make_model(**variant).train()
    input_ids, attention_mask, labels = make_batch()
    output = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, output_attentions=True)
    assert output.logits.shape == (3, 5, VOCAB)
    assert torch.isfinite(output.loss)
    output.loss.backward()
    assert_every_parameter_gets_a_gradient(model)
    model.eval()
    for settings in (dict(), dict(num_beams=3, num_return_sequences=2), dict(do_sample=True, top_k=5, top_p=0.9)):
        generated = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=6, **settings)
        assert generated.shape[0] == 3 * settings.get("num_return_sequences", 1)
        assert (generated[:, 0] == model.config.decoder_start_token_id).all()


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_cached_generation_equals_uncached(variant):
    model = make_model(**variant)
    input_ids, attention_mask, _ = make_batch()
    cached = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=8, do_sample=False)
    uncached = model.generate(
        input_ids, attention_mask=attention_mask, max_new_tokens=8, do_sample=False, use_cache=False
    )
    assert torch.equal(cached, uncached), (
        f"cached greedy generation differs from uncached under transformers {transformers.__version__}: "
        f"the decoder state is not carried between steps correctly\ncached:\n{cached}\nuncached:\n{uncached}"
    )
    torch.manual_seed(3)
    sampled_cached = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=8, do_sample=True)
    torch.manual_seed(3)
    sampled_uncached = model.generate(
        input_ids, attention_mask=attention_mask, max_new_tokens=8, do_sample=True, use_cache=False
    )
    assert torch.equal(sampled_cached, sampled_uncached), "cached sampling differs from uncached"


def test_generation_carries_the_state_under_this_transformers_release():
    """The state transformers' own loop returns has consumed every token fed after the start token.
    (The model's own search calls the decoder directly and returns no state: its rows shrink.)"""
    model = make_model()
    input_ids, attention_mask, _ = make_batch()
    out = model.generate(
        input_ids,
        attention_mask=attention_mask,
        max_new_tokens=6,
        min_new_tokens=6,
        return_dict_in_generate=True,
        custom_generate=None,
    )
    state = out[CACHE_FIELD]
    assert isinstance(state, Seq2SeqRNNState), (
        f"generate() under transformers {transformers.__version__} returned no decoder state as {CACHE_FIELD!r}"
    )
    # The last token is never fed: generation stops after choosing it.
    assert state.steps == out.sequences.shape[1] - 1, "the decoder state was restarted between generation steps"


def test_a_state_under_an_unknown_name_is_an_error_not_a_restart():
    """A future release that renames the state again must not make every step start afresh."""
    model = make_model()
    input_ids, attention_mask, labels = make_batch()
    decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels)
    first = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids[:, :2])
    with pytest.raises(RuntimeError, match="decoder state as state=, a name this model does not read"):
        model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids[:, 2:],
            state=first[CACHE_FIELD],
        )


class _StateDroppingModel(Seq2SeqRNNForConditionalGeneration):
    """Returns no state, as the model would under a release that reads the state from another field."""

    def forward(self, *args, **kwargs):
        output = super().forward(*args, **kwargs)
        output[CACHE_FIELD] = None
        return output


def test_generation_stops_with_a_clear_error_when_the_state_is_not_carried():
    """transformers' own loop (the model's own search calls the decoder directly, not `forward`)."""
    torch.manual_seed(0)
    model = _StateDroppingModel(make_model().config).eval()
    input_ids, attention_mask, _ = make_batch()
    own_loop = dict(attention_mask=attention_mask, max_new_tokens=4, custom_generate=None)
    with pytest.raises(RuntimeError, match="the state is not carried between steps"):
        model.generate(input_ids, min_new_tokens=4, **own_loop)
    # Without the cache every step reads the whole prefix, and generation works.
    model.generate(input_ids, use_cache=False, **own_loop)


TOY_VOCAB = 6  # <pad>, <s>, </s>, <unk> and two words


def toy_model(seed: int) -> Seq2SeqRNNForConditionalGeneration:
    """An untrained model over `TOY_VOCAB` tokens, whose weights are wide enough for peaked
    distributions, with `</s>` made less likely so that the best hypotheses are not all `</s>`
    alone (with length_penalty=0 a score is a plain sum of log-probabilities, which favours short
    hypotheses)."""
    model = make_model(seed=seed, vocab_size=TOY_VOCAB, init="uniform", init_range=1.0)
    with torch.no_grad():
        model.lm_head.bias[model.config.eos_token_id] -= 2.5
    return model


def hypothesis_log_probs(model, input_ids: torch.Tensor, hypotheses: list[list[int]]) -> torch.Tensor:
    """Teacher-forced sum of token log-probabilities of each hypothesis for each source: `(B, H)`."""
    start = model.config.decoder_start_token_id
    scores = torch.zeros(input_ids.shape[0], len(hypotheses))
    for index, hypothesis in enumerate(hypotheses):
        decoder_input_ids = torch.tensor([[start, *hypothesis[:-1]]]).expand(input_ids.shape[0], -1)
        with torch.no_grad():
            logits = model(input_ids=input_ids, decoder_input_ids=decoder_input_ids).logits  # (B, n, V)
        log_probs = torch.log_softmax(logits, -1)
        target = torch.tensor(hypothesis).expand(input_ids.shape[0], -1)
        scores[:, index] = log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1).sum(1)
    return scores


def every_hypothesis(eos: int, max_new_tokens: int) -> list[list[int]]:
    """Every reply of at most `max_new_tokens` tokens: ended by `</s>`, or cut at the limit."""
    words = [token for token in range(TOY_VOCAB) if token != eos]
    hypotheses = []
    for length in range(1, max_new_tokens + 1):
        for body in itertools.product(words, repeat=length - 1):
            hypotheses.append([*body, eos])
            if length == max_new_tokens:
                hypotheses += [[*body, word] for word in words]
    return hypotheses


def reply_of(sequence: torch.Tensor, eos: int) -> list[int]:
    """The generated tokens of one row of `generate()`, without the start token and the padding after `</s>`."""
    tokens = sequence[1:].tolist()
    return tokens[: tokens.index(eos) + 1] if eos in tokens else tokens


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("max_new_tokens", "num_beams", "num_return_sequences"),
    # (TOY_VOCAB - 1) ** 2 beams keep every unfinished prefix of 2 tokens: the search is exhaustive,
    # and its best replies are the best ones of all, in order.
    [(2, TOY_VOCAB, 1), (3, TOY_VOCAB, 1), (3, (TOY_VOCAB - 1) ** 2, 5)],
)
def test_beam_search_finds_the_exhaustive_best_and_never_scores_below_greedy(
    seed, max_new_tokens, num_beams, num_return_sequences
):
    """With length_penalty=0 and a beam at least the vocabulary's size, beam search returns the
    reply that scoring every possible reply finds best, with its score; greedy never beats it.
    With a beam that holds every prefix, its best `num_return_sequences` replies are the best of
    all (those below the first come from beams other than the first: their state must follow them)."""
    model = toy_model(seed)
    eos = model.config.eos_token_id
    input_ids = torch.randint(3, TOY_VOCAB, (4, 5), generator=torch.Generator().manual_seed(seed))
    beam = model.generate(
        input_ids,
        max_new_tokens=max_new_tokens,
        num_beams=num_beams,
        num_return_sequences=num_return_sequences,
        length_penalty=0.0,
        output_scores=True,
        return_dict_in_generate=True,
    )
    greedy = model.generate(input_ids, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
    hypotheses = every_hypothesis(eos, max_new_tokens)
    scores = hypothesis_log_probs(model, input_ids, hypotheses)  # (B, H)
    best_scores, best = scores.topk(num_return_sequences, dim=1)  # (B, k), best first
    found_scores = beam.sequences_scores.view(-1, num_return_sequences)  # (B, k)
    for row in range(input_ids.shape[0]):
        for rank in range(num_return_sequences):
            found = reply_of(beam.sequences[row * num_return_sequences + rank], eos)
            assert found == hypotheses[best[row, rank]], f"row {row}: reply {rank} of beam search is {found}"
        greedy_score = scores[row, hypotheses.index(reply_of(greedy[row], eos))]
        assert found_scores[row, 0] >= greedy_score - 1e-5, f"row {row}: greedy's reply scores higher"
    torch.testing.assert_close(found_scores, best_scores, atol=1e-4, rtol=1e-4)


def test_the_toy_search_is_not_trivial():
    """The beam test above means something only if beam search and greedy disagree somewhere, and
    the best replies are not all one token."""
    differ, lengths = False, set()
    for seed in (0, 1, 2):
        model = toy_model(seed)
        input_ids = torch.randint(3, TOY_VOCAB, (4, 5), generator=torch.Generator().manual_seed(seed))
        beam = model.generate(input_ids, max_new_tokens=3, num_beams=(TOY_VOCAB - 1) ** 2, length_penalty=0.0)
        greedy = model.generate(input_ids, max_new_tokens=3, do_sample=False, num_beams=1)
        differ |= any(
            reply_of(b, model.config.eos_token_id) != reply_of(g, model.config.eos_token_id)
            for b, g in zip(beam, greedy, strict=True)
        )
        lengths |= {len(reply_of(b, model.config.eos_token_id)) for b in beam}
    assert differ and len(lengths) > 1, (differ, lengths)


@pytest.mark.parametrize("variant", VARIANTS[:3] + VARIANTS[5:6], ids=VARIANT_IDS[:3] + VARIANT_IDS[5:6])
def test_beam_scores_equal_teacher_forced_log_probabilities(variant):
    model = make_model(**variant)
    input_ids, attention_mask, _ = make_batch()
    length_penalty = 0.7
    out = model.generate(
        input_ids,
        attention_mask=attention_mask,
        max_new_tokens=6,
        num_beams=4,
        num_return_sequences=2,
        length_penalty=length_penalty,
        output_scores=True,
        return_dict_in_generate=True,
    )
    sequences = out.sequences  # (B * 2, 1 + T)
    rows = torch.arange(3).repeat_interleave(2)
    decoder_input_ids = sequences[:, :-1]
    labels = sequences[:, 1:].clone()
    # Positions after the end of sequence are padding, not part of the hypothesis.
    finished = torch.cumsum((labels == model.config.eos_token_id).long(), dim=1)
    after_end = torch.cat([torch.zeros_like(finished[:, :1]), finished[:, :-1]], dim=1) > 0
    labels[after_end] = -100
    with torch.no_grad():
        logits = model(
            input_ids=input_ids[rows], attention_mask=attention_mask[rows], decoder_input_ids=decoder_input_ids
        ).logits
    log_probs = torch.log_softmax(logits, dim=-1)
    token_log_probs = log_probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    token_log_probs = token_log_probs.masked_fill(labels == -100, 0.0)
    lengths = (labels != -100).sum(dim=1)
    # transformers divides a hypothesis' sum by its length (generated tokens) ** length_penalty.
    expected = token_log_probs.sum(dim=1) / lengths.float() ** length_penalty
    torch.testing.assert_close(out.sequences_scores, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_padded_row_generates_what_it_does_alone(variant):
    model = make_model(**variant)
    input_ids, attention_mask, _ = make_batch()
    batched = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=8, num_beams=3)
    for row in range(3):
        length = int(attention_mask[row].sum())
        alone = model.generate(input_ids[row : row + 1, :length], max_new_tokens=8, num_beams=3)
        produced = batched[row][: alone.shape[1]]
        assert torch.equal(produced, alone[0]), f"row {row}"


@pytest.mark.parametrize("attention_type", WITH_CONTEXT)
def test_attention_rows_sum_to_one_and_ignore_padding(attention_type):
    model = make_model(attention_type=attention_type, input_feeding=attention_type == "general")
    input_ids, attention_mask, labels = make_batch()
    output = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, output_attentions=True)
    (alignment,) = output.cross_attentions
    assert alignment.shape == (3, 1, 5, 7)
    torch.testing.assert_close(alignment.sum(-1), torch.ones(3, 1, 5))
    padding = attention_mask == 0  # (B, S)
    assert (alignment.masked_select(padding[:, None, None, :].expand_as(alignment)) == 0).all()
    if attention_type == "general":  # make_model's W_a: far from the uniform alignment of a zero W_a
        real = alignment.masked_fill(padding[:, None, None, :], 1.0)
        assert (alignment.amax(-1) > 1.5 * real.amin(-1)).all(), "attention is close to uniform"
    generated = model.generate(
        input_ids,
        attention_mask=attention_mask,
        max_new_tokens=4,
        output_attentions=True,
        return_dict_in_generate=True,
    )
    steps = torch.cat([step[0] for step in generated.cross_attentions], dim=2)  # (B, 1, T, S)
    torch.testing.assert_close(steps.sum(-1), torch.ones_like(steps.sum(-1)))
    assert (steps.masked_select(padding[:, None, None, :].expand_as(steps)) == 0).all()


def test_attention_none_returns_no_alignment():
    model = make_model(attention_type="none")
    input_ids, attention_mask, labels = make_batch()
    output = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, output_attentions=True)
    assert output.cross_attentions is None


@pytest.mark.parametrize("cell_type", ["lstm", "gru", "peephole_lstm"])
@pytest.mark.parametrize("attention_type", PARALLEL)
@pytest.mark.parametrize("peeky", [False, True])
def test_whole_sequence_decoder_equals_step_loop(cell_type, attention_type, peeky):
    model = make_model(cell_type=cell_type, attention_type=attention_type, peeky=peeky)
    decoder = model.model.decoder
    assert decoder.parallel
    input_ids, attention_mask, labels = make_batch()
    parallel = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, output_attentions=True)
    decoder.parallel = False
    try:
        looped = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, output_attentions=True)
    finally:
        decoder.parallel = True
    torch.testing.assert_close(parallel.logits, looped.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(parallel.loss, looped.loss, atol=1e-6, rtol=1e-6)
    if ATTENTION_CLASSES[attention_type].has_context:
        torch.testing.assert_close(parallel.cross_attentions[0], looped.cross_attentions[0], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_whole_sequence_equals_two_chunks_through_the_state(variant):
    model = make_model(**variant)
    input_ids, attention_mask, labels = make_batch()
    decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels)
    whole = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
    first = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids[:, :2])
    # The state goes back in under the name of this transformers release, and under the older one.
    for name in ("cache", "past_key_values"):
        second = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids[:, 2:],
            **{name: first[CACHE_FIELD]},
        )
        torch.testing.assert_close(torch.cat([first.logits, second.logits], 1), whole.logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
def test_padding_never_changes_a_result(variant):
    model = make_model(**variant)
    input_ids, attention_mask, labels = make_batch()
    base = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    # Different token ids under the padding, and more padding columns.
    noisy = torch.where(attention_mask.bool(), input_ids, torch.full_like(input_ids, 9))
    noisy = torch.cat([noisy, torch.full((3, 3), 7)], dim=1)
    longer_mask = torch.cat([attention_mask, torch.zeros(3, 3, dtype=attention_mask.dtype)], dim=1)
    other = model(input_ids=noisy, attention_mask=longer_mask, labels=labels)
    torch.testing.assert_close(base.logits, other.logits, atol=1e-5, rtol=1e-5)


def test_loss_ignores_label_padding():
    model = make_model()
    input_ids, attention_mask, labels = make_batch()
    output = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    log_probs = torch.log_softmax(output.logits, -1)
    keep = labels != -100
    expected = -log_probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)[keep].mean()
    torch.testing.assert_close(output.loss, expected)


def test_reverse_source_reads_backwards():
    forward_model = make_model(reverse_source=False, bidirectional_encoder=False, attention_type="none")
    backward_model = make_model(reverse_source=True, bidirectional_encoder=False, attention_type="none")
    input_ids, attention_mask, labels = make_batch()
    lengths = attention_mask.sum(1)
    reversed_ids = reverse_padded(input_ids, lengths)
    a = forward_model(input_ids=reversed_ids, attention_mask=attention_mask, labels=labels)
    b = backward_model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    torch.testing.assert_close(a.logits, b.logits)


def test_reverse_padded_keeps_padding_and_inverts():
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    lengths = torch.tensor([3, 2])
    assert reverse_padded(x, lengths).tolist() == [[3, 2, 1, 0], [5, 4, 0, 0]]
    assert torch.equal(reverse_padded(reverse_padded(x, lengths), lengths), x)


def test_peephole_lstm_without_peepholes_is_an_lstm():
    torch.manual_seed(0)
    peephole = PeepholeLSTM(5, 6, num_layers=2, bidirectional=True)
    lstm = torch.nn.LSTM(5, 6, num_layers=2, bidirectional=True, batch_first=True)
    with torch.no_grad():
        for index, layer in enumerate(peephole.layers):
            suffix = f"l{index // 2}" + ("_reverse" if index % 2 else "")
            layer.weight_ih.copy_(getattr(lstm, f"weight_ih_{suffix}"))
            layer.weight_hh.copy_(getattr(lstm, f"weight_hh_{suffix}"))
            layer.bias.copy_(getattr(lstm, f"bias_ih_{suffix}") + getattr(lstm, f"bias_hh_{suffix}"))
            layer.weight_peephole.zero_()
    x = torch.randn(2, 4, 5)
    lengths = torch.tensor([4, 2])
    out, (h, c) = peephole(x, lengths=lengths)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True)
    ref_packed, (ref_h, ref_c) = lstm(packed)
    ref, _ = torch.nn.utils.rnn.pad_packed_sequence(ref_packed, batch_first=True, total_length=4)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(h, ref_h, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(c, ref_c, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("tie", [False, True])
def test_tied_output_layer_shares_the_decoder_embedding(tie):
    model = make_model(tie_word_embeddings=tie, peeky=True)
    shared = model.lm_head.weight is model.model.decoder.embed_tokens.weight
    assert shared == tie


@pytest.mark.parametrize("attention_type", ["general", "additive"])
def test_scheduled_sampling_with_every_draw_forced(attention_type):
    """The step loop of scheduled sampling, with its draw forced each way: a ratio of 1 (every step
    reads the reference) gives the parallel teacher-forced path's logits and loss; a ratio of 0
    feeds each step the argmax of the step before, which a teacher-forced pass over those argmaxes
    confirms."""
    model = make_model(cell_type="gru", attention_type=attention_type, input_feeding=True).train()
    input_ids, attention_mask, labels = make_batch()
    decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels)
    forced = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, output_attentions=True)
    # forward() takes the parallel path at ratio 1; the step loop itself, with a draw that is always "reference":
    looped = model._scheduled_sampling(
        input_ids,
        attention_mask,
        decoder_input_ids,
        None,
        labels,
        1.0,
        output_attentions=True,
        output_hidden_states=False,
        use_cache=True,
    )
    assert type(looped) is type(forced)  # the same output class, loss included
    torch.testing.assert_close(looped.logits, forced.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(looped.loss, forced.loss, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(looped.cross_attentions[0], forced.cross_attentions[0], atol=1e-6, rtol=1e-5)
    assert isinstance(looped[CACHE_FIELD], Seq2SeqRNNState)

    sampled = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, teacher_forcing_ratio=0.0)
    fed = torch.cat([decoder_input_ids[:, :1], sampled.logits[:, :-1].argmax(-1)], dim=1)  # (B, T)
    assert not torch.equal(fed, decoder_input_ids), "the argmaxes equal the reference: nothing was checked"
    replayed = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=fed)
    torch.testing.assert_close(sampled.logits, replayed.logits, atol=1e-5, rtol=1e-5)
    expected_loss = nn.functional.cross_entropy(replayed.logits.reshape(-1, VOCAB), labels.reshape(-1))
    torch.testing.assert_close(sampled.loss, expected_loss, atol=1e-6, rtol=1e-6)
    sampled.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_auto_classes_are_registered():
    config = AutoConfig.for_model("seq2seq_rnn", vocab_size=VOCAB, hidden_size=16, embedding_size=8)
    assert isinstance(config, Seq2SeqRNNConfig)
    assert isinstance(AutoModelForSeq2SeqLM.from_config(config), Seq2SeqRNNForConditionalGeneration)
    assert isinstance(AutoModel.from_config(config), Seq2SeqRNNModel)
    assert hf_seq2seq_rnn.Seq2SeqRNNConfig is Seq2SeqRNNConfig


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cell_type", "rnn", "'lstm', 'gru', 'peephole_lstm'"),
        ("attention_type", "luong", "'none', 'dot', 'general', 'additive'"),
        ("hidden_size", 15, "must be even"),
        ("hidden_size", 0, "integer >= 1"),
        ("num_layers", 0, "integer >= 1"),
        ("vocab_size", -3, "integer >= 1"),
        ("embedding_size", 2.5, "integer >= 1"),
        ("dropout", 1.5, "between 0 and 1"),
        ("teacher_forcing_ratio", -0.1, "between 0 and 1"),
        ("label_smoothing", 2, "between 0 and 1"),
        ("input_feeding", "yes", "True or False"),
        ("pad_token_id", 100, "[0, vocab_size=40)"),
        ("init_range", 0, "positive"),
        ("init_range", float("inf"), "finite positive"),
        ("init_range", float("nan"), "finite positive"),
        ("dropout", float("nan"), "between 0 and 1"),
        ("init_range", True, "finite positive"),
    ],
)
def test_config_errors_name_what_is_accepted(field, value, message):
    with pytest.raises(ValueError, match=field) as error:
        Seq2SeqRNNConfig(**{"vocab_size": VOCAB, field: value})
    assert message in str(error.value)


def test_the_attention_registry_matches_the_configs_table():
    """The config names the attention types in a plain table (it imports no torch); the attention
    module's classes must be those, with a context exactly where the table says."""
    assert tuple(ATTENTION_CLASSES) == ATTENTION_TYPES
    assert tuple(name for name, kind in ATTENTION_CLASSES.items() if not kind.has_context) == WITHOUT_CONTEXT
    check_registry(ATTENTION_CLASSES)
    with pytest.raises(ImportError, match="add the type to both"):
        check_registry({**ATTENTION_CLASSES, "luong": ATTENTION_CLASSES["general"]})
    with pytest.raises(ImportError, match="without a context"):
        check_registry({**ATTENTION_CLASSES, "dot": ATTENTION_CLASSES["none"]})


def test_input_feeding_without_attention_is_refused():
    with pytest.raises(ValueError, match="input_feeding=True needs attention"):
        Seq2SeqRNNConfig(attention_type="none", input_feeding=True)


def test_bad_masks_are_refused():
    model = make_model()
    input_ids, attention_mask, labels = make_batch()
    left_padded = attention_mask.flip(1)
    with pytest.raises(ValueError, match="right-padded"):
        model(input_ids=input_ids, attention_mask=left_padded, labels=labels)
    empty = attention_mask.clone()
    empty[0] = 0
    with pytest.raises(ValueError, match="at least one real token"):
        model(input_ids=input_ids, attention_mask=empty, labels=labels)


@pytest.mark.parametrize(
    "variant",
    VARIANTS + [dict(tie_word_embeddings=True, peeky=True)] + [dict(attention_type=name) for name in ATTENTION_CLASSES],
    ids=VARIANT_IDS + ["tied"] + [f"attention-{name}" for name in ATTENTION_CLASSES],
)
def test_strict_save_load_round_trip(variant, tmp_path):
    model = make_model(**variant)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert type(loaded) is type(model)
    settings = {key: value for key, value in model.config.to_dict().items() if key != "_name_or_path"}
    assert {key: value for key, value in loaded.config.to_dict().items() if key != "_name_or_path"} == settings
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for name in original:
        assert torch.equal(original[name], restored[name]), name
    input_ids, attention_mask, _ = make_batch()
    assert torch.equal(
        model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=5, num_beams=2),
        loaded.eval().generate(input_ids, attention_mask=attention_mask, max_new_tokens=5, num_beams=2),
    )


def test_every_combination_of_options_trains_and_generates():
    for cell, attention, bi, feed, peeky, reverse in itertools.product(
        ["lstm", "gru", "peephole_lstm"], ATTENTION_CLASSES, *[[False, True]] * 4
    ):
        if feed and not ATTENTION_CLASSES[attention].has_context:
            continue  # input feeding needs attention
        model = make_model(
            cell_type=cell,
            attention_type=attention,
            bidirectional_encoder=bi,
            input_feeding=feed,
            peeky=peeky,
            reverse_source=reverse,
            num_layers=1,
        )
        combination = (cell, attention, bi, feed, peeky, reverse)
        input_ids, attention_mask, labels = make_batch()
        loss = model.train()(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        assert torch.isfinite(loss), combination
        loss.backward()
        assert_every_parameter_gets_a_gradient(model, combination)
        generated = model.eval().generate(
            input_ids, attention_mask=attention_mask, min_new_tokens=3, max_new_tokens=3, num_beams=2
        )  # min_new_tokens: an untrained model may pick </s> first, which would end the search early
        assert generated.shape == (3, 4), combination


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("bias", [True, False])
def test_chunked_loss_equals_cross_entropy_of_the_whole_logits(label_smoothing, bias):
    """Loss and every gradient of the chunked loss equal those of the plain one (chunks of 7 of 30 rows)."""
    from hf_seq2seq_rnn.loss_seq2seq_rnn import chunked_linear_cross_entropy

    generator = torch.Generator().manual_seed(3)
    features = torch.randn(30, 16, generator=generator, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 16, generator=generator, dtype=torch.float64, requires_grad=True)
    bias_term = torch.randn(50, generator=generator, dtype=torch.float64, requires_grad=True) if bias else None
    labels = torch.randint(0, 50, (30,), generator=generator)
    labels[[2, 9, 10, 29]] = -100
    inputs = [features, weight] + ([bias_term] if bias else [])
    chunked = chunked_linear_cross_entropy(features, weight, bias_term, labels, label_smoothing, chunk=7)
    chunked_grads = torch.autograd.grad(3.0 * chunked, inputs)
    plain = nn.functional.cross_entropy(
        nn.functional.linear(features, weight, bias_term), labels, ignore_index=-100, label_smoothing=label_smoothing
    )
    plain_grads = torch.autograd.grad(3.0 * plain, inputs)
    torch.testing.assert_close(chunked.double(), plain, atol=1e-6, rtol=1e-6)
    for mine, theirs in zip(chunked_grads, plain_grads, strict=True):
        torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=1e-6)


def test_training_loss_and_gradients_equal_those_of_the_whole_logits(monkeypatch):
    """Without dropout, the chunked training loss of the model equals the loss from its full logits."""
    from hf_seq2seq_rnn import loss_seq2seq_rnn

    model = make_model(cell_type="lstm", attention_type="general", dropout=0.0, label_smoothing=0.1)
    input_ids, attention_mask, labels = make_batch()
    model.train()
    monkeypatch.setattr(loss_seq2seq_rnn, "CHUNKED_LOSS_MIN_LOGITS", 1)  # this tiny batch takes the chunked path
    monkeypatch.setattr(loss_seq2seq_rnn, "LOSS_CHUNK_TOKENS", 4)
    output = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert output.logits is None  # the logits never existed whole
    chunked = output.loss
    chunked_grads = torch.autograd.grad(chunked, list(model.parameters()))
    decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    plain = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), label_smoothing=0.1)
    plain_grads = torch.autograd.grad(plain, list(model.parameters()))
    torch.testing.assert_close(chunked, plain, atol=1e-6, rtol=1e-6)
    for mine, theirs in zip(chunked_grads, plain_grads, strict=True):
        torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=1e-5)


def test_pytorch_init_draws_each_layers_own_scale_and_uniform_keeps_sutskevers():
    default = make_model(num_layers=1, hidden_size=32, pad_token_id=0, init="pytorch")
    uniform = make_model(num_layers=1, hidden_size=32, init="uniform", init_range=0.08)
    assert all(parameter.abs().max() <= 0.08 for parameter in uniform.parameters())
    embedding = default.model.encoder.embed_tokens.weight
    assert 0.7 < embedding[1:].std() < 1.3 and embedding[0].abs().max() == 0  # N(0, 1), padding row zero
    rnn = default.model.decoder.rnn
    forget = slice(32, 64)  # gate order i, f, g, o
    assert torch.all(rnn.bias_ih_l0[forget] + rnn.bias_hh_l0[forget] == 1)
    assert rnn.weight_hh_l0.abs().max() <= 1 / 32**0.5
    with pytest.raises(
        ValueError, match="init='xavier' is not supported; accepted values: 'scaled_embeddings', 'uniform', 'pytorch'"
    ):
        Seq2SeqRNNConfig(init="xavier")


def test_scaled_embeddings_init_is_the_default_and_scales_embeddings_by_their_width():
    """Embedding rows from N(0, 16/E) (expected norm 4 at any width), padding row zero, forget-gate
    biases summing to 1, the general score's W_a zero, every other weight from U(-0.1, 0.1)."""
    for width in (16, 256):
        model = make_model(
            uniform_attention=True,  # the default init as it is
            num_layers=1,
            hidden_size=32,
            embedding_size=width,
            pad_token_id=0,
            vocab_size=2000,
            attention_type="general",
        )
        assert model.config.init == "scaled_embeddings"
        general_score = model.model.decoder.attention.query_projection.weight
        assert general_score.shape == (32, 32) and general_score.abs().max() == 0
        for embedding in (model.model.encoder.embed_tokens.weight, model.model.decoder.embed_tokens.weight):
            assert embedding[0].abs().max() == 0
            norms = embedding[1:].norm(dim=1)
            assert 3.6 < norms.mean() < 4.4, (width, norms.mean())
        rnn = model.model.decoder.rnn
        forget = slice(32, 64)  # gate order i, f, g, o
        assert torch.all(rnn.bias_ih_l0[forget] + rnn.bias_hh_l0[forget] == 1)
        others = [
            p for n, p in model.named_parameters() if not any(key in n for key in ("embed_tokens", "bias", "query"))
        ]
        assert all(parameter.abs().max() <= 0.1 for parameter in others)
        assert max(parameter.abs().max() for parameter in others) > 0.09  # drawn over the whole range
    additive = make_model(attention_type="additive").model.decoder.attention.query_projection.weight
    assert 0.09 < additive.abs().max() <= 0.1  # the additive score's W_a stays uniform


@pytest.mark.parametrize("init", ["scaled_embeddings", "pytorch", "uniform"])
def test_saved_weights_load_unchanged_whatever_the_init_and_without_the_init_key(init, tmp_path):
    """Initialization only draws new weights: a checkpoint saved before `init` existed loads as saved."""
    import json

    model = make_model(init=init, attention_type="general")
    with torch.no_grad():  # weights unlike any init draws them (W_a starts at 0, forget biases at 1)
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter))
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["init"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    reloaded = Seq2SeqRNNForConditionalGeneration.from_pretrained(tmp_path)
    assert reloaded.config.init == "scaled_embeddings"
    loaded = reloaded.state_dict()
    assert loaded.keys() == model.state_dict().keys()
    for name, parameter in model.state_dict().items():
        assert torch.equal(parameter, loaded[name]), name


@pytest.mark.parametrize("p", [0.3, 0.5])
def test_cpu_dropout_keeps_one_minus_p_and_scales_like_nn_dropout(p):
    torch.manual_seed(0)
    dropout = Dropout(p).train()
    ones = torch.ones(200_000, requires_grad=True)
    dropped = dropout(ones)
    kept = dropped != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.005  # 200,000 draws: 0.005 is 4.5 standard deviations or more
    torch.testing.assert_close(dropped[kept], torch.full_like(dropped[kept], 1 / (1 - p)))
    dropped.sum().backward()
    torch.testing.assert_close(ones.grad, dropped.detach())  # the gradient goes through the same mask
    assert dropout(torch.ones(64, 8, dtype=torch.bfloat16)).dtype == torch.bfloat16
    assert torch.equal(dropout.eval()(ones), ones)
    assert torch.equal(Dropout(1.0).train()(ones), torch.zeros_like(ones))
    assert torch.equal(Dropout(0.0).train()(ones), ones)

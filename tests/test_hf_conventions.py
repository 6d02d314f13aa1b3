"""transformers' model conventions, checked the way its `ModelTesterMixin` checks them.

The installed wheel does not ship the library's `tests/` folder, so these are the equivalent
checks, written against our classes: hidden states (`test_hidden_states_output`), tuple and dict
outputs (`test_model_outputs_equivalence`), gradients reaching the returned hidden states
(`test_retain_grad_hidden_states_attentions`), and the cheap ones around them (forward signature,
determinism, config round trip, embeddings accessors, training step).
"""

from __future__ import annotations

import inspect

import pytest
import torch
from conftest import scramble_general_score

from hf_seq2seq_rnn import Seq2SeqRNNConfig, Seq2SeqRNNForConditionalGeneration, Seq2SeqRNNModel
from hf_seq2seq_rnn.modeling_seq2seq_rnn import Seq2SeqRNNEncoderOutput

VOCAB, BATCH, SRC_LEN, TGT_LEN = 30, 3, 7, 5
EMBEDDING, HIDDEN, LAYERS = 12, 16, 2
MODEL_CLASSES = (Seq2SeqRNNModel, Seq2SeqRNNForConditionalGeneration)
VARIANTS = {
    "lstm-general-bi": dict(cell_type="lstm", attention_type="general"),
    "gru-additive-feeding-reversed": dict(
        cell_type="gru", attention_type="additive", input_feeding=True, bidirectional_encoder=False, reverse_source=True
    ),
    "peephole-none-peeky": dict(cell_type="peephole_lstm", attention_type="none", peeky=True),
}


def make_config(**overrides) -> Seq2SeqRNNConfig:
    settings = dict(vocab_size=VOCAB, embedding_size=EMBEDDING, hidden_size=HIDDEN, num_layers=LAYERS, dropout=0.0)
    return Seq2SeqRNNConfig(**{**settings, **overrides})


def make_inputs(model_class: type, with_labels: bool = False) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(4, VOCAB, (BATCH, SRC_LEN), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 4:] = 0
    input_ids[1, 4:] = 0
    inputs = dict(
        input_ids=input_ids,
        attention_mask=attention_mask,
        decoder_input_ids=torch.randint(4, VOCAB, (BATCH, TGT_LEN), generator=generator),
    )
    if with_labels and model_class is Seq2SeqRNNForConditionalGeneration:
        inputs["labels"] = torch.randint(4, VOCAB, (BATCH, TGT_LEN), generator=generator)
    return inputs


def make_model(model_class: type, config: Seq2SeqRNNConfig, seed: int = 0):
    """A model with a random general score `W_a` (the default init's zero one attends uniformly)."""
    torch.manual_seed(seed)
    return scramble_general_score(model_class(config), seed)


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda cls: cls.__name__)
def test_hidden_states_output(model_class, variant):
    """Asked by argument or by config, both sides return their hidden states with the expected shapes."""
    config = make_config(**variant)
    model = make_model(model_class, config).eval()
    inputs = make_inputs(model_class)
    plain = model(**inputs)
    assert plain.encoder_hidden_states is None and plain.decoder_hidden_states is None
    by_argument = model(**inputs, output_hidden_states=True)
    config.output_hidden_states = True
    by_config = make_model(model_class, config).eval()(**inputs)
    for outputs in (by_argument, by_config):
        encoder_states, decoder_states = outputs.encoder_hidden_states, outputs.decoder_hidden_states
        assert [tuple(state.shape) for state in encoder_states] == [
            (BATCH, SRC_LEN, EMBEDDING),
            (BATCH, SRC_LEN, HIDDEN),
        ]
        assert [tuple(state.shape[:2]) for state in decoder_states] == [(BATCH, TGT_LEN)] * 2
        assert decoder_states[0].shape[-1] == EMBEDDING
        # The last of each is the side's last hidden state, as in every transformers encoder-decoder.
        torch.testing.assert_close(encoder_states[-1], outputs.encoder_last_hidden_state)
    torch.testing.assert_close(by_argument.encoder_hidden_states, by_config.encoder_hidden_states)
    torch.testing.assert_close(by_argument.decoder_hidden_states, by_config.decoder_hidden_states)
    # The first state is the embedding lookup itself, in source order even with reverse_source.
    embeddings = model.get_encoder().embed_tokens(inputs["input_ids"])
    torch.testing.assert_close(by_argument.encoder_hidden_states[0], embeddings)
    decoder = model.decoder if model_class is Seq2SeqRNNModel else model.model.decoder
    torch.testing.assert_close(by_argument.decoder_hidden_states[0], decoder.embed_tokens(inputs["decoder_input_ids"]))
    if model_class is Seq2SeqRNNModel:
        torch.testing.assert_close(by_argument.decoder_hidden_states[-1], by_argument.last_hidden_state)
    else:
        torch.testing.assert_close(model.lm_head(by_argument.decoder_hidden_states[-1]), by_argument.logits)
    # Asking for hidden states changes nothing else.
    torch.testing.assert_close(plain.to_tuple()[0], by_argument.to_tuple()[0])


def test_scheduled_sampling_returns_hidden_states_too():
    model = make_model(Seq2SeqRNNForConditionalGeneration, make_config(teacher_forcing_ratio=0.5)).train()
    outputs = model(**make_inputs(Seq2SeqRNNForConditionalGeneration, with_labels=True), output_hidden_states=True)
    assert [tuple(state.shape) for state in outputs.decoder_hidden_states] == [
        (BATCH, TGT_LEN, EMBEDDING),
        (BATCH, TGT_LEN, HIDDEN),
    ]
    torch.testing.assert_close(model.lm_head(outputs.decoder_hidden_states[-1]), outputs.logits)


def _assert_same(tuple_object, dict_object) -> None:
    """`ModelTesterMixin.check_equivalence`'s recursion: tensors equal, containers alike, other objects skipped."""
    if isinstance(tuple_object, (list, tuple)):
        assert isinstance(dict_object, (list, tuple)) and len(tuple_object) == len(dict_object)
        for a, b in zip(tuple_object, dict_object, strict=True):
            _assert_same(a, b)
    elif isinstance(tuple_object, torch.Tensor):
        torch.testing.assert_close(tuple_object, dict_object, rtol=0, atol=1e-5)
    else:
        assert type(tuple_object) is type(dict_object)


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda cls: cls.__name__)
def test_model_outputs_equivalence(model_class, variant):
    """`return_dict=False` gives `to_tuple()` of the `return_dict=True` output, for every extra output asked."""
    model = make_model(model_class, make_config(**variant)).eval()
    for with_labels in (False, True):
        inputs = make_inputs(model_class, with_labels)
        for extra in ({}, {"output_hidden_states": True}, {"output_attentions": True}, {"use_cache": False}):
            with torch.no_grad():
                as_tuple = model(**inputs, **extra, return_dict=False)
                as_dict = model(**inputs, **extra, return_dict=True)
            assert isinstance(as_tuple, tuple), extra
            _assert_same(as_tuple, as_dict.to_tuple())
            assert len(as_tuple) == len([value for value in as_dict.values() if value is not None])
    config = make_config(**variant)
    config.return_dict = False
    assert isinstance(make_model(model_class, config).eval()(**make_inputs(model_class)), tuple)


def test_encoder_honours_return_dict_and_hidden_states():
    model = make_model(Seq2SeqRNNModel, make_config()).eval()
    inputs = make_inputs(Seq2SeqRNNModel)
    as_dict = model.get_encoder()(inputs["input_ids"], inputs["attention_mask"], output_hidden_states=True)
    assert isinstance(as_dict, Seq2SeqRNNEncoderOutput) and len(as_dict.hidden_states) == 2
    as_tuple = model.get_encoder()(
        inputs["input_ids"], inputs["attention_mask"], output_hidden_states=True, return_dict=False
    )
    _assert_same(as_tuple, as_dict.to_tuple())


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=VARIANTS.keys())
@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda cls: cls.__name__)
def test_retain_grad_hidden_states_attentions(model_class, variant):
    """The returned hidden states are the tensors in the output's graph: gradients reach them."""
    config = make_config(**variant, dropout=0.1)
    model = make_model(model_class, config).train()
    outputs = model(**make_inputs(model_class), output_hidden_states=True, output_attentions=True)
    retained = [outputs.encoder_hidden_states[0], outputs.decoder_hidden_states[0], outputs.decoder_hidden_states[-1]]
    if config.attention_type != "none":  # without attention the decoder reads only the encoder's final state
        retained.append(outputs.encoder_hidden_states[-1])
    # Like ModelTesterMixin with has_attentions=False: the cross-attentions are returned as a
    # `(batch, 1, tgt_len, src_len)` view of the alignments the decoder used, which gradients do not reach.
    for tensor in retained:
        tensor.retain_grad()
    outputs[0].flatten()[0].backward(retain_graph=True)
    for index, tensor in enumerate(retained):
        assert tensor.grad is not None, index


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda cls: cls.__name__)
def test_forward_signature_uses_the_library_names(model_class):
    names = list(inspect.signature(model_class.forward).parameters)[1:]
    assert names[:5] == [
        "input_ids",
        "attention_mask",
        "decoder_input_ids",
        "decoder_attention_mask",
        "encoder_outputs",
    ]
    for name in ("output_attentions", "output_hidden_states", "return_dict", "use_cache"):
        assert name in names


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda cls: cls.__name__)
def test_determinism_in_eval(model_class):
    model = make_model(model_class, make_config(dropout=0.3)).eval()
    inputs = make_inputs(model_class)
    with torch.no_grad():
        first, second = model(**inputs)[0], model(**inputs)[0]
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_config_round_trips_through_json_and_keeps_output_flags(tmp_path):
    config = make_config(cell_type="gru", attention_type="additive")
    config.output_hidden_states, config.return_dict = True, False
    config.save_pretrained(tmp_path)
    loaded = Seq2SeqRNNConfig.from_pretrained(tmp_path)
    assert loaded.to_diff_dict() == config.to_diff_dict()
    assert loaded.output_hidden_states is True and loaded.return_dict is False


def test_embedding_accessors_and_a_training_step():
    model = make_model(Seq2SeqRNNForConditionalGeneration, make_config()).train()
    assert isinstance(model.get_input_embeddings(), torch.nn.Embedding)
    assert isinstance(model.get_output_embeddings(), torch.nn.Linear)
    loss = model(**make_inputs(Seq2SeqRNNForConditionalGeneration, with_labels=True)).loss
    loss.backward()
    without_gradient = [name for name, parameter in model.named_parameters() if parameter.grad is None]
    assert without_gradient == []

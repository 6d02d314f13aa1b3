"""Ensembles (`hf_seq2seq_rnn.ensemble_seq2seq_rnn`, loaded by `seq2seq_tools.ensemble`): several models
decoding as one, their log-probabilities averaged.

An ensemble of one model, or of two copies of one, decodes as that model; the first step's averaged
log-probabilities and attention are checked by hand; the compact search equals transformers' own loop
token for token on an ensemble of two different trained models; int8 quantizes every member; models
with different tokenizers are refused; the model and the ensemble both satisfy the generation protocol.
Then the two commands: `training.predict` with two `--model`
flags, and the chatbot serving `--ensemble A --ensemble B` through the real Gradio app.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_WORDS, tiny_model

from chatbot import __main__ as chatbot_cli
from hf_seq2seq_rnn import DecodingModel, Seq2SeqRNNEnsemble
from hf_seq2seq_rnn.protocol_seq2seq_rnn import DecoderMemory, DecoderState
from seq2seq_tools import loading
from seq2seq_tools.ensemble import check_same_tokenizer, load_ensemble
from seq2seq_tools.generation import generate_texts
from seq2seq_tools.quantization import quantize_int8
from training.predict import main as predict_main

try:  # the trained models of the search tests (copy their source), and of the chatbot tests (reverse it)
    from test_chatbot_inference import teacher_forced_attention, tiny_model_dir, train_tiny_model  # noqa: F401
    from test_search import assert_same_search, both, sources, varied_model
except ModuleNotFoundError:
    from tests.test_chatbot_inference import teacher_forced_attention, tiny_model_dir, train_tiny_model  # noqa: F401
    from tests.test_search import assert_same_search, both, sources, varied_model

GENERATE = dict(max_new_tokens=20, return_dict_in_generate=True, output_scores=True, output_logits=True)


def two_models() -> tuple:
    """Two different small models trained to copy their source (an LSTM with general attention and
    input feeding, a GRU with dot attention), over the same 30 token ids."""
    return varied_model("lstm-general-feed"), varied_model("gru-dot")


def generated(model, beams: int, **settings):
    input_ids, mask = sources()
    return model.generate(input_ids, attention_mask=mask, num_beams=beams, **GENERATE, **settings)


def step_log_probs(output) -> torch.Tensor:
    """The log-probabilities generate() searched at each step, `(rows, steps, vocab)`."""
    return torch.log_softmax(torch.stack(output.logits, dim=1), dim=-1)


@pytest.mark.parametrize("beams", [1, 4], ids=["greedy", "beam4"])
def test_an_ensemble_of_one_model_decodes_as_that_model(beams):
    model = varied_model()
    alone, ensemble = generated(model, beams), generated(Seq2SeqRNNEnsemble([model]), beams)
    assert torch.equal(alone.sequences, ensemble.sequences)
    torch.testing.assert_close(step_log_probs(ensemble), step_log_probs(alone), atol=1e-5, rtol=0)
    if beams > 1:
        torch.testing.assert_close(ensemble.sequences_scores, alone.sequences_scores, atol=1e-5, rtol=0)


@pytest.mark.parametrize("beams", [1, 4], ids=["greedy", "beam4"])
def test_an_ensemble_of_two_copies_decodes_as_the_model(beams):
    model = varied_model("gru-dot")
    ensemble = Seq2SeqRNNEnsemble([model, copy.deepcopy(model)])
    alone, both_copies = generated(model, beams), generated(ensemble, beams)
    assert torch.equal(alone.sequences, both_copies.sequences)
    torch.testing.assert_close(step_log_probs(both_copies), step_log_probs(alone), atol=1e-5, rtol=0)
    if beams > 1:
        torch.testing.assert_close(both_copies.sequences_scores, alone.sequences_scores, atol=1e-5, rtol=0)


def test_the_model_and_the_ensemble_satisfy_the_generation_protocol():
    """What the search loop calls (`protocol_seq2seq_rnn.DecodingModel`): both classes offer it, with
    state and memory classes that offer theirs; something without `decode_step` does not."""
    model = varied_model()
    ensemble = Seq2SeqRNNEnsemble([model, varied_model("gru-dot")])
    for decoder in (model, ensemble):
        assert isinstance(decoder, DecodingModel), type(decoder).__name__
        assert issubclass(decoder.state_class, DecoderState) and issubclass(decoder.memory_class, DecoderMemory)
        input_ids, mask = sources()
        with torch.no_grad():
            memory, state = decoder.start_decoding(decoder.get_encoder()(input_ids, mask), mask)
        assert isinstance(memory, decoder.memory_class) and isinstance(state, decoder.state_class)
    assert not isinstance(model.model.decoder, DecodingModel)  # no start_decoding, no has_attention


def test_an_ensemble_attends_when_any_member_does_and_leaves_the_config_alone():
    """The first member has no attention: the ensemble keeps its config as it is (`attention_type`
    "none") and answers `has_attention` itself; its alignment is the attending member's."""
    plain, attending = varied_model("lstm-none-peeky"), varied_model("gru-dot")
    assert not plain.has_attention and attending.has_attention
    ensemble = Seq2SeqRNNEnsemble([plain, attending])
    assert ensemble.config.attention_type == "none" and ensemble.has_attention
    assert not Seq2SeqRNNEnsemble([plain, copy.deepcopy(plain)]).has_attention
    input_ids, mask = sources()
    start = torch.full((input_ids.shape[0], 1), plain.config.decoder_start_token_id)
    with torch.no_grad():
        alone = attending(input_ids, mask, decoder_input_ids=start, output_attentions=True).cross_attentions[0]
        together = ensemble(input_ids, mask, decoder_input_ids=start, output_attentions=True).cross_attentions[0]
    torch.testing.assert_close(together, alone, atol=1e-6, rtol=0)
    # The coverage penalty reads has_attention: it changes the beam search of this ensemble.
    settings = dict(num_beams=4, max_new_tokens=12, return_dict_in_generate=True, output_scores=True)
    plain_scores = ensemble.generate(input_ids, attention_mask=mask, **settings).sequences_scores
    covered = ensemble.generate(input_ids, attention_mask=mask, coverage_penalty=1.0, **settings).sequences_scores
    assert not torch.allclose(plain_scores, covered)


def test_the_first_step_is_the_mean_of_the_members_log_probabilities_and_attention():
    first, second = two_models()
    ensemble = Seq2SeqRNNEnsemble([first, second])
    input_ids, mask = sources()
    start = torch.full((input_ids.shape[0], 1), first.config.decoder_start_token_id)
    with torch.no_grad():
        members = [model(input_ids, mask, decoder_input_ids=start, output_attentions=True) for model in (first, second)]
        by_hand = (torch.log_softmax(members[0].logits, -1) + torch.log_softmax(members[1].logits, -1)) / 2
        attention_by_hand = (members[0].cross_attentions[0] + members[1].cross_attentions[0]) / 2  # (B, 1, 1, S)
        whole = ensemble(input_ids, mask, decoder_input_ids=start, output_attentions=True)
        memory, state = ensemble.start_decoding(ensemble.get_encoder()(input_ids, mask), mask)
        step_logits, _, step_alignment = ensemble.decode_step(start[:, 0], memory, state)
    assert not torch.allclose(members[0].logits, members[1].logits, atol=0.1)  # two models that differ
    torch.testing.assert_close(whole.logits, by_hand, atol=1e-6, rtol=0)
    torch.testing.assert_close(step_logits, by_hand[:, 0], atol=1e-6, rtol=0)
    torch.testing.assert_close(whole.cross_attentions[0], attention_by_hand, atol=1e-6, rtol=0)
    torch.testing.assert_close(step_alignment, attention_by_hand[:, 0, 0], atol=1e-6, rtol=0)
    # generate() searches these: its first step's scores are their log-softmax, under both loops.
    for custom in ({}, {"custom_generate": None}):
        output = ensemble.generate(input_ids, attention_mask=mask, **GENERATE, output_attentions=True, **custom)
        torch.testing.assert_close(output.logits[0], by_hand[:, 0], atol=1e-6, rtol=0)
        torch.testing.assert_close(output.cross_attentions[0][0], attention_by_hand, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "settings",
    [
        dict(num_beams=1),
        dict(num_beams=3),
        dict(num_beams=5, num_return_sequences=3),
        dict(num_beams=4, length_penalty=0.0),
    ],
    ids=["greedy", "beam3", "beam5-nbest3", "beam4-no-length-penalty"],
)
def test_the_compact_search_equals_transformers_loop_on_two_models(settings):
    first, second = two_models()
    ensemble = Seq2SeqRNNEnsemble([first, second])
    ours, theirs = both(ensemble, **settings)
    assert_same_search(ours, theirs, settings["num_beams"])  # sequences, scores, beam indices, attention
    # ... and an ensemble is neither of its members alone.
    alone = [both(model, **settings)[0].sequences for model in (first, second)]
    assert not any(torch.equal(ours.sequences, one) for one in alone)


def test_the_ensembles_beam_scores_are_its_teacher_forced_log_probabilities():
    """`sequences_scores` = the sum over the hypothesis of log-softmax(mean of the members'
    log-probabilities), over its length: the ensemble's forward pass on the whole hypothesis."""
    ensemble = Seq2SeqRNNEnsemble(two_models())
    input_ids, mask = sources()
    output = ensemble.generate(input_ids, attention_mask=mask, num_beams=3, num_return_sequences=2, **GENERATE)
    for row in range(output.sequences.shape[0]):
        steps = int(output.beam_indices[row].ne(-1).sum())
        tokens = output.sequences[row, : steps + 1]  # the start token, then the hypothesis
        source = row // 2
        with torch.no_grad():
            logits = ensemble(
                input_ids[source : source + 1], mask[source : source + 1], decoder_input_ids=tokens[None, :-1]
            ).logits
        total = torch.log_softmax(logits[0], -1).gather(1, tokens[1:, None]).sum()
        assert float(output.sequences_scores[row]) == pytest.approx(float(total) / steps, abs=1e-4)


def test_int8_quantizes_every_member_and_decodes_as_the_ensemble_of_the_int8_members():
    first, second = two_models()
    quantized = quantize_int8(Seq2SeqRNNEnsemble([first, second]))
    dynamic = torch.ao.nn.quantized.dynamic
    assert all(isinstance(member.lm_head, dynamic.Linear) for member in quantized.members)
    assert type(first.lm_head) is torch.nn.Linear  # a copy: the fp32 members are untouched
    of_int8_members = Seq2SeqRNNEnsemble([quantize_int8(first), quantize_int8(second)])
    for beams in (1, 3):
        ours, theirs = generated(quantized, beams), generated(of_int8_members, beams)
        assert torch.equal(ours.sequences, theirs.sequences)
        for step_ours, step_theirs in zip(ours.scores, theirs.scores, strict=True):
            assert torch.equal(step_ours, step_theirs)
    # The int8 members' arithmetic, averaged by hand.
    input_ids, mask = sources()
    start = torch.full((input_ids.shape[0], 1), first.config.decoder_start_token_id)
    with torch.no_grad():
        members = [
            torch.log_softmax(member(input_ids, mask, decoder_input_ids=start).logits, -1)
            for member in quantized.members
        ]
        whole = quantized(input_ids, mask, decoder_input_ids=start).logits
    torch.testing.assert_close(whole, (members[0] + members[1]) / 2, atol=1e-6, rtol=0)


OTHER_TEXTS = [" ".join(reversed(TINY_WORDS[i:] + TINY_WORDS[:i])) + " blue green" for i in range(12)] * 10


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, str]:
    """Three untrained tiny models saved with their tokenizers: "a" and "b" (different weights and
    attention, the same tokenizer) and "other" (a tokenizer trained on other text)."""
    folders = {}
    for name, texts, settings in (
        ("a", None, dict(seed=0, attention_type="general")),
        ("b", None, dict(seed=1, attention_type="dot", cell_type="gru")),
        ("other", OTHER_TEXTS, dict(seed=2)),
    ):
        model, tokenizer = tiny_model(**({"texts": texts} if texts else {}), num_layers=1, **settings)
        folder = tmp_path_factory.mktemp("ensemble") / name
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[name] = str(folder)
    return folders


def test_models_with_different_tokenizers_are_refused_naming_both(saved):
    with pytest.raises(ValueError, match="different tokenizers") as refused:
        load_ensemble([saved["a"], saved["other"]])
    assert saved["a"] in str(refused.value) and saved["other"] in str(refused.value)
    assert f"--tokenizer {saved['a']})" in str(refused.value)  # what to do about it
    _, tokenizer = tiny_model()
    changed = copy.deepcopy(tokenizer)
    changed.pad_token_id = tokenizer.eos_token_id
    with pytest.raises(ValueError, match=r"A and B have different tokenizers \(special token ids \(pad_token_id\)\)"):
        check_same_tokenizer([tokenizer, changed], ["A", "B"])
    check_same_tokenizer([tokenizer, copy.deepcopy(tokenizer)], ["A", "B"])  # the same: accepted


def test_models_whose_configs_disagree_on_the_vocabulary_are_refused():
    small, _ = tiny_model()
    large, _ = tiny_model(vocab_size=400, texts=OTHER_TEXTS)
    with pytest.raises(ValueError, match="model 1 and model 2 have different vocabularies"):
        Seq2SeqRNNEnsemble([small, large])


def test_predict_with_two_models_decodes_with_their_ensemble_and_names_both(saved, tmp_path, capsys):
    sources_path = tmp_path / "test.tsv"
    texts = [" ".join(TINY_WORDS[i : i + 3 + i % 4]) for i in range(6)]
    sources_path.write_text("source\ttarget\n" + "".join(f"{text}\t{text}\n" for text in texts), encoding="utf-8")
    output = tmp_path / "hyp.txt"
    arguments = ["--model", saved["a"], "--model", saved["b"], "--dataset", str(sources_path), "--output", str(output)]
    arguments += [
        "--num-beams",
        "3",
        "--n-best",
        "2",
        "--max-new-tokens",
        "6",
        "--alignments",
        str(tmp_path / "a.jsonl"),
    ]
    assert predict_main([*arguments, "--num-threads", "1"]) == 0
    assert f"ensemble of 2 models: {saved['a']}, {saved['b']}" in capsys.readouterr().out
    summary = json.loads((tmp_path / "hyp.txt.summary.json").read_text(encoding="utf-8"))
    assert summary["model"] == [saved["a"], saved["b"]]
    ensemble, tokenizer = load_ensemble([saved["a"], saved["b"]])
    expected = generate_texts(ensemble, tokenizer, texts, num_beams=3, num_return_sequences=2, max_new_tokens=6)
    assert output.read_text(encoding="utf-8").splitlines() == [result.text for result in expected]
    for path in (saved["a"], saved["b"]):  # each member counts: the ensemble decodes as neither alone
        alone = generate_texts(loading.load_model(path), tokenizer, texts, num_beams=3, max_new_tokens=6)
        assert [result.text for result in alone] != [result.text for result in expected]
    records = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [len(record["hypotheses"]) for record in records] == [2] * len(texts)
    for record in records:
        for hypothesis in record["hypotheses"]:
            assert all(sum(row) == pytest.approx(1.0, abs=1e-4) for row in hypothesis["attention"])


def test_predict_refuses_models_with_different_tokenizers_with_one_line(saved, tmp_path, capsys):
    sources_path = tmp_path / "test.tsv"
    sources_path.write_text("source\ttarget\nred cat\tred cat\n", encoding="utf-8")
    output = tmp_path / "hyp.txt"
    arguments = ["--model", saved["a"], "--model", saved["other"], "--dataset", str(sources_path)]
    assert predict_main([*arguments, "--output", str(output), "--num-threads", "1"]) == 2
    error = capsys.readouterr().err
    lines = [line for line in error.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "different tokenizers" in lines[0] and "Traceback" not in error
    assert saved["a"] in lines[0] and saved["other"] in lines[0]
    assert not output.exists()


def test_the_chatbot_refuses_an_ensemble_of_one_or_of_different_tokenizers(saved, capsys):
    assert chatbot_cli.main(["--ensemble", saved["a"]]) == 2
    assert "--ensemble needs two models or more" in capsys.readouterr().err
    assert chatbot_cli.main(["--ensemble", saved["a"], "--ensemble", saved["other"], "--num-threads", "1"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "different tokenizers" in lines[0]


@pytest.fixture(scope="module")
def second_reverser(tmp_path_factory) -> Path:
    """Another phrase reverser, with dot attention and 150 steps (the chatbot tests' tokenizer: the same
    corpus and seed), so that its attention differs from the first's."""
    return train_tiny_model(tmp_path_factory.mktemp("dot") / "model", "dot", steps=150, name="tiny-reverser-dot")


@pytest.mark.slow
def test_the_chatbot_serves_an_ensemble_that_replies_streams_and_shows_the_mean_attention(
    tiny_model_dir, second_reverser, tmp_path
):
    gradio_client = pytest.importorskip("gradio_client", reason="gradio_client is not installed (the [chat] extra)")
    from benchmarks.chatbot_server import ChatbotServer
    from chatbot.inference import (
        DecodingSettings,
        generate_reply,
        load_served_ensemble,
        load_served_model,
        stream_reply,
    )

    members = [str(tiny_model_dir), str(second_reverser)]
    server = ChatbotServer(
        ["--model", members[0], "--ensemble", members[0], "--ensemble", members[1]], log=tmp_path / "server.log"
    )
    try:
        client = gradio_client.Client(server.wait_ready().url, verbose=False)
        name = "ensemble: tiny-reverser + tiny-reverser-dot"
        here = load_served_ensemble(members)
        assert here.info.name == name
        message = "red cat dog tree"
        expected = generate_reply(here, message, DecodingSettings(mode="beam", num_beams=5, max_new_tokens=20))
        history, _, plot, _, attention, _ = client.predict(message, [], name, "beam", 5, 1.0, 1.0, 20, api_name="/chat")
        reply = history[1]["content"]  # a list of parts, as the page's chatbot holds it
        assert " ".join(part["text"] for part in reply) == expected.text and expected.text
        assert attention["weights"] == expected.attention.to_dict()["weights"]
        heatmap = json.loads(plot["plot"])["data"][0]
        assert heatmap["type"] == "heatmap" and heatmap["z"] == attention["weights"]
        # The heatmap is the mean of the members' attention over that reply, which differ.
        each = [teacher_forced_attention(load_served_model(path), message, expected.token_ids) for path in members]
        np.testing.assert_allclose(attention["weights"], (each[0] + each[1]) / 2, atol=1e-4)
        assert np.abs(each[0] - each[1]).max() > 0.05
        # Greedy search streams, token by token, to the ensemble's own greedy reply. In this process the
        # streamer hands over every token; through the server, how many updates a 3-token reply makes
        # depends on when the page's generator reads (a reply decoded before its first read is one
        # update), so there each update is a prefix of the reply and the last is the reply.
        settings = DecodingSettings(mode="greedy", max_new_tokens=20)
        greedy = generate_reply(here, "sun moon water", settings)
        grown = [reply.text for reply in stream_reply(here, "sun moon water", settings) if not reply.done]
        assert len(grown) >= 2 and all(greedy.text.startswith(text) for text in grown) and grown[-1] == greedy.text
        job = client.submit("sun moon water", name, "greedy", 4, 1.0, 1.0, 20, api_name="/translate")
        texts = list(dict.fromkeys(output[0] for output in job))
        assert all(greedy.text.startswith(text) for text in texts) and texts[-1] == greedy.text
        assert job.outputs()[-1][3]["weights"] == greedy.attention.to_dict()["weights"]
    finally:
        server.stop()

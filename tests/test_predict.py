"""`python -m training.predict`: decode a test set, score it as training does, write n-best lists and
alignments; and the pieces under it (`generate_texts` n-best lists and scores, attention read through
`beam_indices`, int8 decoding).

The command runs as a real subprocess on a model trained here on the embedded demo; its BLEU must
equal the training run's own evaluation of the same pairs. The attention it exports is checked
against a teacher-forced forward pass of the same hypothesis, the ground truth for what the model
attended to while producing it, under greedy search and beam search.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_model

from hf_seq2seq_rnn import Seq2SeqRNNForConditionalGeneration
from seq2seq_tools.attention import hard_alignment
from seq2seq_tools.generation import encode_texts, generate_texts
from seq2seq_tools.quantization import quantize_int8
from training import demos
from training.data import DataSpec, pairs_from_splits
from training.errors import TrainingInputError
from training.predict import main
from training.predict_options import PredictSettings
from training.prediction import _read_dataset, _read_text_file, default_shortlist, one_line, write_output
from training.train import main as train_main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The demo config cut to 150 steps: good enough to translate, not so good that every output is right
# (validation BLEU about 50), so that the equalities below compare real errors. Its final evaluation
# (beam 2, 40 validation pairs) is in training_info.json.
DEMO = dict(demo_size=6000, validation_size=40, seed=42)
TRAIN = [
    "--config", os.path.join(REPO, "training", "configs", "translation_demo.yaml"), "--demo-size", str(DEMO["demo_size"]),
    "--validation-size", str(DEMO["validation_size"]), "--max-eval-samples", str(DEMO["validation_size"]),
    "--num-beams", "2", "--max-steps", "150", "--eval-steps", "150", "--checkpointing-steps", "150",
    "--eval-on-start", "false", "--num-samples", "0", "--sample-prompts", "[]", "--report-to", "none",
    "--num-threads", "1", "--mixed-precision", "no",
]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> str:
    """The folder of the demo model trained for 150 steps (15-25 s on one thread)."""
    output = tmp_path_factory.mktemp("predict") / "model"
    assert train_main([*TRAIN, "--output-dir", str(output)]) == 0
    metrics = json.loads((output / "training_info.json").read_text(encoding="utf-8"))["metrics"]
    assert 10 < metrics["bleu"] < 100, metrics  # neither silent nor perfect: the checks below need errors
    return str(output)


@pytest.fixture(scope="module")
def validation_tsv(tmp_path_factory) -> str:
    """The run's validation pairs, re-made as training made them, as a `.tsv` test file."""
    splits = demos.demo_splits("translation", "en", "fr", DEMO["demo_size"], DEMO["seed"])
    spec = DataSpec(dataset="demo", validation_size=DEMO["validation_size"], source_lang="en", target_lang="fr")
    pairs, _ = pairs_from_splits(splits, spec, source="demo")
    path = tmp_path_factory.mktemp("data") / "valid.tsv"
    rows = zip(pairs["validation"]["source"], pairs["validation"]["target"], strict=True)
    path.write_text("source\ttarget\n" + "".join(f"{s}\t{t}\n" for s, t in rows), encoding="utf-8")
    return str(path)


def run_predict(*arguments: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`python -m training.predict` in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "training.predict", "--num-threads", "1", *arguments],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")},
    )


def sources_and_references(path: str) -> tuple[list[str], list[str]]:
    rows = [line.split("\t") for line in Path(path).read_text(encoding="utf-8").splitlines()[1:]]
    return [row[0] for row in rows], [row[1] for row in rows]


def load(folder: str):
    from training.prediction import load_model_and_tokenizer

    return load_model_and_tokenizer(folder)


@pytest.mark.slow
def test_predict_writes_outputs_in_input_order_and_scores_them_as_training_did(trained, validation_tsv, tmp_path):
    output = tmp_path / "hyp.txt"
    # Training's evaluations ran before it learned the shortlist that is predict's default: without it here.
    flags = ["--batch-size", "7", "--shortlist", "none"]
    result = run_predict("--model", trained, "--dataset", validation_tsv, "--output", str(output), *flags)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "hyp.txt.summary.json").read_text(encoding="utf-8"))
    trained_scores = json.loads((Path(trained) / "training_info.json").read_text(encoding="utf-8"))["metrics"]
    assert "shortlist" not in summary["settings"] and (Path(trained) / "shortlist.safetensors").is_file()
    # The same pairs, the saved generation settings (beam 2), the same metric modules: the same numbers.
    assert summary["metrics"]["bleu"] == pytest.approx(trained_scores["bleu"], abs=1e-9)
    assert summary["metrics"]["chrf"] == pytest.approx(trained_scores["chrf"], abs=1e-9)
    assert f"bleu {trained_scores['bleu']:.2f}" in result.stdout
    assert summary["settings"]["num_beams"] == 2 and summary["sentences"] == DEMO["validation_size"]
    assert summary["sentences_per_second"] > 0 and summary["cpu"]["torch_capability"]
    assert "sent/s" in result.stderr  # the progress bar's rate
    # Batches of 7 sorted by length, written back in the input's order: each line is its source's own output.
    lines = output.read_text(encoding="utf-8").splitlines()
    sources, _ = sources_and_references(validation_tsv)
    model, tokenizer = load(trained)
    for source, line in list(zip(sources, lines, strict=True))[:10]:
        [alone] = generate_texts(model, tokenizer, [source], num_beams=2, max_new_tokens=32)
        assert line == alone.text


@pytest.mark.slow
def test_n_best_lists_and_alignments_agree_with_each_other(trained, validation_tsv, tmp_path):
    paths = {name: tmp_path / name for name in ("hyp.txt", "nbest.txt", "align.jsonl", "align.txt")}
    result = run_predict(
        "--model", trained, "--dataset", validation_tsv, "--output", str(paths["hyp.txt"]),
        "--num-beams", "3", "--n-best", "3", "--n-best-output", str(paths["nbest.txt"]),
        "--alignments", str(paths["align.jsonl"]), "--hard-alignments", str(paths["align.txt"]),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    best = paths["hyp.txt"].read_text(encoding="utf-8").splitlines()
    nbest = [line.split(" ||| ") for line in paths["nbest.txt"].read_text(encoding="utf-8").splitlines()]
    records = [json.loads(line) for line in paths["align.jsonl"].read_text(encoding="utf-8").splitlines()]
    hard = paths["align.txt"].read_text(encoding="utf-8").splitlines()
    assert len(best) == len(records) == len(hard) == DEMO["validation_size"] and len(nbest) == 3 * len(best)
    for index, (line, record, pairs) in enumerate(zip(best, records, hard, strict=True)):
        mine = nbest[3 * index : 3 * index + 3]
        assert [int(entry[0]) for entry in mine] == [index] * 3 and mine[0][1] == line
        scores = [float(entry[2]) for entry in mine]
        assert scores == sorted(scores, reverse=True)  # best first
        assert [h["text"] for h in record["hypotheses"]] == [entry[1] for entry in mine]
        for hypothesis in record["hypotheses"]:
            weights = np.array(hypothesis["attention"])  # (output tokens, source tokens)
            assert weights.shape == (len(hypothesis["output_tokens"]), len(record["source_tokens"]))
            np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-4)
        top = record["hypotheses"][0]
        weights = np.array(top["attention"])
        real_sources = [i for i, token in enumerate(record["source_tokens"]) if token != "</s>"]
        expected = [
            f"{real_sources[int(np.argmax(weights[j, real_sources]))]}-{j}"
            for j, token in enumerate(top["output_tokens"])
            if token != "</s>"
        ]
        assert pairs.split() == expected


@pytest.mark.slow
def test_plain_text_on_stdin_decodes_to_stdout_without_metrics(trained, validation_tsv, tmp_path):
    sources, _ = sources_and_references(validation_tsv)
    result = run_predict("--model", trained, "--dataset", "-", "--output", "-", stdin="\n".join(sources[:5]) + "\n")
    assert result.returncode == 0, result.stderr
    model, tokenizer = load(trained)
    shortlist = default_shortlist(model, "translation", tokenizer)  # predict's default: the model learned one
    assert shortlist is not None
    settings = dict(num_beams=2, max_new_tokens=32, shortlist=shortlist)
    expected = [r.text for r in generate_texts(model, tokenizer, sources[:5], **settings)]
    assert result.stdout.splitlines() == expected
    assert "no references, no metrics" in result.stderr
    references = tmp_path / "references.txt"
    references.write_text("".join(line + "\n" for line in expected), encoding="utf-8")
    result = run_predict(
        "--model", trained, "--dataset", "-", "--output", "-", "--references", str(references),
        stdin="\n".join(sources[:5]) + "\n",
    )  # fmt: skip
    assert result.returncode == 0 and "bleu 100.00, chrf 100.00" in result.stderr, result.stderr


TEXTS = ["red cat", "the sun and the moon over water", "dog", "fire water earth wind"]
VARIANTS = {
    "luong-general": dict(cell_type="lstm", attention_type="general", bidirectional_encoder=True),
    "bahdanau-input-feeding-gru": dict(cell_type="gru", attention_type="additive", input_feeding=True),
    "peephole-dot": dict(cell_type="peephole_lstm", attention_type="dot", num_layers=2),
}


def teacher_forced(model, tokenizer, text: str, token_ids: list[int]) -> tuple[np.ndarray, float]:
    """The cross-attention `(len(token_ids), src_len)` and log-probability sum of reading `token_ids`
    as the decoder's input (a teacher-forced pass): what the model attended to while producing them."""
    encoded, _ = encode_texts(tokenizer, [text])
    decoder_input_ids = torch.tensor([[model.config.decoder_start_token_id, *token_ids[:-1]]])
    with torch.no_grad():
        outputs = model(**encoded, decoder_input_ids=decoder_input_ids, output_attentions=True)
    log_probs = torch.log_softmax(outputs.logits[0], dim=-1)  # (T, vocab)
    total = log_probs.gather(1, torch.tensor(token_ids)[:, None]).sum().item()
    return outputs.cross_attentions[-1][0, 0].numpy(), total  # (T, S)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("beams", [1, 3], ids=["greedy", "beam3"])
def test_exported_attention_and_scores_are_those_of_the_returned_hypothesis(variant, beams):
    model, tokenizer = tiny_model(**VARIANTS[variant])
    settings = dict(num_beams=beams, num_return_sequences=beams, max_new_tokens=8, do_sample=False)
    results = generate_texts(model, tokenizer, TEXTS, batch_size=3, with_attention=True, with_scores=True, **settings)
    for text, result in zip(TEXTS, results, strict=True):
        assert len(result.alternatives) == beams - 1
        for hypothesis in [result, *result.alternatives]:
            ids = hypothesis.token_ids
            weights, total = teacher_forced(model, tokenizer, text, ids)
            # Read through beam_indices, the map is the hypothesis's own, not a running beam's.
            np.testing.assert_allclose(hypothesis.attention.weights, weights, atol=1e-5)
            assert hypothesis.score == pytest.approx(total / len(ids), abs=1e-4)  # length_penalty 1
        if beams == 1:  # greedy: also the very rows generate() returned for this text
            encoded, _ = encode_texts(tokenizer, [text])
            outputs = model.generate(**encoded, **settings, output_attentions=True, return_dict_in_generate=True)
            rows = [step[-1][0, 0, 0].numpy() for step in outputs.cross_attentions[: len(result.token_ids)]]
            np.testing.assert_allclose(result.attention.weights, np.stack(rows), atol=1e-6)


def test_hard_alignment_skips_end_of_sentence_tokens():
    from seq2seq_tools.attention import AttentionMap, pharaoh

    weights = np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.0, 0.0, 1.0]])  # (output, source)
    attention = AttentionMap(["a", "b", "</s>"], ["x", "y", "</s>"], weights)
    assert pharaoh(hard_alignment(attention)) == "1-0 0-1"


def test_an_output_the_length_cap_stopped_exports_the_attention_of_its_own_tokens_only():
    """In a batch, an output that the length cap stopped without `</s>` is padded to the longest; its
    attention ends with its last token, as its tokens do (the padding steps hold zeros, no alignment)."""
    model, tokenizer = tiny_model(**VARIANTS["bahdanau-input-feeding-gru"])
    with torch.no_grad():
        model.lm_head.bias[tokenizer.eos_token_id] = -1e4  # nothing ends by itself
    settings = dict(num_beams=1, max_new_tokens=12, max_length_a=0.5, max_length_b=1)
    results = generate_texts(model, tokenizer, TEXTS, with_attention=True, **settings)
    assert len({len(result.token_ids) for result in results}) > 1  # the batch padded the shorter ones
    for result in results:
        attention = result.attention
        assert len(attention.output_labels) == attention.weights.shape[0] == len(result.token_ids)
        np.testing.assert_allclose(attention.weights.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_int8_decoding_stays_close_to_fp32_and_quantizes_the_recurrent_layers(trained, validation_tsv, tmp_path):
    scores = {}
    for quantize in ("none", "int8"):
        output = tmp_path / f"{quantize}.txt"
        result = run_predict(
            "--model", trained, "--dataset", validation_tsv, "--output", str(output), "--quantize", quantize
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        scores[quantize] = json.loads((tmp_path / f"{quantize}.txt.summary.json").read_text())["metrics"]["chrf"]
    assert abs(scores["int8"] - scores["none"]) <= 2.0, scores
    model, _ = load(trained)
    quantized = quantize_int8(model)
    dynamic = torch.ao.nn.quantized.dynamic
    assert isinstance(quantized.model.encoder.rnn, dynamic.LSTM) and isinstance(quantized.lm_head, dynamic.Linear)
    assert isinstance(quantized.model.decoder.rnn, dynamic.LSTM)
    assert type(model.model.encoder.rnn) is torch.nn.LSTM  # a copy: the fp32 model is untouched


@pytest.mark.parametrize("variant", ["peephole-dot", "bahdanau-input-feeding-gru"])
def test_int8_runs_every_cell_type(variant):
    model, tokenizer = tiny_model(**VARIANTS[variant])
    quantized = quantize_int8(model)
    fp32 = generate_texts(model, tokenizer, TEXTS, max_new_tokens=6, num_beams=2)
    int8 = generate_texts(quantized, tokenizer, TEXTS, max_new_tokens=6, num_beams=2)
    assert len(int8) == len(fp32) and all(isinstance(result.text, str) for result in int8)
    with torch.no_grad():  # same inputs, near outputs: the int8 weights are a rounding of the fp32 ones
        encoded, _ = encode_texts(tokenizer, TEXTS)
        start = torch.full((len(TEXTS), 1), model.config.decoder_start_token_id)
        exact = model(**encoded, decoder_input_ids=start).logits.softmax(-1)
        rounded = quantized(**encoded, decoder_input_ids=start).logits.softmax(-1)
    assert (exact - rounded).abs().max().item() < 0.05


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> str:
    """An untrained tiny model saved as training saves one (beam 2): enough for input checks."""
    from transformers import GenerationConfig

    model, tokenizer = tiny_model(**VARIANTS["luong-general"])
    model.generation_config = GenerationConfig(
        num_beams=2, max_new_tokens=8, early_stopping=True, decoder_start_token_id=model.config.decoder_start_token_id
    )
    folder = tmp_path_factory.mktemp("tiny") / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def bad_cases(tmp_path, trained: str, validation_tsv: str) -> dict[str, tuple[list[str], str]]:
    """name -> (arguments, a part of the one-line message). Every row must exit with code 2."""
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    short_refs = tmp_path / "refs.txt"
    short_refs.write_text("one\ntwo\n", encoding="utf-8")
    gaps = tmp_path / "gaps.tsv"
    gaps.write_text("source\ttarget\nMay 3, 2020\t3 mai 2020\nMay 4, 2020\t\n", encoding="utf-8")
    a_file = tmp_path / "a_file"
    a_file.write_text("x", encoding="utf-8")
    binary = tmp_path / "test.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    out = str(tmp_path / "hyp.txt")
    data = ["--dataset", validation_tsv]
    return {
        "not a model folder": (["--model", str(tmp_path), *data, "--output", out], "is not a model folder"),
        "empty input file": (["--model", trained, "--dataset", str(empty), "--output", out], "is empty"),
        "fewer references": (
            ["--model", trained, *data, "--references", str(short_refs), "--output", out],
            "40 sources but 2 references",
        ),
        "a row without reference": (
            ["--model", trained, "--dataset", str(gaps), "--output", out],
            "2 sources but 1 references",
        ),
        "binary file, odd extension": (
            ["--model", trained, "--dataset", str(binary), "--output", out],
            "unknown extension '.bin' and not UTF-8 text (binary content)",
        ),
        "n-best above beams": (["--model", trained, *data, "--output", out, "--n-best", "5"], "--n-best 5 is above"),
        "output folder missing": (
            ["--model", trained, *data, "--output", str(tmp_path / "nowhere" / "hyp.txt")],
            "cannot be written",
        ),
        "output below a file": (["--model", trained, *data, "--output", str(a_file / "hyp.txt")], "cannot be written"),
        "output is a folder": (["--model", trained, *data, "--output", str(tmp_path)], "is a directory"),
        "unknown flag": (["--model", trained, *data, "--output", out, "--beams", "3"], "unrecognized arguments"),
        "bad top-p": (
            ["--model", trained, *data, "--output", out, "--top-p", "1.5"],
            "argument --top-p: '1.5': expected a number greater than 0 and at most 1",
        ),
        "negative length cap": (
            ["--model", trained, *data, "--output", out, "--max-length-a", "-1"],
            "argument --max-length-a: '-1': expected a number of at least 0",
        ),
        "length cap not a number": (
            ["--model", trained, *data, "--output", out, "--max-length-b", "ten"],
            "argument --max-length-b: 'ten': expected float, none or null",
        ),
        "coverage penalty not finite": (
            ["--model", trained, *data, "--output", out, "--coverage-penalty", "nan"],
            "argument --coverage-penalty: 'nan': expected a number of at least 0",
        ),
    }


CASES = [
    "not a model folder",
    "empty input file",
    "fewer references",
    "a row without reference",
    "binary file, odd extension",
    "n-best above beams",
    "output folder missing",
    "output below a file",
    "output is a folder",
    "unknown flag",
    "bad top-p",
    "negative length cap",
    "length cap not a number",
    "coverage penalty not finite",
]


@pytest.mark.parametrize("name", CASES)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(name, tmp_path, tiny_folder, validation_tsv, capsys):
    arguments, message = bad_cases(tmp_path, tiny_folder, validation_tsv)[name]
    before = set(os.listdir(tmp_path))
    assert main(arguments) == 2
    error = capsys.readouterr().err
    lines = [line for line in error.splitlines() if line.startswith("error: ")]  # besides progress bars
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in error, error[-2000:]
    assert set(os.listdir(tmp_path)) == before  # no output, no leftover temporary file


@pytest.fixture(scope="module")
def varied_folder(tmp_path_factory) -> str:
    """An untrained tiny model whose weights are drawn wide enough that its greedy outputs differ from
    source to source (the zero-attention `tiny_folder` answers every source alike)."""
    from transformers import GenerationConfig

    model, tokenizer = tiny_model(**VARIANTS["bahdanau-input-feeding-gru"])
    generator = torch.Generator().manual_seed(4)  # outputs all different, none empty
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.5)
    model.generation_config = GenerationConfig(
        num_beams=1, max_new_tokens=8, decoder_start_token_id=model.config.decoder_start_token_id
    )
    folder = tmp_path_factory.mktemp("varied") / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def capped_folder(tmp_path_factory) -> str:
    """A tiny model that never emits `</s>`, saved with the length cap training saves (here 0.5 x source
    + 1, below its 12 new tokens): every output is as long as its limit allows."""
    from transformers import GenerationConfig

    model, tokenizer = tiny_model(**VARIANTS["bahdanau-input-feeding-gru"])
    with torch.no_grad():
        model.lm_head.bias[tokenizer.eos_token_id] = -1e4
    model.generation_config = GenerationConfig(
        num_beams=1,
        max_new_tokens=12,
        max_length_a=0.5,
        max_length_b=1.0,
        decoder_start_token_id=model.config.decoder_start_token_id,
    )
    folder = tmp_path_factory.mktemp("capped") / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_the_saved_length_cap_applies_by_default_and_none_switches_it_off(capped_folder, tmp_path):
    sources = ["red cat", "the sun and the moon over water", "dog"]
    (tmp_path / "test.de").write_text("".join(line + "\n" for line in sources), encoding="utf-8")
    arguments = ["--model", capped_folder, "--dataset", str(tmp_path / "test.de"), "--num-threads", "1"]

    def output_lengths(*flags: str) -> tuple[list[int], list[int]]:
        """Each output's tokens and its source's tokens (`</s>` included), from `--alignments`."""
        align = tmp_path / "align.jsonl"
        assert main([*arguments, "--output", str(tmp_path / "hyp.txt"), "--alignments", str(align), *flags]) == 0
        records = [json.loads(line) for line in align.read_text(encoding="utf-8").splitlines()]
        outputs = [len(record["hypotheses"][0]["output_tokens"]) for record in records]
        return outputs, [len(record["source_tokens"]) for record in records]

    capped, source_lengths = output_lengths()
    assert capped == [int(0.5 * length + 1) for length in source_lengths] and max(capped) < 12
    assert output_lengths("--max-length-a", "null", "--max-length-b", "null")[0] == capped  # null: the model's
    assert output_lengths("--max-length-a", "none", "--max-length-b", "none")[0] == [12] * len(sources)
    assert output_lengths("--max-length-a", "none")[0] == [1] * len(sources)  # B alone is the cap
    summary = json.loads((tmp_path / "hyp.txt.summary.json").read_text(encoding="utf-8"))
    assert "max_length_a" not in summary["settings"] and summary["settings"]["max_length_b"] == 1.0


def test_a_plain_text_test_set_of_any_extension_decodes_one_line_per_source_and_scores(varied_folder, tmp_path):
    """`--dataset test.de --references test.en`, the layout of NMT test sets: each line of test.de
    is one source (a tab in it too), each line of test.en its reference, in order."""
    sources = ["red cat", "the sun and the moon over water", "dog", "fire water earth wind", "red cat\tthe dog"]
    (tmp_path / "test.de").write_text("".join(line + "\n" for line in sources), encoding="utf-8")
    references = tmp_path / "test.en"
    references.write_text("".join(f"reference {i}\n" for i in range(len(sources))), encoding="utf-8")
    output = tmp_path / "hyp.txt"
    arguments = ["--model", varied_folder, "--dataset", str(tmp_path / "test.de"), "--output", str(output)]
    assert main([*arguments, "--references", str(references), "--num-threads", "1"]) == 0
    lines = output.read_text(encoding="utf-8").splitlines()
    model, tokenizer = load(varied_folder)
    alone = [generate_texts(model, tokenizer, [source], num_beams=1, max_new_tokens=8)[0].text for source in sources]
    assert lines == [one_line(text) for text in alone] and len(set(lines)) > 2  # each line its own source's output
    summary = json.loads((tmp_path / "hyp.txt.summary.json").read_text(encoding="utf-8"))
    assert summary["sentences"] == len(sources) and summary["metrics"]["chrf"] < 50
    assert "sources only" in summary["data"] and "references from" in summary["data"]
    # The outputs as references score chrF 100: the references are read line by line, in order.
    references.write_text(output.read_text(encoding="utf-8"), encoding="utf-8")
    assert main([*arguments, "--references", str(references), "--num-threads", "1"]) == 0
    summary = json.loads((tmp_path / "hyp.txt.summary.json").read_text(encoding="utf-8"))
    assert summary["metrics"]["chrf"] == pytest.approx(100)


# Lines that could tell two readers apart: Windows and old Mac line ends, a BOM, white space around
# fields, an empty line, a form feed and a line separator inside a line, three fields, no final line end.
TRICKY_LINES = "\ufeffone\tun\r\n  two\t deux \t2\r\n\r\nthree\rfour\x0cfive\u2028six\tcinq\n\n seven\t "


@pytest.mark.parametrize("name", ["test.de", "test.txt"])
@pytest.mark.parametrize("flags", [{}, {"source_column": "a", "target_column": "b"}, {"source_column": "a"}])
def test_a_text_file_is_read_without_datasets_as_datasets_reads_it(name, flags, tmp_path):
    """predict reads a `.txt` or plain-text test set line by line (`_read_text_file`, sparing it the import
    of `datasets`), to the sources, targets and description, or the error, that `training.data` gives
    through `datasets`' text builder (`_read_dataset`)."""
    path = tmp_path / name
    path.write_bytes(TRICKY_LINES.encode())
    settings = PredictSettings(model=["unused"], dataset=[str(path)], output="-", **flags)
    if not flags:
        assert _read_text_file(settings, {}, str(path)) == _read_dataset(settings, {}, str(path))
        return
    with pytest.raises(TrainingInputError) as expected:
        _read_dataset(settings, {}, str(path))
    with pytest.raises(TrainingInputError, match=re.escape(str(expected.value))):
        _read_text_file(settings, {}, str(path))


def test_a_run_on_stdin_or_a_text_file_leaves_datasets_unimported(varied_folder, tmp_path):
    """`datasets` (pyarrow and pandas with it: over half a second of the start) is imported only to read
    a dataset: a run without references on stdin, a plain-text file or a `.txt` never needs it (with
    references, the metrics library `evaluate` imports it)."""
    for name in ("test.de", "test.txt"):
        (tmp_path / name).write_text("red cat\ndog\n", encoding="utf-8")
    probe = "import sys; from training.predict import main; code = main(sys.argv[1:]); print(code, 'datasets' in sys.modules)"
    output = str(tmp_path / "hyp.txt")
    for data in ("-", str(tmp_path / "test.de"), str(tmp_path / "test.txt")):
        arguments = ["--model", varied_folder, "--dataset", data, "--output", output, "--num-threads", "1"]
        result = subprocess.run(
            [sys.executable, "-c", probe, *arguments], cwd=REPO, input="red cat\n", capture_output=True, text=True, timeout=300
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines()[-1] == "0 False", result.stdout


def test_summary_goes_to_a_file_to_stdout_or_nowhere(varied_folder, tmp_path, capsys):
    (tmp_path / "test.de").write_text("red cat\ndog\n", encoding="utf-8")
    output = tmp_path / "hyp.txt"
    arguments = ["--model", varied_folder, "--dataset", str(tmp_path / "test.de"), "--output", str(output)]
    assert main([*arguments, "--summary", "none", "--num-threads", "1"]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["hyp.txt", "test.de"]  # no file named none
    capsys.readouterr()
    assert main([*arguments, "--summary", "-", "--num-threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed[: printed.rindex("}") + 1])["sentences"] == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["hyp.txt", "test.de"]
    assert main(["--model", varied_folder, "--dataset", "-", "--output", "-", "--summary", "-"]) == 2
    assert "both would go to stdout" in capsys.readouterr().err


# Several inputs in one run: `--dataset a.de --dataset b.de --output OUT`.
SEVERAL = {
    "a.de": ["red cat", "the sun and the moon over water", "dog"],
    "b.de": ["fire water earth wind", "over the moon", "red dog and cat", "sun"],
}


def write_inputs(folder: Path) -> list[str]:
    """`a.de` and `b.de` in `folder`, and references `a.en`, `b.en` (each source's own text)."""
    for name, lines in SEVERAL.items():
        (folder / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        (folder / name.replace(".de", ".en")).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return [str(folder / name) for name in SEVERAL]


@pytest.fixture
def counted_loads(monkeypatch) -> list[list[str]]:
    """The `--model` lists the command loads, each time it loads models."""
    import training.predict_run
    from training.prediction import load_models

    loads = []

    def counting(paths, *arguments):
        loads.append(list(paths))
        return load_models(paths, *arguments)

    monkeypatch.setattr(training.predict_run, "load_models", counting)
    return loads


def test_several_inputs_load_the_model_once_and_each_decodes_as_a_run_of_its_own(
    varied_folder, tmp_path, counted_loads, capsys
):
    a, b = write_inputs(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    common = ["--model", varied_folder, "--num-threads", "1"]
    several = [*common, "--dataset", a, "--dataset", b, "--output", str(out)]
    assert main([*several, "--references", a.replace(".de", ".en"), "--references", b.replace(".de", ".en")]) == 0
    assert counted_loads == [[varied_folder]]  # start-up paid once for both inputs
    assert sorted(path.name for path in out.iterdir()) == [
        "a.de.hyp", "a.de.summary.json", "b.de.hyp", "b.de.summary.json"
    ]  # fmt: skip
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed] == [a, b]  # one line per input, its score in it
    for name, path in zip(SEVERAL, (a, b), strict=True):
        single = tmp_path / f"single-{name}.hyp"
        assert (
            main([*common, "--dataset", path, "--references", path.replace(".de", ".en"), "--output", str(single)]) == 0
        )
        hypotheses = (out / f"{name}.hyp").read_text(encoding="utf-8")
        assert hypotheses == single.read_text(encoding="utf-8")  # the same settings, the same seed
        assert len(hypotheses.splitlines()) == len(SEVERAL[name])
        summary = json.loads((out / f"{name}.summary.json").read_text(encoding="utf-8"))
        alone = json.loads((tmp_path / f"single-{name}.hyp.summary.json").read_text(encoding="utf-8"))
        assert summary["metrics"] == alone["metrics"] and set(summary["metrics"]) == {"bleu", "chrf"}
        assert summary["sentences"] == len(SEVERAL[name]) and summary["outputs"]["output"] == str(out / f"{name}.hyp")
        assert path in summary["data"] and f"references from {path.replace('.de', '.en')}" in summary["data"]
    assert len(counted_loads) == 3  # and the two single runs once each


def test_several_inputs_write_each_ones_n_best_alignments_and_no_summary(varied_folder, tmp_path):
    a, b = write_inputs(tmp_path)
    out, align = tmp_path / "out", tmp_path / "align"
    out.mkdir()
    align.mkdir()
    arguments = ["--model", varied_folder, "--dataset", a, "--dataset", b, "--output", str(out), "--num-threads", "1"]
    flags = ["--num-beams", "2", "--n-best", "2", "--alignments", str(align), "--hard-alignments", str(align)]
    assert main([*arguments, *flags, "--summary", "none"]) == 0
    assert sorted(path.name for path in out.iterdir()) == ["a.de.hyp", "a.de.nbest", "b.de.hyp", "b.de.nbest"]
    assert sorted(path.name for path in align.iterdir()) == [
        "a.de.alignments.jsonl", "a.de.hard-alignments.txt", "b.de.alignments.jsonl", "b.de.hard-alignments.txt"
    ]  # fmt: skip
    for name, sources in SEVERAL.items():
        nbest = (out / f"{name}.nbest").read_text(encoding="utf-8").splitlines()
        assert [int(line.split(" ||| ")[0]) for line in nbest] == [i for i in range(len(sources)) for _ in range(2)]
        records = [json.loads(line) for line in (align / f"{name}.alignments.jsonl").read_text().splitlines()]
        assert [record["source"] for record in records] == sources
        assert len((align / f"{name}.hard-alignments.txt").read_text().splitlines()) == len(sources)


def file_times(folder: Path) -> dict[Path, int]:
    """Every file below `folder` and when it was last written."""
    return {path: path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}


def several_bad_cases(tmp_path: Path, model: str) -> dict[str, tuple[list[str], str]]:
    """name -> (arguments, a part of the one-line message), for runs of several inputs."""
    a, b = write_inputs(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "a.de").write_text("dog\n", encoding="utf-8")
    (tmp_path / "a.de.hyp").write_text("an input that a.de's output would overwrite\n", encoding="utf-8")
    both = ["--model", model, "--dataset", a, "--dataset", b]
    return {
        "one plain output file": ([*both, "--output", str(tmp_path / "hyp.txt")], "hyp.txt: no such folder"),
        "output an existing file": ([*both, "--output", a], "a.de is a file: with several --dataset"),
        "output to stdout": ([*both, "--output", "-"], "--output - with several --dataset"),
        "summary to stdout": ([*both, "--output", str(out), "--summary", "-"], "--summary - with several --dataset"),
        "alignments folder missing": (
            [*both, "--output", str(out), "--alignments", str(tmp_path / "nowhere")],
            "--alignments " + str(tmp_path / "nowhere") + ": no such folder",
        ),
        "a missing input": (
            ["--model", model, "--dataset", a, "--dataset", str(tmp_path / "missing.de"), "--output", str(out)],
            "data file not found",
        ),
        "stdin among them": (["--model", model, "--dataset", a, "--dataset", "-", "--output", str(out)], "(stdin)"),
        "two inputs of one name": (
            ["--model", model, "--dataset", a, "--dataset", str(tmp_path / "dev" / "a.de"), "--output", str(out)],
            "are both named a.de",
        ),
        "an output over an input": (
            ["--model", model, "--dataset", a, "--dataset", str(tmp_path / "a.de.hyp"), "--output", str(tmp_path)],
            "would overwrite the input",
        ),
        "references not one per input": (
            [*both, "--output", str(out), "--references", a.replace(".de", ".en")],
            "1 --references for 2 --dataset",
        ),
    }


SEVERAL_BAD = [
    "one plain output file",
    "output an existing file",
    "output to stdout",
    "summary to stdout",
    "alignments folder missing",
    "a missing input",
    "stdin among them",
    "two inputs of one name",
    "an output over an input",
    "references not one per input",
]


@pytest.mark.parametrize("name", SEVERAL_BAD)
def test_bad_several_inputs_exit_2_with_one_line_before_the_model_loads(
    name, varied_folder, tmp_path, monkeypatch, capsys
):
    import training.predict_run

    arguments, message = several_bad_cases(tmp_path, varied_folder)[name]

    def refused(*_):
        raise AssertionError("the model was loaded before the bad input was found")

    monkeypatch.setattr(training.predict_run, "load_models", refused)
    before = file_times(tmp_path)
    assert main([*arguments, "--num-threads", "1"]) == 2
    error = capsys.readouterr().err
    lines = [line for line in error.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in error, error[-2000:]
    assert file_times(tmp_path) == before  # no file written or changed (the probe of each output folder leaves none)


def test_empty_stdin_exits_2(tiny_folder):
    result = run_predict("--model", tiny_folder, "--dataset", "-", "--output", "-", stdin="")
    assert result.returncode == 2 and "is empty" in result.stderr and "Traceback" not in result.stderr


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "hyp.txt"
    path.write_text("old\n", encoding="utf-8")
    with pytest.raises(TypeError):
        write_output(str(path), b"not text")  # fails inside the write
    assert path.read_text(encoding="utf-8") == "old\n" and os.listdir(tmp_path) == ["hyp.txt"]
    write_output(str(path), "new\n")
    assert path.read_text(encoding="utf-8") == "new\n" and os.listdir(tmp_path) == ["hyp.txt"]


def test_our_model_type_loads_with_the_installed_classes_not_the_folders_code(tiny_folder):
    from training.prediction import load_model_and_tokenizer

    model, _ = load_model_and_tokenizer(tiny_folder)  # the folder holds modeling_seq2seq_rnn.py and an auto_map
    assert type(model) is Seq2SeqRNNForConditionalGeneration and not model.training


def test_the_command_is_installed_as_a_console_script():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as handle:
        scripts = tomllib.load(handle)["project"]["scripts"]
    module, _, function = scripts["seq2seq-rnn-predict"].partition(":")
    assert (module, function) == ("training.predict", "console")


def test_importing_the_command_leaves_the_metrics_library_for_runs_with_references():
    """`evaluate` is imported when metrics are loaded, not with the command: a run without references
    (most runs on new text) never needs it, and its import adds a few tenths of a second to the start."""
    probe = "import sys, training.predict; print('evaluate' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_the_command_line_is_read_before_torch_and_transformers_are_imported():
    """`--help` and a bad flag answer at once: the options (`training.predict_options`) need neither
    torch, transformers nor `datasets`, which the run imports once the command line is read (seconds)."""
    probe = (
        "import sys, training.predict; training.predict.build_parser(); "
        "print(sorted(name for name in ('torch', 'transformers', 'datasets') if name in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

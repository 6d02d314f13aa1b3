"""Decoding against `onmt_translate` and transformers' own loop, on models trained in the same run.

    python -m benchmarks.bench_decoding --corpus ../shared/data/tatoeba-eng-fra/eng-fra.txt --threads 1

1. **Models.** OpenNMT-py 3.5.1 (its reference configuration, `bench_opennmt.onmt_config`) for
   `--onmt-steps` steps and ours at the same shape (`bench_opennmt_quality.REFERENCE_SHAPE`, the CPU
   recipe otherwise) for `--train-minutes`, side by side, `--threads` threads each, on the first
   `--max-train` training pairs of the corpus's reference split.
2. **Does `onmt_translate -precision int8` quantize?** It loads the checkpoint with OpenNMT-py's own
   `load_test_model` under `-precision int8` and counts the dynamically quantized modules.
3. **Decoding** of the 2,000 test sources (batch 64) and of the first `--batch1-sentences` (batch 1),
   beam 5 and greedy, at most 60 tokens, stopping at `</s>`: `onmt_translate` in its own process,
   timed over the span of its own report (`ONMT_TIMED_TRANSLATE`), in fp32, with `-precision int8` as
   shipped, and with the dynamic quantization that flag means to apply; ours in this process through
   `generate_texts` (what `training.predict` runs) with transformers' own loop
   (`generate(custom_generate=None)`) and with the model's compact search, fp32 and int8, with no
   length cap on either side. Ours also with the compact search's embedding gate table turned off
   (`precompute_gates`, fp32: what the table saves) and with each of `--shortlists` (the vocabulary
   shortlist that training learned, `--shortlist FIRST,BEST`), in fp32 and int8. Each row:
   sentences/s, the ratios to `onmt_translate` in fp32 and in working int8, BLEU, the decoder steps
   of the returned outputs (`</s>` included: OpenNMT-py's words, our subwords), and for ours the rows
   the decoder stepped per sentence (beams included), the output columns a row was given (the
   vocabulary, or the batch's shortlist), the multiply-adds of one decoder row (`decoder_row_macs`;
   OpenNMT-py's for its model of the same shape and its target vocabulary), the time per row, and
   for fp32 the floor that the run's matrix-product rate sets for those products. The fastest of
   `--repeats` runs counts.
4. **Whole commands**: `python -m training.predict` (fp32, int8, and with the first of `--shortlists`)
   and `onmt_translate` on the first 1,000 test sources and on one line, wall time of the process,
   start-up included.
5. **Options of our search** on the same test set: the coverage penalty (`--coverage-penalty`, beam 5),
   the source-relative length cap (training's 2 x source + 10) and the shortlists of `--shortlist-sweep`,
   BLEU against plain beam 5.
6. **Training's evaluation of early models**: ours trained for each of `--early-steps` steps (an early
   model babbles), then greedy over the 2,000 test sources as training evaluated before
   (transformers' loop, no cap) and as it does now (compact search, 2 x source + 10).

`--skip-training` decodes the models `--work-dir` holds; `--parts` runs only some of steps 3-6. Without
OpenNMT-py (`bench_opennmt.ensure_onmt`: `--install-onmt` installs it), its runs and ratios are left out,
with one line that says so, and ours are printed alone.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from seq2seq_tools.generation import generate_texts
from seq2seq_tools.loading import load_model, load_tokenizer
from seq2seq_tools.quantization import maybe_quantize
from training.predict_options import PREDICT_SHORTLIST

from .bench_model import forward_flops, matmul_rate
from .bench_opennmt import add_onmt_arguments, build_onmt_vocab, onmt_config, onmt_setup
from .bench_opennmt_quality import REFERENCE_SHAPE, bleu_chrf, ours_training_command, prepare_data
from .common import REPO, add_quick_run_arguments, add_threads_argument, machine_line, print_table, run_measured

MAX_NEW_TOKENS = 60
SEARCHES = {"beam 5": 5, "greedy": 1}
LOOPS = {"transformers' loop": None, "ours, compact": "compact"}
TRAINING_CAP = {"max_length_a": 2.0, "max_length_b": 10.0}  # training.config's defaults
PARTS = ("decoding", "commands", "options", "early")

# OpenNMT-py's own loading under `-precision int8`, then a count of the quantized modules.
ONMT_INT8_PROBE = """
import sys, torch
from onmt.utils.parse import ArgumentParser
import onmt.opts as opts
from onmt.model_builder import load_test_model
parser = ArgumentParser()
opts.translate_opts(parser)
opt = parser.parse_args(["-model", sys.argv[1], "-src", "/dev/null", "-precision", "int8"])
ArgumentParser.validate_translate_opts(opt)
_, model, _ = load_test_model(opt)
quantized = [type(m).__name__ for m in model.modules() if "quantized" in type(m).__module__]
print(f"precision={opt.precision!r} quantized_modules={len(quantized)} {sorted(set(quantized))}")
"""


# `onmt_translate` timed around `Translator._translate`, the span of its own "Total translation time",
# which it prints to 0.1 s (4% of a greedy run of 2,000 sources). `quantize` as the first argument
# applies the dynamic quantization its `-precision int8` means to apply (see the probe).
ONMT_SECONDS = "translation seconds, perf_counter: "
ONMT_TIMED_TRANSLATE = f"""
import sys, time, torch
import onmt.model_builder as builder
from onmt.translate.translator import Translator
loaded = builder.load_test_model
def quantized(*args, **kwargs):
    vocabs, model, model_opt = loaded(*args, **kwargs)
    torch.quantization.quantize_dynamic(model, dtype=torch.qint8, inplace=True)
    return vocabs, model, model_opt
if sys.argv[1] == "quantize":
    builder.load_test_model = quantized
translate = Translator._translate
def timed(*args, **kwargs):
    started = time.perf_counter()
    result = translate(*args, **kwargs)
    print({ONMT_SECONDS!r} + repr(time.perf_counter() - started), flush=True)
    return result
Translator._translate = timed
from onmt.bin.translate import main
sys.argv = ["onmt_translate", *sys.argv[2:]]
main()
"""
# The precisions of `onmt_translate`: fp32, its int8 flag as shipped, and that flag's intended quantization.
ONMT_PRECISIONS = ("fp32", "int8 flag", "int8 quantized")


def train_models(args: argparse.Namespace, bin_dir: Path | None, data: dict, env: dict) -> None:
    """Step 1: OpenNMT-py (when there) and ours at the same shape, at once."""
    onmt, log_path = None, args.work_dir / "onmt_train.log"
    if bin_dir is not None:
        config = onmt_config(data, args.work_dir, args.onmt_steps, True)
        build_onmt_vocab(bin_dir, config, args.work_dir, env)
        with open(log_path, "w", encoding="utf-8") as log:
            onmt = subprocess.Popen(
                [str(bin_dir / "onmt_train"), "-config", str(config)], cwd=REPO, env=env, stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
    ours = args.work_dir / "ours"
    shutil.rmtree(ours, ignore_errors=True)
    run_measured(our_training_command(args, data, ours), env, args.work_dir / "ours.log")
    if onmt is not None and onmt.wait() != 0:
        raise RuntimeError(f"onmt_train failed; see {log_path}")


def our_training_command(args: argparse.Namespace, data: dict, output: Path, *extra: str) -> list[str]:
    """Our training at OpenNMT-py's reference shape for `--train-minutes`, a final evaluation only."""
    shape_args = argparse.Namespace(
        reference_minutes=args.train_minutes, budget_minutes=args.train_minutes, eval_steps=10**9,
        mixed_precision="auto", threads=args.threads, training_flags=[],
    )  # fmt: skip
    return [*ours_training_command(data, output, shape_args, REFERENCE_SHAPE), *extra, *args.training_flags]


def load_uncapped(folder: Path) -> tuple[torch.nn.Module, Any]:
    """Our model and tokenizer from `folder`, without the length cap training saved: each row of a
    table says which cap it decodes with."""
    model = load_model(str(folder)).eval()
    model.generation_config.max_length_a = model.generation_config.max_length_b = None
    return model, load_tokenizer(str(folder))


def onmt_checkpoint(args: argparse.Namespace) -> Path:
    return args.work_dir / f"onmt_model_feed1_step_{args.onmt_steps}.pt"


def onmt_int8_probe(args: argparse.Namespace, bin_dir: Path | None, env: dict) -> str:
    """Step 2: what OpenNMT-py's own loader does with `-precision int8`."""
    if bin_dir is None:
        return "not run (no OpenNMT-py)"
    result = subprocess.run(
        [str(bin_dir / "python"), "-c", ONMT_INT8_PROBE, str(onmt_checkpoint(args))],
        cwd=REPO, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout.strip().splitlines()[-1]


def onmt_decode(
    args: argparse.Namespace, bin_dir: Path, env: dict, source: Path, beams: int, batch: int, precision: str
) -> tuple[float, list[str]]:
    """`onmt_translate` stopping as ours does (`</s>` or MAX_NEW_TOKENS) at one of `ONMT_PRECISIONS`:
    its decoding seconds and outputs."""
    output = args.work_dir / f"onmt_{source.stem}_{beams}_{batch}_{ONMT_PRECISIONS.index(precision)}.txt"
    log = output.with_suffix(".log")
    options = [
        "-model", str(onmt_checkpoint(args)), "-src", str(source), "-output", str(output), "-beam_size", str(beams),
        "-batch_size", str(batch), "-max_length", str(MAX_NEW_TOKENS), "-max_length_ratio", "0", "-report_time",
    ]  # fmt: skip
    quantize = "quantize" if precision == "int8 quantized" else "as-is"
    flag = ["-precision", "int8"] if precision == "int8 flag" else []
    run_measured([str(bin_dir / "python"), "-c", ONMT_TIMED_TRANSLATE, quantize, *options, *flag], env, log)
    outputs = output.read_text(encoding="utf-8").splitlines()
    line = next(line for line in log.read_text(encoding="utf-8").splitlines() if line.startswith(ONMT_SECONDS))
    return float(line.removeprefix(ONMT_SECONDS)), outputs


@contextlib.contextmanager
def counting_decoder_rows(model: torch.nn.Module) -> Iterator[list[int]]:
    """Counts the rows the output layer receives and the output columns they are given, summed over every
    call: one row per decoder row and step in both loops (the recurrent layers may run as cells, which
    no module hook sees); a shortlist's output layer (`model.output_layer`) is counted as the whole one is."""
    counts = [0, 0]  # rows, rows x output columns

    def count(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        counts[0] += inputs[0].shape[0]
        counts[1] += inputs[0].shape[0] * module.out_features

    handles = [model.lm_head.register_forward_pre_hook(count)]
    whole_layer = model.output_layer

    def output_layer(vocabulary: torch.Tensor) -> torch.nn.Module:
        layer = whole_layer(vocabulary)
        handles.append(layer.register_forward_pre_hook(count))
        return layer

    model.output_layer = output_layer
    try:
        yield counts
    finally:
        del model.output_layer
        for handle in handles:
            handle.remove()


def ours_decode(
    model: torch.nn.Module, tokenizer, sources: list[str], beams: int, batch: int, loop: str | None, **settings
) -> tuple[float, list[str], int, float]:
    """Our decoding through `generate_texts`: seconds, outputs, decoder rows stepped, and the output
    columns a row was given on average (the vocabulary, or a shortlist's rows)."""
    custom = {} if loop == "compact" else {"custom_generate": None}
    with counting_decoder_rows(model) as counts:
        started = time.perf_counter()
        results = generate_texts(
            model, tokenizer, sources, batch_size=batch, num_beams=beams, max_new_tokens=MAX_NEW_TOKENS,
            early_stopping=beams > 1, **custom, **settings,
        )  # fmt: skip
        seconds = time.perf_counter() - started
    return seconds, [result.text for result in results], counts[0], counts[1] / max(counts[0], 1)


def our_runs(shortlists: list[str]) -> dict[str, tuple[str | None, dict[str, Any], bool]]:
    """Our rows of the decoding table: name -> (loop, generate() settings, the embedding gate table on)."""
    runs = {
        "transformers' loop": (None, {}, True),
        "ours, compact": ("compact", {}, True),
        "ours, compact, no gate table": ("compact", {}, False),
    }
    runs.update({f"ours, shortlist {each}": ("compact", {"shortlist": each}, True) for each in shortlists})
    return runs


def decoder_row_macs(config: Any, source_len: float, output_columns: float, gathered_embedding: bool) -> float:
    """Multiply-adds of one decoder row at one step: the recurrent layers (less the embedding's share of
    the first layer's gates when it is gathered from a table), attention, the attentional hidden state
    and an output layer of `output_columns` (the vocabulary, or a shortlist's rows)."""
    hidden, embed = config.hidden_size, config.embedding_size
    gates = (3 if config.cell_type == "gru" else 4) * hidden
    context = 0 if config.attention_type == "none" else hidden
    first = (0 if gathered_embedding else embed) + (hidden if config.input_feeding else 0) + hidden * config.peeky
    first += context if config.attention_type == "additive" else 0
    recurrent = gates * (first + hidden) + (config.num_layers - 1) * gates * 2 * hidden
    attention = {"none": 0, "dot": 0, "general": hidden * hidden, "additive": 2 * hidden * hidden}[
        config.attention_type
    ]
    attention += 2 * source_len * hidden if context else 0  # scores and context
    combine = (context + hidden) * hidden if context else 0
    features = hidden * (2 if config.peeky else 1)
    projection = 0
    if config.tie_word_embeddings and features != embed:
        projection, features = features * embed, embed
    return recurrent + attention + combine + projection + features * output_columns


def onmt_target_vocabulary(args: argparse.Namespace) -> int:
    """OpenNMT-py's target vocabulary: its vocabulary file's words (at most `tgt_vocab_size`) and 4 specials."""
    path = args.work_dir / "vocab.tgt"
    words = len(path.read_text(encoding="utf-8").splitlines()) if path.is_file() else 8000
    return min(words, 8000) + 4


def decode_table(args: argparse.Namespace, bin_dir: Path | None, data: dict, env: dict, rate: float) -> list[list[str]]:
    """Step 3: every row of the decoding table."""
    references_all = data["test_ref"].read_text(encoding="utf-8").splitlines()
    sources_all = data["test_src"].read_text(encoding="utf-8").splitlines()
    subset = args.work_dir / "test_batch1.src"
    subset.write_text("".join(line + "\n" for line in sources_all[: args.batch1_sentences]), encoding="utf-8")
    fp32, tokenizer = load_uncapped(args.work_dir / "ours")  # as onmt_translate's -max_length_ratio 0
    models = {"fp32": fp32, "int8": maybe_quantize(fp32, "int8")}
    source_tokens = statistics.mean(len(ids) for ids in tokenizer(sources_all)["input_ids"])
    encoder_flops = forward_flops(fp32.config, source_tokens, 0, source_tokens)  # per sentence
    onmt_config_shape = copy.deepcopy(fp32.config)  # the same shape, with OpenNMT-py's target vocabulary
    onmt_config_shape.vocab_size = onmt_target_vocabulary(args)
    runs = our_runs(args.shortlists)

    def output_steps(system: str, outputs: list[str]) -> float:
        """Decoder steps of the returned outputs, `</s>` included: OpenNMT-py's words, our subwords."""
        if system == "onmt_translate":
            return statistics.mean(len(line.split()) + 1 for line in outputs)
        ids = tokenizer(outputs, add_special_tokens=False, verbose=False)["input_ids"]
        return statistics.mean(len(row) + 1 for row in ids)

    rows = []
    for batch, source in ((64, data["test_src"]), (1, subset)):
        sources = source.read_text(encoding="utf-8").splitlines()
        references = references_all[: len(sources)]
        for search, beams in SEARCHES.items():
            best: dict[tuple[str, str], tuple] = {}
            for _ in range(args.repeats):  # the systems take turns: a drift of the machine falls on all alike
                for precision in ONMT_PRECISIONS if bin_dir is not None else ():
                    seconds, outputs = onmt_decode(args, bin_dir, env, source, beams, batch, precision)
                    keep_fastest(best, ("onmt_translate", precision), (seconds, outputs, None, None))
                for precision, model in models.items():
                    for name, (loop, settings, gate_table) in runs.items():
                        if precision == "int8" and not gate_table:
                            continue  # the int8 LSTM takes no table: the row would repeat "ours, compact"
                        model.model.decoder.precompute_gates = gate_table
                        run = ours_decode(model, tokenizer, sources, beams, batch, loop, **settings)
                        model.model.decoder.precompute_gates = True
                        keep_fastest(best, (name, precision), run)
            fp32_peer, int8_peer = (
                best.get(("onmt_translate", name), (None,))[0] for name in ("fp32", "int8 quantized")
            )
            for (system, precision), (seconds, outputs, stepped, columns) in best.items():
                floor = macs = None
                if stepped is not None:
                    gathered = runs[system][2] and precision == "fp32" and runs[system][0] is not None
                    macs = decoder_row_macs(fp32.config, source_tokens, columns, gathered)
                    floor = (len(sources) * encoder_flops + 2 * macs * stepped) / 1e9 / rate
                else:
                    macs = decoder_row_macs(onmt_config_shape, source_tokens, onmt_config_shape.vocab_size, False)
                rows.append([
                    batch, search, system, precision, f"{len(sources) / seconds:.0f}", ratio(fp32_peer, seconds),
                    ratio(int8_peer, seconds), f"{bleu_chrf(outputs, references)['bleu']:.2f}",
                    f"{output_steps(system, outputs):.2f}",
                    "" if stepped is None else f"{stepped / len(sources):.1f}",
                    "" if columns is None else f"{columns:.0f}",
                    f"{macs / 1e6:.2f}",
                    "" if stepped is None else f"{seconds / stepped * 1e3:.3f}",
                    f"{floor:.1f} / {seconds:.1f}" if floor is not None and precision == "fp32" else "",
                ])  # fmt: skip
    return rows


def ratio(peer: float | None, seconds: float) -> str:
    """How many times faster than `peer` (`-` without OpenNMT-py)."""
    return "-" if peer is None else f"{peer / seconds:.2f}x"


def keep_fastest(best: dict, key: tuple[str, str], run: tuple) -> None:
    if key not in best or run[0] < best[key][0]:
        best[key] = run


def command_variants(shortlists: list[str]) -> dict[str, list[str]]:
    """Our whole-command rows: name -> extra flags of training.predict. "default" is the command as a user
    types it: predict decodes with `PREDICT_SHORTLIST` when the model has a shortlist."""
    variants = {}
    for precision in ("fp32", "int8"):
        quantize = ["--quantize", "none" if precision == "fp32" else "int8"]
        variants[f"{precision}, default (shortlist {PREDICT_SHORTLIST})"] = quantize
        variants[f"{precision}, --shortlist none"] = [*quantize, "--shortlist", "none"]
    for each in (each for each in shortlists if each != PREDICT_SHORTLIST):
        variants[f"fp32, shortlist {each}"] = ["--quantize", "none", "--shortlist", each]
        variants[f"int8, shortlist {each}"] = ["--quantize", "int8", "--shortlist", each]
    return variants


def whole_commands(args: argparse.Namespace, bin_dir: Path | None, data: dict, env: dict) -> list[list[str]]:
    """Step 4: each command's wall time, start-up included, on 1,000 sources and on one line."""
    sources = data["test_src"].read_text(encoding="utf-8").splitlines()
    thousand, one = args.work_dir / "test_1000.txt", args.work_dir / "test_1.txt"  # predict reads .txt as sources
    thousand.write_text("".join(line + "\n" for line in sources[:1000]), encoding="utf-8")
    one.write_text(sources[0] + "\n", encoding="utf-8")
    rows = []
    for source in (one, thousand):
        for search, beams in SEARCHES.items():
            onmt = [
                str(bin_dir / "onmt_translate") if bin_dir else "onmt_translate", "-model", str(onmt_checkpoint(args)), "-src", str(source),
                "-output", str(args.work_dir / "whole_onmt.txt"), "-beam_size", str(beams), "-batch_size", "64",
                "-max_length", str(MAX_NEW_TOKENS), "-max_length_ratio", "0",
            ]  # fmt: skip
            ours = [
                sys.executable, "-m", "training.predict", "--model", str(args.work_dir / "ours"), "--dataset",
                str(source), "--output", str(args.work_dir / "whole_ours.txt"), "--num-beams", str(beams),
                "--batch-size", "64", "--max-new-tokens", str(MAX_NEW_TOKENS), "--num-threads", str(args.threads),
                "--max-length-a", "none", "--max-length-b", "none",
            ]  # fmt: skip
            variants = command_variants(args.shortlists[:1])
            walls = dict.fromkeys(["onmt_translate", *variants], math.inf)
            for _ in range(args.repeats):
                if bin_dir is not None:
                    wall = run_measured(onmt, env, args.work_dir / "whole.log")[0]
                    walls["onmt_translate"] = min(walls["onmt_translate"], wall)
                for name, flags in variants.items():
                    wall = run_measured([*ours, *flags], env, args.work_dir / "whole.log")[0]
                    walls[name] = min(walls[name], wall)
            lines = len(source.read_text(encoding="utf-8").splitlines())
            peer = walls["onmt_translate"] if bin_dir is not None else None
            rows.extend(
                [
                    lines,
                    search,
                    "-" if peer is None else f"{peer:.2f}",
                    name,
                    f"{walls[name]:.2f}",
                    ratio(peer, walls[name]),
                ]
                for name in variants
            )
    return rows


def search_options(args: argparse.Namespace, data: dict) -> list[list[str]]:
    """Step 5: BLEU of beam 5 with the coverage penalty and with training's length cap."""
    model, tokenizer = load_uncapped(args.work_dir / "ours")
    sources = data["test_src"].read_text(encoding="utf-8").splitlines()
    references = data["test_ref"].read_text(encoding="utf-8").splitlines()
    options = {
        "plain": {},
        **{f"coverage penalty {beta:g}": {"coverage_penalty": beta} for beta in args.coverage_betas},
        "length cap 2 x source + 10": TRAINING_CAP,
        **{f"shortlist {each}": {"shortlist": each} for each in args.shortlist_sweep},
    }
    rows = []
    for name, settings in options.items():
        seconds, outputs, _, _ = ours_decode(model, tokenizer, sources, 5, 64, "compact", **settings)
        scores = bleu_chrf(outputs, references)
        rows.append([name, f"{scores['bleu']:.2f}", f"{scores['chrf']:.2f}", f"{len(sources) / seconds:.0f}"])
    return rows


def early_evaluation(args: argparse.Namespace, data: dict, env: dict) -> list[list[str]]:
    """Step 6: our model after each of `--early-steps` training steps, trained here, and its greedy
    decoding of the test sources as training's evaluation ran it before and runs it now."""
    sources = data["test_src"].read_text(encoding="utf-8").splitlines()
    rows = []
    for steps in args.early_steps:
        folder = args.work_dir / f"ours-early-{steps}"
        shutil.rmtree(folder, ignore_errors=True)
        command = our_training_command(args, data, folder, f"--max-steps={steps}", "--max-eval-samples=20")
        run_measured(command, env, folder.with_suffix(".log"))
        model, tokenizer = load_uncapped(folder)
        before = None
        for name, loop, settings in (
            ("before: transformers' loop, no cap", None, {}),
            ("now: compact search, 2 x source + 10", "compact", TRAINING_CAP),
        ):
            seconds, outputs, stepped, _ = ours_decode(model, tokenizer, sources, 1, 128, loop, **settings)
            words = statistics.mean(len(line.split()) for line in outputs)
            ratio = "" if before is None else f"{before / seconds:.1f}x"
            before = seconds if before is None else before
            rows.append([steps, name, f"{seconds:.1f}", ratio, f"{stepped / len(sources):.1f}", f"{words:.1f}"])
    return rows


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="a file of src<TAB>tgt pairs (Tatoeba eng-fra.txt)")
    parser.add_argument("--max-train", type=int, default=25000, help="training pairs (the first of the split)")
    parser.add_argument("--onmt-steps", type=int, default=1500, help="OpenNMT-py's training steps")
    parser.add_argument("--train-minutes", type=float, default=6.0, help="our training time at the same shape")
    parser.add_argument(
        "--early-steps", type=int, nargs="+", default=[100, 200, 400], help="training steps of the early models"
    )
    parser.add_argument(
        "--parts", nargs="+", default=list(PARTS), choices=list(PARTS), help="which of steps 3-6 to run (all)"
    )
    parser.add_argument("--test-size", type=int, default=2000, help="test pairs decoded (the first of the split)")
    parser.add_argument("--batch1-sentences", type=int, default=300, help="test sources decoded one at a time")
    parser.add_argument(
        "--shortlists",
        nargs="*",
        default=["100,100", "50,50"],
        help="FIRST,BEST shortlists of our rows (none: no rows)",
    )
    parser.add_argument(
        "--shortlist-sweep",
        nargs="*",
        default=["2000,100", "1000,100", "500,50", "100,100", "50,50", "20,20"],
        help="FIRST,BEST shortlists whose BLEU step 5 reports",
    )
    parser.add_argument("--coverage-betas", type=float, nargs="+", default=[0.2, 0.4], help="coverage penalties")
    add_threads_argument(parser, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each setting; the fastest counts")
    add_onmt_arguments(parser)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/bench_decoding"))
    parser.add_argument("--skip-training", action="store_true", help="decode the models --work-dir holds")
    add_quick_run_arguments(parser)
    args = parser.parse_args()
    if not args.corpus.is_file():
        parser.error(f"--corpus {args.corpus}: no such file; pass a file of src<TAB>tgt lines")
    return args


def main() -> None:
    args = parse_arguments()
    bin_dir, env = onmt_setup(args)
    data = prepare_data(args.corpus, args.work_dir, args.max_train, args.split_sizes)
    for name in ("test_src", "test_ref", "test_pairs"):
        lines = data[name].read_text(encoding="utf-8").splitlines(keepends=True)[: args.test_size]
        data[name].write_text("".join(lines), encoding="utf-8")
    if not args.skip_training:
        train_models(args, bin_dir, data, env)
    print(f"\n{machine_line(args.threads)}")
    rate = matmul_rate(args.threads)
    results = {"probe": onmt_int8_probe(args, bin_dir, env)}
    print(f"fp32 matrix-product rate {rate:.0f} GFLOP/s; models: OpenNMT-py {args.onmt_steps} steps, ours "
          f"{args.train_minutes:g} min, same shape, {args.max_train:,} pairs of {args.corpus.name}")  # fmt: skip
    print(f"\nonmt_translate -precision int8, OpenNMT-py's own loader: {results['probe']}\n")
    if "decoding" in args.parts:
        results["decoding"] = decode_table(args, bin_dir, data, env, rate)
        print_table(
            ["batch", "search", "system", "precision", "sentences/s", "vs onmt_translate fp32",
             "vs onmt_translate int8 quantized", "BLEU", "output steps / sentence", "decoder rows / sentence",
             "output columns / row", "M multiply-adds / decoder row", "ms / decoder row", "fp32 floor s / measured s"],
            results["decoding"],
        )  # fmt: skip
    if "commands" in args.parts:
        results["commands"] = whole_commands(args, bin_dir, data, env)
        print("\nWhole commands (process wall seconds, start-up included, fastest run):\n")
        print_table(
            ["sources", "search", "onmt_translate s", "training.predict", "s", "vs onmt_translate"],
            results["commands"],
        )
    if "options" in args.parts:
        results["options"] = search_options(args, data)
        print(f"\nOur beam 5 (compact search) with its options, {args.test_size:,} test sources:\n")
        print_table(["option", "BLEU", "chrF", "sentences/s"], results["options"])
    if "early" in args.parts:
        results["early"] = early_evaluation(args, data, env)
        print(f"\nTraining's evaluation of early models, greedy, {args.test_size:,} sources, batch 128:\n")
        print_table(
            ["training steps", "evaluation", "seconds", "less wall time", "decoder rows / sentence", "words / output"],
            results["early"],
        )
    (args.work_dir / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()

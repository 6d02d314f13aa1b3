"""OpenNMT-py 3.5.1 and `training.train` side by side, in one run, on the same data and machine.

    python -m benchmarks.bench_opennmt --threads 2 [--steps 300] [--repeats 2] \\
        [--corpus ../shared/data/tatoeba-eng-fra/eng-fra.txt] [--onmt-venv ~/.cache/hf-seq2seq-rnn/onmt-venv] \\
        [--feeding yes no] [--allocators system tcmalloc]

The peer runs from a scratch virtualenv (made with `--install-onmt`: torch 2.13.0, then
`pip install --no-deps OpenNMT-py==3.5.1` and its runtime dependencies); without it, every row of
OpenNMT-py is left out, with one line that says so, and ours are printed alone. Both train OpenNMT's
reference shape (2-layer bidirectional LSTM encoder of 256 in total, 2-layer LSTM decoder of 256,
general attention, batch 64 sentences, fp32) for `--steps` steps on the same `src<TAB>tgt` pairs
with the same thread count, alternating OpenNMT / ours / OpenNMT / ours, each in its own process:
with input feeding (the reference) and without, and with each memory allocator of `--allocators`
("system": glibc malloc; "tcmalloc": Debian's libtcmalloc-minimal4 preloaded, skipped when absent).
Then both translate the same 2,000 held-out sources (the test split of `common.reference_split`)
with beam 5 (`onmt_translate`, and our `generate_texts`), with the models trained with input feeding.

The table: sentences/s, target words/s (sentences/s times the mean words per target sentence of
the training pairs, the same for both), ms per step, the peak RSS of each process, and our ratio
to OpenNMT at the same settings and to OpenNMT's reference run (input feeding, system allocator);
with the CPU model, the load and torch's fp32 matrix-product rate measured in this run.
Then the arithmetic floor: the matrix products of one step over each system's real tokens per
sentence (`step_gflop`) at the fastest matrix-product rate of the run, how close each run comes
to it, and the highest ratio to OpenNMT-py that the floor allows; the same for the fixed-length
beam search (`beam_gflop`). Last, the peak RSS of one training step on 64 x 50-token targets with
an 8k vocabulary, with our chunked loss and, as the baseline, with the loss from the whole logits.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from hf_seq2seq_rnn import Seq2SeqRNNConfig
from training.allocator import find_tcmalloc

from .bench_model import forward_flops, matmul_rate
from .common import (
    REPO,
    add_quick_run_arguments,
    add_threads_argument,
    machine_line,
    print_table,
    read_pairs,
    reference_split,
    run_measured,
    thread_environment,
)

ONMT_PACKAGES = [
    "configargparse", "pyyaml", "sacrebleu", "pyonmttok>=1.37,<2", "rapidfuzz", "pyahocorasick", "six",
    "tensorboard", "numpy<2.3", "spacy", "fasttext-wheel",
]  # fmt: skip


def ensure_onmt(venv: Path, install: bool = False) -> Path | None:
    """The virtualenv's bin folder with OpenNMT-py 3.5.1, installed there first when `install`; None,
    with one printed line, when it is not there: the benchmark then leaves out OpenNMT-py's rows."""
    bin_dir = venv / "bin"
    if (bin_dir / "onmt_train").exists():
        return bin_dir
    if not install:
        print(f"OpenNMT-py not found in {venv} (--install-onmt installs it there): its rows are left out")
        return None
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(bin_dir / "pip"), "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)  # the CPU build first, so nothing pulls CUDA torch
    subprocess.run([*pip, "--no-deps", "OpenNMT-py==3.5.1"], check=True)  # its pin says torch<2.3
    subprocess.run([*pip, *ONMT_PACKAGES], check=True)
    return bin_dir


def prepare_data(
    corpus: Path, work: Path, max_train: int, split_sizes: tuple[int, int] = (1000, 2000)
) -> dict[str, Path | float]:
    """The reference split's test sources and the first `max_train` training pairs, in both formats."""
    splits = reference_split(read_pairs(str(corpus)), *split_sizes)
    test, train = splits["test"], splits["train"][:max_train]
    files = {
        "train_src": work / "train.src",
        "train_tgt": work / "train.tgt",
        "train_pairs": work / "train.txt",
        "test_src": work / "test.src",
    }
    files["train_src"].write_text("".join(source + "\n" for source, _ in train), encoding="utf-8")
    files["train_tgt"].write_text("".join(target + "\n" for _, target in train), encoding="utf-8")
    files["train_pairs"].write_text("".join(f"{s}\t{t}\n" for s, t in train), encoding="utf-8")
    files["test_src"].write_text("".join(source + "\n" for source, _ in test), encoding="utf-8")
    words = statistics.mean(len(target.split()) for _, target in train)
    return {**files, "target_words": words, "train_pairs_count": len(train), "test_count": len(test)}


def onmt_config(data: dict, work: Path, steps: int, input_feeding: bool, save_every: int | None = None) -> Path:
    """OpenNMT-py's reference configuration for `steps` steps, a checkpoint every `save_every` steps (all
    kept; default: only at the end)."""
    vocab_src, vocab_tgt = work / "vocab.src", work / "vocab.tgt"
    config = {
        "save_data": str(work / "onmt"),
        "src_vocab": str(vocab_src),
        "tgt_vocab": str(vocab_tgt),
        "src_vocab_size": 8000,
        "tgt_vocab_size": 8000,
        "overwrite": True,
        "data": {"corpus_1": {"path_src": str(data["train_src"]), "path_tgt": str(data["train_tgt"])}},
        "save_model": str(work / f"onmt_model_feed{int(input_feeding)}"),
        "save_checkpoint_steps": save_every or steps,
        "keep_checkpoint": -1,
        "train_steps": steps,
        "valid_steps": 10 * steps,
        "report_every": math.gcd(save_every or steps, max(steps // 5, 1)),  # a report at every checkpoint
        "encoder_type": "brnn",
        "decoder_type": "rnn",
        "rnn_type": "LSTM",
        "layers": 2,
        "hidden_size": 256,
        "word_vec_size": 256,
        "global_attention": "general",
        "input_feed": int(input_feeding),
        "batch_size": 64,
        "batch_type": "sents",
        "dropout": 0.3,
        "optim": "adam",
        "learning_rate": 0.001,
        "seed": 1,
    }
    path = work / f"onmt_feed{int(input_feeding)}.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


def onmt_setup(args: argparse.Namespace) -> tuple[Path | None, dict[str, str]]:
    """What every OpenNMT-py bench starts with: torch held to `args.threads`, `args.work_dir` made,
    OpenNMT-py installed with `--install-onmt`. Returns its bin folder (None without OpenNMT-py) and the
    environment of the measured runs."""
    torch.set_num_threads(args.threads)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    env = {**thread_environment(args.threads), "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}  # onmt_translate on torch 2.6+
    return ensure_onmt(args.onmt_venv, args.install_onmt), env


def add_onmt_arguments(parser: argparse.ArgumentParser) -> None:
    """Where OpenNMT-py lives, and whether to install it there."""
    parser.add_argument("--onmt-venv", type=Path, default=Path.home() / ".cache/hf-seq2seq-rnn/onmt-venv")
    parser.add_argument(
        "--install-onmt", action="store_true", help="install OpenNMT-py 3.5.1 in --onmt-venv when it is not there"
    )


def build_onmt_vocab(bin_dir: Path, config: Path, work: Path, env: dict[str, str]) -> None:
    """`onmt_build_vocab` over the whole corpus of `config`, its vocabularies then cleaned (`clean_vocab`)."""
    run_measured(
        [str(bin_dir / "onmt_build_vocab"), "-config", str(config), "-n_sample", "-1"], env, work / "vocab.log"
    )
    for name in ("vocab.src", "vocab.tgt"):
        clean_vocab(work / name)


def clean_vocab(path: Path) -> None:
    """Keep only `token<TAB>count` lines that onmt_train reads back: it splits on any whitespace, so
    an empty token or one holding a Unicode space (French `\u202f?`) would be an error there."""
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if len(line.split("\t")) == 2 and len(line.split()) == 2]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def onmt_reports(log: Path) -> dict[int, float]:
    """Step -> seconds since OpenNMT-py's clock started, from its reports (`Step N/M; ...; S sec;`)."""
    reports = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        found = re.search(r"Step (\d+)/.*?([0-9.]+) sec", line)
        if found:
            reports[int(found.group(1))] = float(found.group(2))
    return reports


def onmt_step_seconds(log: Path) -> float:
    """Seconds per step between OpenNMT's first and last reports: its clock starts before data loading,
    so the first report carries the start-up."""
    reports = onmt_reports(log)
    (first_step, first_seconds), (last_step, last_seconds) = min(reports.items()), max(reports.items())
    return (last_seconds - first_seconds) / (last_step - first_step)


def ours_step_seconds(output_dir: Path, steps: int) -> float:
    info = json.loads((output_dir / "training_info.json").read_text(encoding="utf-8"))
    return info["throughput"]["training_seconds"] / steps


def tokens_per_sentence(data: dict, tokenizer_dir: Path) -> dict[str, tuple[float, float]]:
    """Mean (source, target) tokens per training pair as each system trains on them: ours, subwords
    of our tokenizer with `</s>` on both sides; OpenNMT-py, words, with `</s>` on the target only."""
    from seq2seq_tools.loading import load_tokenizer

    lines = Path(data["train_pairs"]).read_text(encoding="utf-8").splitlines()
    sources, targets = zip(*(line.split("\t") for line in lines), strict=True)
    tokenizer = load_tokenizer(tokenizer_dir)
    encoded = tokenizer(list(sources), text_target=list(targets))
    return {
        "ours": (
            statistics.mean(map(len, encoded["input_ids"])),
            statistics.mean(map(len, encoded["labels"])),
        ),
        "OpenNMT-py": (
            statistics.mean(len(source.split()) for source in sources),
            statistics.mean(len(target.split()) + 1 for target in targets),
        ),
    }


def reference_config(input_feeding: bool) -> Seq2SeqRNNConfig:
    return Seq2SeqRNNConfig(
        vocab_size=8000, embedding_size=256, hidden_size=256, num_layers=2, bidirectional_encoder=True,
        attention_type="general", input_feeding=input_feeding,
    )  # fmt: skip


def step_gflop(input_feeding: bool, source_tokens: float, target_tokens: float) -> float:
    """The arithmetic of one training step of 64 sentences at the reference shape, in GFLOP: the
    matrix products of the forward pass over the real tokens only (no padding), times 3 for the
    backward pass (the gradients of the inputs and of the weights each cost a forward's products).
    Element-wise work, the softmax and the optimizer are left out: a lower bound."""
    config = reference_config(input_feeding)
    return 3 * 64 * forward_flops(config, source_tokens, target_tokens, source_tokens) / 1e9


def beam_gflop(sentences: int, new_tokens: float, source_tokens: float, beams: int = 5) -> float:
    """The same lower bound for a search with `beams` beams (1: greedy) that takes `new_tokens` steps per
    sentence: the encoder once per sentence, the decoder step and the output layer once per beam per step."""
    config = reference_config(True)
    encoder = forward_flops(config, source_tokens, 0, source_tokens)
    decoder = forward_flops(config, 0, 1, source_tokens)
    return sentences * (encoder + beams * new_tokens * decoder) / 1e9


def translate_in_this_process(model_dir: str, sources_path: str, threads: int, shortest: int, longest: int) -> None:
    """Beam-5 translation of `sources_path` through `generate_texts`, as `training.predict` decodes;
    prints the seconds (model loading included, like onmt_translate's own clock) and words per output."""
    from seq2seq_tools.generation import generate_texts
    from seq2seq_tools.loading import load_model, load_tokenizer

    torch.set_num_threads(threads)
    sources = Path(sources_path).read_text(encoding="utf-8").splitlines()
    started = time.perf_counter()
    model, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
    fixed = shortest == longest
    if fixed:  # no </s> at all, rather than min_new_tokens, a logits processor that masks it every step
        model.generation_config.eos_token_id = None
    outputs = generate_texts(
        model.eval(), tokenizer, sources, batch_size=64, num_beams=5,
        min_new_tokens=0 if fixed else shortest, max_new_tokens=longest,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "words": statistics.mean(len(output.text.split()) for output in outputs)}))


# Output lengths of the two translation runs: (shortest, longest) in tokens. "free" lets each model
# stop where it likes, so its time depends on how long its outputs are; "fixed" decodes exactly
# FIXED_LENGTH tokens for every sentence in both systems, which compares the cost of a beam step:
# onmt_translate with -min_length (a cheap mask of </s>), ours with no </s> at all (transformers'
# MinNewTokensLengthLogitsProcessor rewrites the whole score matrix every step: +47% here).
FIXED_LENGTH = 20
TRANSLATION_LENGTHS = {"free": (0, 64), "fixed": (FIXED_LENGTH, FIXED_LENGTH)}


def translate_ours(
    model_dir: Path, sources: Path, lengths: tuple[int, int], threads: int, env: dict[str, str]
) -> tuple[float, float]:
    """Seconds for beam-5 translation of `sources` with our `generate_texts`, batches of 64, model loading
    included; and words per output. In a fresh process, like `onmt_translate`."""
    code = "import sys; from benchmarks.bench_opennmt import translate_in_this_process as t; t(*sys.argv[1:3], *map(int, sys.argv[3:]))"
    command = [sys.executable, "-c", code, str(model_dir), str(sources), str(threads), *map(str, lengths)]
    result = subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True, text=True)
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    return measured["seconds"], measured["words"]


def translate_onmt(
    bin_dir: Path, checkpoint: Path, sources: Path, lengths: tuple[int, int], work: Path, env: dict[str, str]
) -> tuple[float, float]:
    """The same with `onmt_translate`: its own time without the interpreter's start, and words per output."""
    log, output = work / "onmt_translate.log", work / "onmt_pred.txt"
    run_measured(
        [str(bin_dir / "onmt_translate"), "-model", str(checkpoint), "-src", str(sources), "-output", str(output),
         "-beam_size", "5", "-batch_size", "64", "-min_length", str(lengths[0]), "-max_length", str(lengths[1]),
         "-max_length_ratio", "0"],  # 0: no cap at 1.25 x the source length, as in our generate
        env, log,
    )  # fmt: skip
    predictions = output.read_text(encoding="utf-8").splitlines()
    return onmt_translate_seconds(log), statistics.mean(len(line.split()) for line in predictions)


def onmt_translate_seconds(log: Path) -> float:
    """onmt_translate's own time without interpreter start and exit (it includes loading the model)."""
    line = [line for line in log.read_text(encoding="utf-8").splitlines() if "Time w/o python interpreter" in line][-1]
    return float(line.rsplit(":", 1)[1])


MEMORY_PROBE = """
import resource, sys, torch
from hf_seq2seq_rnn import Seq2SeqRNNConfig, Seq2SeqRNNForConditionalGeneration, loss_seq2seq_rnn
torch.set_num_threads(int(sys.argv[2]))
if sys.argv[1] == "whole":  # the baseline: the loss from the whole (B, T, V) logits
    loss_seq2seq_rnn.CHUNKED_LOSS_MIN_LOGITS = float("inf")
config = Seq2SeqRNNConfig(vocab_size=8000, embedding_size=256, hidden_size=256, num_layers=2,
                          attention_type="general", input_feeding=True, dropout=0.3)
model = Seq2SeqRNNForConditionalGeneration(config).train()
generator = torch.Generator().manual_seed(0)
source, target = (torch.randint(4, 8000, (64, 50), generator=generator) for _ in range(2))
model(input_ids=source, attention_mask=torch.ones_like(source), labels=target).loss.backward()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def training_step_peak_mb(mode: str, threads: int, env: dict[str, str]) -> float:
    """Peak RSS (MB) of a fresh process that runs one training step on 64 x 50-token targets, 8k vocabulary."""
    command = [sys.executable, "-c", MEMORY_PROBE, mode, str(threads)]
    return float(subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True, text=True).stdout)


def ours_command(data: dict, output_dir: Path, steps: int, threads: int, input_feeding: bool) -> list[str]:
    return [
        sys.executable, "-m", "training.train", "--config", "training/configs/translation.yaml",
        "--dataset", str(data["train_pairs"]), "--output-dir", str(output_dir), "--max-steps", str(steps),
        "--num-layers", "2", "--hidden-size", "256", "--embedding-size", "256", "--bidirectional-encoder", "true",
        "--attention-type", "general", "--input-feeding", str(input_feeding).lower(), "--batch-size", "64",
        "--dropout", "0.3", "--mixed-precision", "no", "--num-threads", str(threads), "--vocab-size", "8000",
        "--eval-steps", str(10 * steps), "--checkpointing-steps", str(10 * steps), "--report-to", "none",
        "--max-eval-samples", "64", "--num-samples", "0", "--validation-size", "0.01", "--num-beams", "1",
    ]  # fmt: skip


FEEDING = {"yes": True, "no": False}


def print_floor(
    results: dict[tuple[str, str, str], dict[str, list[float]]],
    tokens: dict[str, tuple[float, float]],
    ceiling: float,
) -> None:
    """How close each training run comes to the arithmetic floor, and the highest ratio it allows."""
    print(f"\nThe arithmetic floor: the matrix products of a step (`step_gflop`) at {ceiling:.0f} GFLOP/s, the "
          "fastest rate measured in this run\n")  # fmt: skip
    print("| input feeding | allocator | system | tokens per sentence, source / target | GFLOP per step "
          "| floor ms/step | measured ms/step | floor / measured |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    bounds = {}
    for (feeding, allocator, system), measured in results.items():
        source, target = tokens[system]
        work = step_gflop(FEEDING[feeding], source, target)
        floor, step = 1000 * work / ceiling, 1000 * statistics.median(measured["step"])
        print(f"| {feeding} | {allocator} | {system} | {source:.2f} / {target:.2f} | {work:.1f} | {floor:.0f} "
              f"| {step:.0f} | {floor / step:.0%} |")  # fmt: skip
        if system == "ours" and (feeding, allocator, "OpenNMT-py") in results:
            onmt_step = 1000 * statistics.median(results[(feeding, allocator, "OpenNMT-py")]["step"])
            bounds[(feeding, allocator)] = onmt_step / floor
    if not bounds:
        return
    print("\nThe highest sentences/s ratio to OpenNMT-py that these products allow ours, at OpenNMT's measured "
          "speed: " + "; ".join(f"input feeding {feeding}, {allocator}: {bound:.2f}x"
                                for (feeding, allocator), bound in bounds.items()))  # fmt: skip


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="a file of src<TAB>tgt pairs (Tatoeba eng-fra.txt)")
    add_threads_argument(parser, default=2)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2, help="A/B pairs of training runs per setting")
    parser.add_argument("--max-train", type=int, default=50000, help="training pairs used (vocabularies, batches)")
    parser.add_argument("--feeding", nargs="+", choices=list(FEEDING), default=list(FEEDING),
                        help="input feeding on (OpenNMT's reference), off, or both (default)")  # fmt: skip
    parser.add_argument("--allocators", nargs="+", choices=("system", "tcmalloc"), default=["system", "tcmalloc"],
                        help="memory allocators to train under (tcmalloc is skipped when not installed)")  # fmt: skip
    add_onmt_arguments(parser)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/bench_opennmt"))
    parser.add_argument("--skip-translation", action="store_true")
    parser.add_argument(
        "--skip-training", action="store_true", help="translate with the models a previous run left in --work-dir"
    )
    add_quick_run_arguments(parser)
    args = parser.parse_args()
    if not args.corpus.is_file():
        parser.error(f"--corpus {args.corpus}: no such file; pass a file of src<TAB>tgt lines")
    return args


def allocator_environments(allocators: list[str], env: dict[str, str]) -> dict[str, dict[str, str]]:
    """The environment of each allocator to train under; tcmalloc only where it is installed."""
    # training.train would start itself again under tcmalloc when it is installed (training/allocator.py)
    environments = {"system": {**env, "SEQ2SEQ_RNN_ALLOCATOR": "system"}}
    tcmalloc = find_tcmalloc()
    if "tcmalloc" in allocators:
        if tcmalloc:
            environments["tcmalloc"] = {**env, "LD_PRELOAD": tcmalloc}
        else:
            print("tcmalloc not found (Debian: apt install libtcmalloc-minimal4): system allocator only")
    if "system" not in allocators:
        del environments["system"]
    return environments


def train_both(
    args: argparse.Namespace,
    bin_dir: Path | None,
    data: dict,
    configs: dict[str, Path | None],
    environments: dict[str, dict],
) -> tuple[dict[tuple[str, str, str], dict[str, list[float]]], list[float]]:
    """(feeding, allocator, system) -> {"step": [...], "peak": [...]}, and the matmul rate of each repeat.
    `configs`: OpenNMT-py's config of each input-feeding setting (None without OpenNMT-py: ours alone).

    The repeats are outermost, so that a drift of the machine's speed falls on both systems alike.
    """
    results: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    gflops = []
    for _ in range(0 if args.skip_training else args.repeats):
        gflops.append(matmul_rate(args.threads))
        for feeding, config in configs.items():
            for allocator, run_env in environments.items():
                if bin_dir is not None:
                    log = args.work_dir / f"onmt_train_feed-{feeding}_{allocator}.log"
                    _, peak = run_measured([str(bin_dir / "onmt_train"), "-config", str(config)], run_env, log)
                    measured = results.setdefault((feeding, allocator, "OpenNMT-py"), {"step": [], "peak": []})
                    measured["step"].append(onmt_step_seconds(log))
                    measured["peak"].append(peak)
                ours_dir = args.work_dir / f"ours_feed-{feeding}"
                shutil.rmtree(ours_dir, ignore_errors=True)
                command = ours_command(data, ours_dir, args.steps, args.threads, FEEDING[feeding]) + args.training_flags
                _, peak = run_measured(command, run_env, args.work_dir / f"ours_train_feed-{feeding}_{allocator}.log")
                measured = results.setdefault((feeding, allocator, "ours"), {"step": [], "peak": []})
                measured["step"].append(ours_step_seconds(ours_dir, args.steps))
                measured["peak"].append(peak)
    return results, gflops


def translate_both(
    args: argparse.Namespace, bin_dir: Path | None, data: dict, env: dict[str, str]
) -> dict[tuple[str, str], tuple[float, float]]:
    """(lengths, system) -> (seconds, words per output), with the models trained with input feeding
    (ours alone without OpenNMT-py)."""
    checkpoint = args.work_dir / f"onmt_model_feed1_step_{args.steps}.pt"
    sources = Path(data["test_src"])
    translation = {}
    for name, lengths in TRANSLATION_LENGTHS.items():
        if bin_dir is not None:
            translation[(name, "OpenNMT-py")] = translate_onmt(
                bin_dir, checkpoint, sources, lengths, args.work_dir, env
            )
        translation[(name, "ours")] = translate_ours(
            args.work_dir / "ours_feed-yes", sources, lengths, args.threads, env
        )
    return translation


def print_training(results: dict, data: dict) -> None:
    print_table(
        ["input feeding", "allocator", "system", "sentences/s", "target words/s", "ms/step", "peak RSS MB",
         "ours / OpenNMT, same settings", "/ OpenNMT reference"],
        [],
    )  # fmt: skip
    rates = {key: 64 / statistics.median(measured["step"]) for key, measured in results.items()}
    reference = rates.get(("yes", "system", "OpenNMT-py"))
    for (feeding, allocator, system), measured in results.items():
        rate = rates[(feeding, allocator, system)]
        onmt = rates.get((feeding, allocator, "OpenNMT-py"))
        same = f"{rate / onmt:.2f}x" if system == "ours" and onmt else ""
        versus = f"{rate / reference:.2f}x" if reference else "-"
        print(f"| {feeding} | {allocator} | {system} | {rate:.0f} | {rate * data['target_words']:.0f} "
              f"| {1000 * 64 / rate:.0f} | {max(measured['peak']):.0f} | {same} | {versus} |")  # fmt: skip


def print_translation(translation: dict, tokens: dict, ceiling: float, sentences: int) -> None:
    print(f"\nBeam 5, {sentences:,} sentences, batches of 64, the models trained with input feeding, model "
          "loading included:\n")  # fmt: skip
    rows = []
    for name, (_, longest) in TRANSLATION_LENGTHS.items():
        onmt_seconds, onmt_words = translation.get((name, "OpenNMT-py"), (None, None))
        our_seconds, our_words = translation[(name, "ours")]
        if name == "free":
            label = f"each model's own (at most {longest} tokens)"
            output = f"{onmt_words:.1f} / {our_words:.1f} words" if onmt_words else f"- / {our_words:.1f} words"
        else:  # ours decodes `longest` tokens, but those after its own </s> are special and dropped from the text
            label, output = f"exactly {longest} tokens", f"{longest} / {longest} tokens"
        onmt_cells = [f"{onmt_seconds:.1f}", f"{onmt_seconds / our_seconds:.2f}x"] if onmt_seconds else ["-", "-"]
        rows.append([label, onmt_cells[0], f"{our_seconds:.1f}", output, onmt_cells[1]])
    print_table(
        ["output length", "OpenNMT-py s", "ours s", "output per sentence, OpenNMT-py / ours", "ours faster by"], rows
    )
    floor = beam_gflop(sentences, FIXED_LENGTH, tokens["ours"][0]) / ceiling
    if ("fixed", "OpenNMT-py") not in translation:
        print(f"\nFloor of the fixed-length run: {floor:.1f} s of matrix products at {ceiling:.0f} GFLOP/s")
        return
    onmt_seconds = translation[("fixed", "OpenNMT-py")][0]
    print(f"\nFloor of the fixed-length run: {floor:.1f} s of matrix products at {ceiling:.0f} GFLOP/s (model "
          f"loading and the beam's bookkeeping not counted), so ours can be at most {onmt_seconds / floor:.2f}x "
          "faster than OpenNMT-py's time above")  # fmt: skip


def main() -> None:
    args = parse_arguments()
    bin_dir, env = onmt_setup(args)
    data = prepare_data(args.corpus, args.work_dir, args.max_train, args.split_sizes)
    environments = allocator_environments(args.allocators, env)
    configs: dict[str, Path | None] = dict.fromkeys(args.feeding)
    if bin_dir is not None:
        configs = {feeding: onmt_config(data, args.work_dir, args.steps, FEEDING[feeding]) for feeding in configs}
        build_onmt_vocab(bin_dir, next(iter(configs.values())), args.work_dir, env)
    results, gflops = train_both(args, bin_dir, data, configs, environments)
    translation = {}
    if not args.skip_translation and "yes" in configs:
        translation = translate_both(args, bin_dir, data, environments.get("system", env))
    memory = {mode: training_step_peak_mb(mode, args.threads, env) for mode in ("whole", "chunked")}
    gflops.append(matmul_rate(args.threads))
    ceiling = max(gflops)
    tokens = tokens_per_sentence(data, args.work_dir / f"ours_feed-{next(iter(configs))}")

    print(f"\n{machine_line(args.threads)}")
    print("fp32 matrix-product rate in this run (best of 64x512x1024 and 2048^3, once per repeat and at the end): "
          + ", ".join(f"{value:.0f}" for value in gflops) + " GFLOP/s")  # fmt: skip
    print(f"{data['train_pairs_count']} training pairs, {data['target_words']:.2f} words per target sentence, "
          f"{args.steps} steps x {args.repeats} runs per row (A/B alternating), fp32; tcmalloc: {find_tcmalloc()}\n")  # fmt: skip
    if results:
        print_training(results, data)
        print_floor(results, tokens, ceiling)
    if translation:
        print_translation(translation, tokens, ceiling, data["test_count"])
    print(
        f"\nOne training step, 64 x 50-token targets, 8k vocabulary, input feeding: peak RSS "
        f"{memory['chunked']:.0f} MB with the chunked loss, {memory['whole']:.0f} MB from the whole logits "
        f"({memory['chunked'] / memory['whole']:.2f}x)"
    )


if __name__ == "__main__":
    main()

"""OpenNMT-py 3.5.1 and `training.train` side by side, in one run, on the same data and machine.

    python benchmarks/bench_opennmt.py --threads 2 [--steps 300] [--repeats 2] \\
        [--corpus ../shared/data/tatoeba-eng-fra/eng-fra.txt] [--onmt-venv ~/.cache/hf-seq2seq-rnn/onmt-venv] \\
        [--feeding yes no] [--allocators system tcmalloc]

The peer runs from a scratch virtualenv (made on first use: torch 2.13.0, then
`pip install --no-deps OpenNMT-py==3.5.1` and its runtime dependencies). Both train OpenNMT's
reference shape (2-layer bidirectional LSTM encoder of 256 in total, 2-layer LSTM decoder of 256,
general attention, batch 64 sentences, fp32) for `--steps` steps on the same `src<TAB>tgt` pairs
with the same thread count, alternating OpenNMT / ours / OpenNMT / ours, each in its own process:
with input feeding (the reference) and without, and with each memory allocator of `--allocators`
("system": glibc malloc; "tcmalloc": Debian's libtcmalloc-minimal4 preloaded, skipped when absent).
Then both translate the same 2,000 held-out sources with beam 5 (`onmt_translate`, and our batched
`generate`), with the models trained with input feeding.

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
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: the project's packages from this checkout

from bench_model import forward_flops, matmul_rate  # noqa: E402  (benchmarks/, this script's folder)

from hf_seq2seq_rnn import Seq2SeqRNNConfig  # noqa: E402
from training.allocator import find_tcmalloc  # noqa: E402

ONMT_PACKAGES = [
    "configargparse", "pyyaml", "sacrebleu", "pyonmttok>=1.37,<2", "rapidfuzz", "pyahocorasick", "six",
    "tensorboard", "numpy<2.3", "spacy", "fasttext-wheel",
]  # fmt: skip
TEST_SIZE = 2000


def ensure_onmt(venv: Path) -> Path:
    """The virtualenv's bin folder with OpenNMT-py 3.5.1 installed (installed on first use)."""
    bin_dir = venv / "bin"
    if (bin_dir / "onmt_train").exists():
        return bin_dir
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(bin_dir / "pip"), "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)  # the CPU build first, so nothing pulls CUDA torch
    subprocess.run([*pip, "--no-deps", "OpenNMT-py==3.5.1"], check=True)  # its pin says torch<2.3
    subprocess.run([*pip, *ONMT_PACKAGES], check=True)
    return bin_dir


def prepare_data(corpus: Path, work: Path, max_train: int) -> dict[str, Path | float]:
    """Split the pairs as the reference run did (seed 1 shuffle; 2,000 test), write both formats."""
    pairs = []
    for line in corpus.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[0].strip() and fields[1].strip():
            pairs.append((fields[0].strip(), fields[1].strip()))
    random.seed(1)
    random.shuffle(pairs)
    test, train = pairs[:TEST_SIZE], pairs[TEST_SIZE : TEST_SIZE + max_train]
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
    return {**files, "target_words": words, "train_pairs_count": len(train)}


def run_measured(command: list[str], env: dict[str, str], log: Path) -> tuple[float, float]:
    """Run `command` to completion: (wall seconds, peak RSS of that process in MB)."""
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({process.returncode}); see {log}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def onmt_config(data: dict, work: Path, steps: int, input_feeding: bool) -> Path:
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
        "save_checkpoint_steps": steps,
        "train_steps": steps,
        "valid_steps": 10 * steps,
        "report_every": max(steps // 5, 1),
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


def clean_vocab(path: Path) -> None:
    """Keep only `token<TAB>count` lines that onmt_train reads back: it splits on any whitespace, so
    an empty token or one holding a Unicode space (French `\u202f?`) would be an error there."""
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if len(line.split("\t")) == 2 and len(line.split()) == 2]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def onmt_step_seconds(log: Path) -> float:
    """Seconds per step between OpenNMT's first and last reports (`Step N/...; ...; S sec;`): its
    clock starts before data loading, so the first report carries the start-up."""
    reports = [
        (int(line.split("Step ")[1].split("/")[0]), float(re.search(r"([0-9.]+) sec", line).group(1)))
        for line in log.read_text(encoding="utf-8").splitlines()
        if "Step " in line and " sec" in line
    ]
    (first_step, first_seconds), (last_step, last_seconds) = reports[0], reports[-1]
    return (last_seconds - first_seconds) / (last_step - first_step)


def ours_step_seconds(output_dir: Path, steps: int) -> float:
    info = json.loads((output_dir / "training_info.json").read_text(encoding="utf-8"))
    return info["throughput"]["training_seconds"] / steps


def tokens_per_sentence(data: dict, tokenizer_dir: Path) -> dict[str, tuple[float, float]]:
    """Mean (source, target) tokens per training pair as each system trains on them: ours, subwords
    of our tokenizer with `</s>` on both sides; OpenNMT-py, words, with `</s>` on the target only."""
    from transformers import AutoTokenizer

    lines = Path(data["train_pairs"]).read_text(encoding="utf-8").splitlines()
    sources, targets = zip(*(line.split("\t") for line in lines), strict=True)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, trust_remote_code=True)
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


def beam_gflop(sentences: int, new_tokens: int, source_tokens: float) -> float:
    """The same lower bound for beam-5 translation that decodes `new_tokens` for every sentence:
    the encoder once per sentence, the decoder step and the output layer once per beam per step."""
    config = reference_config(True)
    encoder = forward_flops(config, source_tokens, 0, source_tokens)
    decoder = forward_flops(config, 0, 1, source_tokens)
    return sentences * (encoder + 5 * new_tokens * decoder) / 1e9


TRANSLATE = """
import json, statistics, sys, time, torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
model_dir, sources_path, batch, threads, shortest, longest = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
torch.set_num_threads(threads)
sources = open(sources_path, encoding="utf-8").read().splitlines()
started = time.perf_counter()  # like onmt_translate's own clock: loading the model included
tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, trust_remote_code=True).eval()
fixed = shortest == longest
if fixed:  # no </s> at all, rather than min_new_tokens, a logits processor that masks it every step
    model.generation_config.eos_token_id = None
outputs = []
with torch.no_grad():
    for start in range(0, len(sources), batch):
        encoded = tokenizer(sources[start : start + batch], return_tensors="pt", padding=True)
        generated = model.generate(**encoded, num_beams=5, min_new_tokens=0 if fixed else shortest, max_new_tokens=longest)
        outputs += tokenizer.batch_decode(generated, skip_special_tokens=True)
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "words": statistics.mean(len(output.split()) for output in outputs)}))
"""
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
    """Seconds for beam-5 translation of `sources` with our generate, batches of 64, model loading
    included; and words per output. In a fresh process, like `onmt_translate`."""
    command = [sys.executable, "-c", TRANSLATE, str(model_dir), str(sources), "64", str(threads), *map(str, lengths)]
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
from hf_seq2seq_rnn import Seq2SeqRNNConfig, Seq2SeqRNNForConditionalGeneration, modeling_seq2seq_rnn
torch.set_num_threads(int(sys.argv[2]))
if sys.argv[1] == "whole":  # the baseline: the loss from the whole (B, T, V) logits
    modeling_seq2seq_rnn.CHUNKED_LOSS_MIN_LOGITS = float("inf")
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


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


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
        if system == "ours":
            onmt_step = 1000 * statistics.median(results[(feeding, allocator, "OpenNMT-py")]["step"])
            bounds[(feeding, allocator)] = onmt_step / floor
    print("\nThe highest sentences/s ratio to OpenNMT-py that these products allow ours, at OpenNMT's measured "
          "speed: " + "; ".join(f"input feeding {feeding}, {allocator}: {bound:.2f}x"
                                for (feeding, allocator), bound in bounds.items()))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared/data/tatoeba-eng-fra/eng-fra.txt")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2, help="A/B pairs of training runs per setting")
    parser.add_argument("--max-train", type=int, default=50000, help="training pairs used (vocabularies, batches)")
    parser.add_argument("--feeding", nargs="+", choices=list(FEEDING), default=list(FEEDING),
                        help="input feeding on (OpenNMT's reference), off, or both (default)")  # fmt: skip
    parser.add_argument("--allocators", nargs="+", choices=("system", "tcmalloc"), default=["system", "tcmalloc"],
                        help="memory allocators to train under (tcmalloc is skipped when not installed)")  # fmt: skip
    parser.add_argument("--onmt-venv", type=Path, default=Path.home() / ".cache/hf-seq2seq-rnn/onmt-venv")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/bench_opennmt"))
    parser.add_argument("--skip-translation", action="store_true")
    parser.add_argument(
        "--skip-training", action="store_true", help="translate with the models a previous run left in --work-dir"
    )
    args = parser.parse_args()
    if not args.corpus.is_file():
        parser.error(f"--corpus {args.corpus}: no such file; pass a file of src<TAB>tgt lines")
    torch.set_num_threads(args.threads)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    bin_dir = ensure_onmt(args.onmt_venv)
    data = prepare_data(args.corpus, args.work_dir, args.max_train)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"  # onmt_translate's checkpoints on torch 2.6+
    # training.train would start itself again under tcmalloc when it is installed (training/allocator.py)
    environments = {"system": {**env, "SEQ2SEQ_RNN_ALLOCATOR": "system"}}
    tcmalloc = find_tcmalloc()
    if "tcmalloc" in args.allocators:
        if tcmalloc:
            environments["tcmalloc"] = {**env, "LD_PRELOAD": tcmalloc}
        else:
            print("tcmalloc not found (Debian: apt install libtcmalloc-minimal4): system allocator only")
    if "system" not in args.allocators:
        del environments["system"]
    configs = {feeding: onmt_config(data, args.work_dir, args.steps, FEEDING[feeding]) for feeding in args.feeding}
    run_measured(
        [str(bin_dir / "onmt_build_vocab"), "-config", str(next(iter(configs.values()))), "-n_sample", "-1"],
        env, args.work_dir / "vocab.log",
    )  # fmt: skip
    for name in ("vocab.src", "vocab.tgt"):
        clean_vocab(args.work_dir / name)

    # (feeding, allocator, system) -> {"step": [...], "peak": [...]}; the repeats outermost, so that a
    # drift of the machine's speed falls on both systems alike.
    results: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    gflops = []
    for _ in range(0 if args.skip_training else args.repeats):
        gflops.append(matmul_rate(args.threads))
        for feeding, config in configs.items():
            for allocator, run_env in environments.items():
                key = (feeding, allocator)
                log = args.work_dir / f"onmt_train_feed-{feeding}_{allocator}.log"
                _, peak = run_measured([str(bin_dir / "onmt_train"), "-config", str(config)], run_env, log)
                measured = results.setdefault((*key, "OpenNMT-py"), {"step": [], "peak": []})
                measured["step"].append(onmt_step_seconds(log))
                measured["peak"].append(peak)
                ours_dir = args.work_dir / f"ours_feed-{feeding}"
                shutil.rmtree(ours_dir, ignore_errors=True)
                command = ours_command(data, ours_dir, args.steps, args.threads, FEEDING[feeding])
                _, peak = run_measured(command, run_env, args.work_dir / f"ours_train_feed-{feeding}_{allocator}.log")
                measured = results.setdefault((*key, "ours"), {"step": [], "peak": []})
                measured["step"].append(ours_step_seconds(ours_dir, args.steps))
                measured["peak"].append(peak)

    # (lengths, system) -> (seconds, words per output)
    translation: dict[tuple[str, str], tuple[float, float]] = {}
    if not args.skip_translation and "yes" in configs:
        reference_env = environments.get("system", env)
        checkpoint = args.work_dir / f"onmt_model_feed1_step_{args.steps}.pt"
        sources = Path(data["test_src"])
        for name, lengths in TRANSLATION_LENGTHS.items():
            translation[(name, "OpenNMT-py")] = translate_onmt(
                bin_dir, checkpoint, sources, lengths, args.work_dir, reference_env
            )
            translation[(name, "ours")] = translate_ours(
                args.work_dir / "ours_feed-yes", sources, lengths, args.threads, reference_env
            )

    memory = {mode: training_step_peak_mb(mode, args.threads, env) for mode in ("whole", "chunked")}
    gflops.append(matmul_rate(args.threads))
    ceiling = max(gflops)
    tokens = tokens_per_sentence(data, args.work_dir / f"ours_feed-{next(iter(configs))}")

    load = os.getloadavg()
    print(f"\nCPU: {cpu_model()}, {os.cpu_count()} logical cores; torch.set_num_threads({args.threads})")
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; fp32 matrix-product rate in this run (best of "
          "64x512x1024 and 2048^3, once per repeat and at the end): "
          + ", ".join(f"{value:.0f}" for value in gflops) + " GFLOP/s")  # fmt: skip
    print(f"{data['train_pairs_count']} training pairs, {data['target_words']:.2f} words per target sentence, "
          f"{args.steps} steps x {args.repeats} runs per row (A/B alternating), fp32; tcmalloc: {tcmalloc}")  # fmt: skip
    if results:
        print("\n| input feeding | allocator | system | sentences/s | target words/s | ms/step | peak RSS MB "
              "| ours / OpenNMT, same settings | / OpenNMT reference |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
        rates = {key: 64 / statistics.median(measured["step"]) for key, measured in results.items()}
        reference = rates.get(("yes", "system", "OpenNMT-py"))
        for (feeding, allocator, system), measured in results.items():
            rate = rates[(feeding, allocator, system)]
            same = f"{rate / rates[(feeding, allocator, 'OpenNMT-py')]:.2f}x" if system == "ours" else ""
            versus = f"{rate / reference:.2f}x" if reference else "-"
            print(f"| {feeding} | {allocator} | {system} | {rate:.0f} | {rate * data['target_words']:.0f} "
                  f"| {1000 * 64 / rate:.0f} | {max(measured['peak']):.0f} | {same} | {versus} |")  # fmt: skip
        print_floor(results, tokens, ceiling)
    if translation:
        print(f"\nBeam 5, {TEST_SIZE:,} sentences, batches of 64, the models trained with input feeding, model "
              "loading included:\n")  # fmt: skip
        print("| output length | OpenNMT-py s | ours s | output per sentence, OpenNMT-py / ours | ours faster by |")
        print("|---|---|---|---|---|")
        for name, (_, longest) in TRANSLATION_LENGTHS.items():
            (onmt_seconds, onmt_words), (our_seconds, our_words) = (
                translation[(name, "OpenNMT-py")],
                translation[(name, "ours")],
            )
            if name == "free":
                label, output = (
                    f"each model's own (at most {longest} tokens)",
                    f"{onmt_words:.1f} / {our_words:.1f} words",
                )
            else:  # ours decodes `longest` tokens, but those after its own </s> are special and dropped from the text
                label, output = f"exactly {longest} tokens", f"{longest} / {longest} tokens"
            print(f"| {label} | {onmt_seconds:.1f} | {our_seconds:.1f} | {output} "
                  f"| {onmt_seconds / our_seconds:.2f}x |")  # fmt: skip
        floor = beam_gflop(TEST_SIZE, FIXED_LENGTH, tokens["ours"][0]) / ceiling
        onmt_seconds = translation[("fixed", "OpenNMT-py")][0]
        print(f"\nFloor of the fixed-length run: {floor:.1f} s of matrix products at {ceiling:.0f} GFLOP/s (model "
              f"loading and the beam's bookkeeping not counted), so ours can be at most {onmt_seconds / floor:.2f}x "
              "faster than OpenNMT-py's time above")  # fmt: skip
    print(
        f"\nOne training step, 64 x 50-token targets, 8k vocabulary, input feeding: peak RSS "
        f"{memory['chunked']:.0f} MB with the chunked loss, {memory['whole']:.0f} MB from the whole logits "
        f"({memory['chunked'] / memory['whole']:.2f}x)"
    )


if __name__ == "__main__":
    main()

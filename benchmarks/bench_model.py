"""Training and generation speed of the model at the reference shape, against the matmul ceiling.

    python -m benchmarks.bench_model --threads 2 [--steps 20] [--corpus path/to/eng-fra.txt | --corpus HUB_ID]

Reference shape (the shape OpenNMT-py's reference configuration trains, timed by bench_opennmt.py): a 2-layer
bidirectional LSTM encoder, a 2-layer LSTM decoder, 256 units, general attention, batch 64,
sentence lengths of the English–French Tatoeba pairs kept by the tutorial filter (drawn from the
`--corpus` when given: a file of english<TAB>french lines or a `datasets` Hub id; else from the same
distribution written down below) in batches grouped by
length as training makes them, a 4000-token
vocabulary (a joint subword vocabulary sized for that data; OpenNMT-py's word vocabulary of the
filtered pairs is about as large). It prints one table: training target tokens per second and peak memory, with and
without input feeding, fp32 and bf16 autocast; the model FLOP rate beside the torch matrix-product
rate measured in the same run (the ceiling); greedy and beam-5 sentences per second; and the time
for 128 new tokens over the time for 32 (a flat per-step cost gives 4.0). OpenNMT-py itself is timed
beside ours, in the same run, by `benchmarks.bench_opennmt`, which reuses `forward_flops` and `matmul_rate`.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import sys
import time

import torch

from hf_seq2seq_rnn import Seq2SeqRNNConfig, Seq2SeqRNNForConditionalGeneration
from seq2seq_tools.machine import autocast_unavailable

from .common import add_threads_argument, machine_line, read_pairs

# Token counts (subwords + </s>) of tutorial-filtered eng-fra pairs, for machines without the corpus.
FALLBACK_SOURCE_LENGTHS = [5, 6, 6, 7, 7, 7, 8, 8, 8, 9, 9, 10, 11, 12]
FALLBACK_TARGET_LENGTHS = [6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 12, 13, 14, 16]
PREFIXES = ("i am", "i m", "he is", "he s", "she is", "she s", "you are", "you re", "we are", "we re", "they are")


def corpus_lengths(pairs: list[tuple[str, str]]) -> tuple[list[int], list[int]]:
    """Word counts of the tutorial-filtered pairs, times 1.3 subwords per word, plus </s>."""
    sources, targets = [], []
    for parts in pairs:
        english = re.sub(r"[^a-z.!? ]", " ", parts[0].lower().replace("'", " "))
        english_words, french_words = english.split(), parts[1].split()
        if len(english_words) < 10 and len(french_words) < 10 and " ".join(english_words).startswith(PREFIXES):
            sources.append(round(len(english_words) * 1.3) + 1)
            targets.append(round(len(french_words) * 1.3) + 1)
    return sources, targets


def length_grouped_picks(lengths: list[int], batch: int, count: int, rng: random.Random) -> list[list[int]]:
    """`count` batches of pair indices grouped by length, as the training sampler (and OpenNMT-py's
    bucketing) makes them: draw a pool of `count` batches, sort it by length, cut, shuffle."""
    pool = sorted((rng.randrange(len(lengths)) for _ in range(batch * count)), key=lambda i: lengths[i])
    batches = [pool[start : start + batch] for start in range(0, len(pool), batch)]
    rng.shuffle(batches)
    return batches


def make_batch(sources: list[int], targets: list[int], picks: list[int], vocab: int):
    batch = len(picks)
    source_lengths = [sources[i] for i in picks]
    target_lengths = [targets[i] for i in picks]
    input_ids = torch.zeros(batch, max(source_lengths), dtype=torch.long)
    labels = torch.full((batch, max(target_lengths)), -100, dtype=torch.long)
    for row, (s, t) in enumerate(zip(source_lengths, target_lengths, strict=True)):
        input_ids[row, :s] = torch.randint(4, vocab, (s,))
        labels[row, :t] = torch.randint(4, vocab, (t,))
    return input_ids, (input_ids != 0).long(), labels


def forward_flops(config: Seq2SeqRNNConfig, source_tokens: int, target_tokens: int, source_len: float) -> float:
    """Multiply–add FLOPs (2 per MAC) of one forward pass over the given token counts."""
    hidden, embed, layers = config.hidden_size, config.embedding_size, config.num_layers
    direction = hidden // 2
    encoder = 0
    for layer in range(layers):
        width = embed if layer == 0 else hidden
        encoder += 2 * 2 * 4 * direction * (width + direction)  # two directions
    decoder = 0
    for layer in range(layers):
        width = (embed + (hidden if config.input_feeding else 0)) if layer == 0 else hidden
        decoder += 2 * 4 * hidden * (width + hidden)
    attention = 2 * hidden * hidden + 2 * 2 * source_len * hidden + 2 * 2 * hidden * hidden  # W_a, scores+context, W_c
    output = 2 * hidden * config.vocab_size
    return encoder * source_tokens + (decoder + attention + output) * target_tokens


def matmul_rate(threads: int) -> float:
    """GFLOP/s of a 64x512 @ 512x1024 float32 product (LSTM-gate sized) and 2048^2."""
    best = 0.0
    for m, k, n in ((64, 512, 1024), (2048, 2048, 2048)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        repeats = max(3, int(2e9 / (2 * m * k * n)))
        torch.mm(a, b)
        start = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b)
        best = max(best, 2 * m * k * n * repeats / (time.perf_counter() - start) / 1e9)
    return best


def train_speed(config, sources, targets, batch, steps, dtype) -> tuple[float, float, float]:
    torch.manual_seed(0)
    model = Seq2SeqRNNForConditionalGeneration(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)  # as training/train.py
    rng = random.Random(0)
    grouped = length_grouped_picks(targets, batch, steps + 2, rng)
    batches = [make_batch(sources, targets, picks, config.vocab_size) for picks in grouped]
    tokens = flops = 0.0
    for index, (input_ids, attention_mask, labels) in enumerate(batches):
        if index == 2:  # two warm-up steps
            start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        if index >= 2:
            target_tokens = float((labels != -100).sum())
            tokens += target_tokens
            flops += 3 * forward_flops(
                config, float(attention_mask.sum()), input_ids.shape[0] * labels.shape[1], input_ids.shape[1]
            )
    elapsed = time.perf_counter() - start
    return tokens / elapsed, flops / elapsed / 1e9, loss.item()


def generation_speed(config, sources, batch: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = Seq2SeqRNNForConditionalGeneration(config).eval()
    rng = random.Random(1)
    picks = [rng.randrange(len(sources)) for _ in range(batch)]
    input_ids, attention_mask, _ = make_batch(sources, sources, picks, config.vocab_size)
    results = {}
    with torch.inference_mode():
        for name, settings in (("greedy", dict(num_beams=1)), ("beam-5", dict(num_beams=5))):
            elapsed = best_time(
                lambda settings=settings: model.generate(
                    input_ids, attention_mask=attention_mask, max_new_tokens=20, min_new_tokens=20, **settings
                )
            )
            results[name] = batch / elapsed
        times = {
            new_tokens: best_time(
                lambda new_tokens=new_tokens: model.generate(
                    input_ids[:8],
                    attention_mask=attention_mask[:8],
                    max_new_tokens=new_tokens,
                    min_new_tokens=new_tokens,
                )
            )
            for new_tokens in (32, 128)
        }
        results["128/32"] = times[128] / times[32]
    return results


def best_time(run, repeats: int = 3) -> float:
    """The fastest of `repeats` runs after one warm-up: the least disturbed by other processes."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_threads_argument(parser, default=2)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per row")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--vocab-size", type=int, default=4000)
    parser.add_argument(
        "--corpus",
        default=None,
        help="english<TAB>french file or datasets Hub id for the sentence lengths (default: the built-in distribution)",
    )
    parser.add_argument("--hub-config", default=None, help="the Hub dataset's configuration (e.g. en-fr)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.corpus:
        sources, targets = corpus_lengths(read_pairs(args.corpus, args.hub_config))
        origin = f"{os.path.basename(args.corpus)} ({len(sources)} filtered pairs)"
        if not sources:
            sys.exit(f"no pair of {args.corpus} passes the tutorial filter (English source, under 10 words)")
    else:
        sources, targets = FALLBACK_SOURCE_LENGTHS, FALLBACK_TARGET_LENGTHS
        origin = "built-in length distribution (no --corpus)"
    print(f"{machine_line(args.threads)}; lengths from {origin}")
    ceiling = matmul_rate(args.threads)
    print(f"matrix-product ceiling measured now: {ceiling:.1f} GFLOP/s")
    print()
    print(f"| {'training':<26} | {'target tok/s':>12} | {'GFLOP/s':>8} | {'of ceiling':>10} | {'peak MB':>8} |")
    print(f"|{'-' * 28}|{'-' * 14}|{'-' * 10}|{'-' * 12}|{'-' * 10}|")
    bf16_unavailable = autocast_unavailable("bf16")
    for input_feeding in (False, True):
        for dtype in ("fp32",) if bf16_unavailable else ("fp32", "bf16"):
            config = Seq2SeqRNNConfig(
                vocab_size=args.vocab_size,
                embedding_size=256,
                hidden_size=256,
                num_layers=2,
                cell_type="lstm",
                bidirectional_encoder=True,
                attention_type="general",
                input_feeding=input_feeding,
                dropout=0.3,
            )
            rate, gflops, _ = train_speed(config, sources, targets, args.batch, args.steps, dtype)
            name = f"{'input feeding' if input_feeding else 'no input feeding'}, {dtype}"
            print(
                f"| {name:<26} | {rate:>12,.0f} | {gflops:>8.1f} | {gflops / ceiling:>10.2f} | {peak_memory_mb():>8.0f} |"
            )
    if bf16_unavailable:  # under the table: a line inside it would end the Markdown table
        print(f"(no bf16 rows: {bf16_unavailable})")
    print()
    config = Seq2SeqRNNConfig(
        vocab_size=args.vocab_size, embedding_size=256, hidden_size=256, num_layers=2, attention_type="general"
    )
    generation = generation_speed(config, sources, args.batch)
    print(f"| {'generation (batch ' + str(args.batch) + ', 20 tokens)':<32} | {'sentences/s':>11} |")
    print(f"|{'-' * 34}|{'-' * 13}|")
    for name in ("greedy", "beam-5"):
        print(f"| {name:<32} | {generation[name]:>11.1f} |")
    print(f"time for 128 new tokens / time for 32 (batch 8): {generation['128/32']:.2f} (flat per-step cost: 4.0)")


if __name__ == "__main__":
    main()

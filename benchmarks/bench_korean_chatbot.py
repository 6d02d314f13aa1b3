"""Score a chatbot trained on the Korean everyday-conversation set, and show its replies to new questions.

    python -m training.train --config training/configs/chatbot_ko.yaml \
        --dataset ../shared/data/songys-chatbot-ko/ChatbotData.csv --output-dir runs/chatbot-ko
    python -m benchmarks.bench_korean_chatbot --dataset ../shared/data/songys-chatbot-ko/ChatbotData.csv \
        runs/chatbot-ko [runs/baseline ...]

For each trained directory: the held-out pairs it was validated on (rebuilt from its
`training_info.json`: same file, columns, size and seed; every run is scored on the same first
`--pairs` of them, by default as many as the run that evaluated the fewest), its replies by beam
search, and BLEU, chrF, exact match and token F1 against the references, beside its steps and its
perplexity on those pairs (plain cross-entropy, without the training's label smoothing, per token of
its own tokenizer). Then its replies to `QUESTIONS`: everyday questions that are in neither
ChatbotData nor the Korean chatterbot-corpus (checked against both before scoring).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os

import torch

from .common import add_threads_argument, machine_line

QUESTIONS = [
    "오늘 날씨 어때?",
    "주말에 뭐 할까?",
    "요즘 잠이 안 와",
    "점심 메뉴 추천해 줘",
    "친구랑 싸웠는데 어떡하지?",
    "회사 가기 싫다",
    "운동을 시작하고 싶어",
    "시험이 내일이야",
    "비가 와서 우울해",
    "생일 선물 뭐가 좋을까?",
]


def read_info(directory: str) -> dict:
    with open(os.path.join(directory, "training_info.json"), encoding="utf-8") as handle:
        return json.load(handle)


def held_out(info: dict, dataset: str, count: int) -> tuple[list[str], list[str]]:
    """The first `count` (sources, references) of the run's validation split, in the order the run scored
    them. (`training_info.json` keeps only the data file's name, not where it lies: `dataset` is its path.)"""
    from training.data import DataSpec, load_pairs

    config = info["config"] | {"dataset": dataset}
    spec = DataSpec(**{item.name: config[item.name] for item in dataclasses.fields(DataSpec)})
    validation = load_pairs(spec)[0]["validation"]
    validation = validation.select(range(min(count, len(validation))))
    return list(validation["source"]), list(validation["target"])


def perplexity(model, tokenizer, sources: list[str], references: list[str], batch_size: int = 64) -> float:
    """exp of the mean cross-entropy per target token (with `</s>`), without label smoothing."""
    total, tokens = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(sources), batch_size):
            batch = tokenizer(
                sources[start : start + batch_size], text_target=references[start : start + batch_size],
                padding=True, return_tensors="pt",
            )  # fmt: skip
            labels = batch["labels"].masked_fill(batch["labels"] == tokenizer.pad_token_id, -100)  # (B, T)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).logits
            total += torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="sum").item()
            tokens += int((labels != -100).sum())
    return math.exp(total / tokens)


def score(directory: str, dataset: str, num_beams: int, count: int) -> dict:
    from seq2seq_tools.generation import generate_texts
    from seq2seq_tools.loading import load_model, load_tokenizer
    from training.evaluation import TASK_METRICS, load_metrics

    info = read_info(directory)
    tokenizer, model = load_tokenizer(directory), load_model(directory).eval()
    sources, references = held_out(info, dataset, count)
    max_new_tokens = info["config"]["max_new_tokens"]
    outputs = generate_texts(model, tokenizer, sources, num_beams=num_beams, max_new_tokens=max_new_tokens)
    predictions = [output.text for output in outputs]
    scores = {"pairs": len(sources), "steps": info["eval_history"][-1]["step"], "sources": sources}
    scores["perplexity"] = perplexity(model, tokenizer, sources, references)
    for task in ("translation", "qa"):
        for name, metric in load_metrics(task).items():
            key, reported = TASK_METRICS[task][name]
            scores[reported] = float(metric.compute(predictions=predictions, references=references)[key])
    scores["replies"] = dict(
        zip(
            QUESTIONS,
            [
                output.text
                for output in generate_texts(
                    model, tokenizer, QUESTIONS, num_beams=num_beams, max_new_tokens=max_new_tokens
                )
            ],
            strict=True,
        )
    )
    return scores


def check_unseen(chatbot_data: str) -> None:
    """Stop if a question of `QUESTIONS` is a prompt of ChatbotData or of the Korean chatterbot-corpus."""
    import csv

    from training.demos import chat_demo

    with open(chatbot_data, encoding="utf-8") as handle:
        seen = {row["Q"].strip() for row in csv.DictReader(handle)}
    seen |= {turn.strip() for turns in chat_demo("ko")["conversation"] for turn in turns}
    found = [question for question in QUESTIONS if question in seen]
    if found:
        raise SystemExit(f"these questions are in the training data: {found}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directories", nargs="+", help="trained model directories")
    parser.add_argument("--num-beams", type=int, default=4)
    add_threads_argument(parser, default=1)
    parser.add_argument("--dataset", required=True, help="the ChatbotData.csv the models were trained on")
    parser.add_argument("--pairs", type=int, default=None, help="held-out pairs to score every run on")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    check_unseen(args.dataset)
    print(machine_line(args.threads) + "\n")
    print(
        "| model | steps | perplexity | BLEU | chrF | exact match | token F1 |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    count = args.pairs or min(
        read_info(directory)["config"]["max_eval_samples"] or 10**9 for directory in args.directories
    )
    results = {}
    for directory in args.directories:
        results[directory] = result = score(directory, args.dataset, args.num_beams, count)
        if result["sources"] != next(iter(results.values()))["sources"]:
            raise SystemExit(f"{directory} was validated on other pairs than {args.directories[0]}: same "
                             "--validation-size and --seed are needed for one table")  # fmt: skip
        print(
            f"| {os.path.basename(directory.rstrip('/'))} | {result['steps']} | {result['perplexity']:.0f} | "
            f"{result['bleu']:.1f} | {result['chrf']:.1f} | {result['exact_match']:.1f} | {result['f1']:.1f} |",
            flush=True,
        )
    for directory, result in results.items():
        print(f"\n{directory} ({result['pairs']} held-out pairs):")
        for question, reply in result["replies"].items():
            print(f"  {question} → {reply}")


if __name__ == "__main__":
    main()

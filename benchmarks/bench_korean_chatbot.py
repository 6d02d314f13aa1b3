"""Score a chatbot trained on the Korean everyday-conversation set, and show its replies to new questions.

    python -m training.train --config training/configs/chatbot_ko.yaml \
        --dataset ../shared/data/songys-chatbot-ko/ChatbotData.csv --output-dir runs/chatbot-ko
    python -m benchmarks.bench_korean_chatbot --dataset ../shared/data/songys-chatbot-ko/ChatbotData.csv \
        runs/chatbot-ko [runs/baseline ...]

For each trained directory: the held-out pairs it was validated on (rebuilt from its
`training_info.json`: same file, columns, size and seed), its replies by beam search, and BLEU, chrF,
exact match and token F1 against the references, beside the steps and validation perplexity of its last
evaluation. Then its replies to `QUESTIONS`: everyday questions that are in neither ChatbotData nor
the Korean chatterbot-corpus (checked against both before scoring).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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


def held_out(info: dict, dataset: str) -> tuple[list[str], list[str]]:
    """The (sources, references) of the run's validation split, in the order the run scored them.
    (`training_info.json` keeps only the data file's name, not where it lies: `dataset` is its path.)"""
    from training.data import DataSpec, load_pairs

    config = info["config"] | {"dataset": dataset}
    spec = DataSpec(**{item.name: config[item.name] for item in dataclasses.fields(DataSpec)})
    validation = load_pairs(spec)[0]["validation"]
    count = min(config.get("max_eval_samples") or len(validation), len(validation))
    validation = validation.select(range(count))
    return list(validation["source"]), list(validation["target"])


def score(directory: str, dataset: str, num_beams: int) -> dict:
    from seq2seq_tools.generation import generate_texts
    from seq2seq_tools.loading import load_model, load_tokenizer
    from training.evaluation import TASK_METRICS, load_metrics

    with open(os.path.join(directory, "training_info.json"), encoding="utf-8") as handle:
        info = json.load(handle)
    tokenizer, model = load_tokenizer(directory), load_model(directory).eval()
    sources, references = held_out(info, dataset)
    max_new_tokens = info["config"]["max_new_tokens"]
    outputs = generate_texts(model, tokenizer, sources, num_beams=num_beams, max_new_tokens=max_new_tokens)
    predictions = [output.text for output in outputs]
    scores = {"pairs": len(sources), "steps": info["eval_history"][-1]["step"]}
    scores["perplexity"] = info["eval_history"][-1]["perplexity"]
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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    check_unseen(args.dataset)
    print(machine_line(args.threads) + "\n")
    print(
        "| model | steps | perplexity | BLEU | chrF | exact match | token F1 |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    results = {}
    for directory in args.directories:
        results[directory] = result = score(directory, args.dataset, args.num_beams)
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

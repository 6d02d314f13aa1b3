"""Korean tokenizers compared at the same time budget: morphemes + BPE, syllables (char), plain BPE.

    python -m benchmarks.bench_korean_tokenizers \
        --chatbot-data ../shared/data/songys-chatbot-ko/ChatbotData.csv \
        --tatoeba ../shared/data/tatoeba-eng-kor/eng-kor.txt --minutes 5 --output runs/korean-tokenizers

Three tasks: the Korean chatbot set (`Q` -> `A`, a held-out split) and the Tatoeba English–Korean pairs in
both directions (a held-out split). For each task the three tokenizer kinds train at once, one torch thread
each, for the same wall-clock budget (`--max-minutes`), so that they share whatever load the machine has;
every other setting is the same. Each run is `python -m training.train ...` (the table prints the command)
and is scored at its end on the held-out pairs: BLEU and chrF (sacrebleu, beam search), with the steps it
managed. The data is read where it lies; the Korean -> English direction reads a reordered copy of the
Tatoeba file written to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile

from .common import REPO, machine_line

KINDS = ("morpheme", "char", "bpe")
# The same model and optimizer for every tokenizer: small enough to take many steps on one thread.
COMMON = [
    "--config", "training/configs/translation.yaml", "--task", "translation",
    "--embedding-size", "128", "--hidden-size", "256", "--num-layers", "1", "--dropout", "0.2",
    "--batch-size", "32", "--learning-rate", "0.003", "--warmup-steps", "100", "--label-smoothing", "0.1",
    "--max-source-length", "96", "--max-target-length", "96", "--overlong", "truncate", "--max-new-tokens", "96",
    "--num-beams", "4", "--eval-steps", "1000000", "--checkpointing-steps", "1000000", "--report-to", "none",
    "--num-threads", "1", "--mixed-precision", "no", "--min-frequency", "2",
]  # fmt: skip


def tasks(chatbot_data: str, tatoeba: str, folder: str) -> dict[str, list[str]]:
    """Each task's data flags. Tatoeba lines are `english<TAB>korean<TAB>attribution`."""
    ko_en = os.path.join(folder, "kor-eng.tsv")
    with open(tatoeba, encoding="utf-8") as source, open(ko_en, "w", encoding="utf-8") as target:
        target.write("ko\ten\n")
        for line in source:
            fields = line.rstrip("\n").split("\t")
            if len(fields) >= 2:
                target.write(f"{fields[1]}\t{fields[0]}\n")
    return {
        "chatbot (Q -> A)": ["--dataset", chatbot_data, "--source-column", "Q", "--target-column", "A",
                             "--validation-size", "1000", "--max-eval-samples", "300", "--vocab-size", "4000"],
        "Tatoeba ko -> en": ["--dataset", ko_en, "--source-column", "ko", "--target-column", "en",
                             "--validation-size", "400", "--max-eval-samples", "400", "--vocab-size", "2000"],
        "Tatoeba en -> ko": ["--dataset", tatoeba, "--validation-size", "400", "--max-eval-samples", "400",
                             "--vocab-size", "2000"],
    }  # fmt: skip


def run_task(name: str, data: list[str], minutes: float, output: str, extra: list[str]) -> list[dict]:
    """The three kinds of one task, trained side by side, with the flags `extra` last; their final scores."""
    slug = "".join(char if char.isalnum() else "-" for char in name.lower()).strip("-")
    processes = []
    for kind in KINDS:
        directory = os.path.join(output, slug, kind)
        arguments = [*COMMON, *data, "--tokenizer-type", kind, "--max-minutes", str(minutes), "--output-dir", directory]
        arguments += extra
        log = open(os.path.join(output, f"{slug}-{kind}.log"), "w", encoding="utf-8")  # noqa: SIM115 - closed below
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        command = [sys.executable, "-m", "training.train", *arguments]
        processes.append(
            (
                kind,
                directory,
                command,
                log,
                subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT),
            )
        )
    rows = []
    for kind, directory, command, log, process in processes:
        process.wait()
        log.close()
        if process.returncode != 0:
            raise SystemExit(f"{name} / {kind} failed (exit {process.returncode}); see {log.name}")
        with open(os.path.join(directory, "training_info.json"), encoding="utf-8") as handle:
            info = json.load(handle)
        last = info["eval_history"][-1]
        rows.append({"task": name, "kind": kind, "steps": last["step"], "bleu": last["bleu"], "chrf": last["chrf"],
                     "eval_loss": last["eval_loss"], "command": shlex.join(command[1:])})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chatbot-data", required=True, help="ChatbotData.csv (columns Q, A, label)")
    parser.add_argument("--tatoeba", required=True, help="eng-kor.txt (english<TAB>korean<TAB>attribution)")
    parser.add_argument("--minutes", type=float, default=5.0, help="training budget of every run")
    parser.add_argument("--only", nargs="*", help="task names to run (default: all three)")
    parser.add_argument("--output", default="runs/korean-tokenizers")
    parser.add_argument(
        "--training-flags", type=shlex.split, default=[], metavar="'FLAGS'",
        help="flags added at the end of every training.train command (they win), e.g. '--hidden-size 16' for a "
        "quick run",
    )  # fmt: skip
    args = parser.parse_args()
    os.makedirs(args.output, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        rows = []
        for name, data in tasks(args.chatbot_data, args.tatoeba, folder).items():
            if args.only and not any(part in name for part in args.only):
                continue
            rows += run_task(name, data, args.minutes, args.output, args.training_flags)
            print(f"done: {name}", flush=True)
    print(f"\n{args.minutes:g} minutes per run, the three kinds of a task at once; {machine_line(1)}\n")
    print("| task | tokenizer | steps | BLEU | chrF |\n| --- | --- | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['task']} | {row['kind']} | {row['steps']} | {row['bleu']:.1f} | {row['chrf']:.1f} |")
    with open(os.path.join(args.output, "results.json"), "w", encoding="utf-8") as handle:
        json.dump(rows, handle, indent=1, ensure_ascii=False)
    for row in rows:
        print(f"# {row['task']} / {row['kind']}: python {row['command']}")


if __name__ == "__main__":
    main()

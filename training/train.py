"""Train the recurrent encoder-decoder of `hf_seq2seq_rnn` with Accelerate.

    python -m training.train --config training/configs/translation_demo.yaml --output-dir runs/demo-translation
    accelerate launch -m training.train --config training/configs/translation.yaml \\
        --dataset Helsinki-NLP/opus_books --dataset-config en-fr --source-lang en --target-lang fr \\
        --output-dir runs/opus-en-fr
    accelerate launch --num_processes 2 -m training.train --config training/configs/qa.yaml \\
        --dataset data/my_pairs.csv --source-column Q --target-column A --output-dir runs/chat

Every config key is also a flag (`--hidden-size 512`); `--resume-from-checkpoint latest` continues
a run exactly. The output directory ends up holding the model (`save_pretrained` with its code,
tokenizer, `generation_config.json`, `README.md` model card, `training_info.json`), plus
`checkpoints/` (best and last) and `logs/` (TensorBoard).

Flow: `get_dataloaders` (data -> pairs -> tokenizer -> tokens -> batches) -> `training_function`
(the loop: accumulate, clip, step, evaluate, checkpoint) -> `main` (the command line).
"""

from __future__ import annotations

if __name__ == "__main__":
    # Before the imports below (3 s): under tcmalloc, when installed, this process starts again from
    # here (training/allocator.py), and the first one would have loaded them for nothing.
    from training.allocator import relaunch_under_tcmalloc

    relaunch_under_tcmalloc()

import dataclasses
import logging
import math
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass

import datasets
import torch
import transformers
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from datasets import Dataset, IterableDataset
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModelForSeq2SeqLM, DataCollatorForSeq2Seq, GenerationConfig, get_scheduler

import hf_seq2seq_rnn  # noqa: F401  (registers the model with the Auto classes)
from hf_seq2seq_rnn import Seq2SeqRNNConfig, Seq2SeqRNNForConditionalGeneration
from seq2seq_tools.machine import autocast_unavailable, choose_threads, describe_cpu

from . import checkpoints, demos
from .config import TrainingConfig, parse_config
from .data import DataSpec, Schema, load_pairs, pairs_from_splits
from .errors import TrainingDivergedError, TrainingInputError, describe_expected
from .evaluation import EvaluationResult, attention_heatmap, evaluate_model, load_metrics, translate
from .model_card import public_name, training_info, write_model_card
from .precision import probe_precision
from .prepare import (
    LengthGroupedBatchSampler,
    PreparationReport,
    check_tokenizer_matches,
    load_or_train_tokenizer,
    tokenize_pairs,
)

logger = get_logger(__name__)
# Example prompts saved in training_info.json for the chatbot: the config's sample prompts (chosen to
# show the model, e.g. Korean greetings for the Korean chat demo), else validation sources.
NUM_EXAMPLES = 4


@dataclass
class PreparedData:
    """Tokenized splits and what it took to make them."""

    tokenizer: transformers.PreTrainedTokenizerBase
    train: Dataset | IterableDataset
    validation: Dataset
    schema: Schema
    reports: dict[str, PreparationReport]
    description: str


def data_spec(config: TrainingConfig) -> DataSpec:
    fields = {item.name for item in dataclasses.fields(DataSpec)}
    return DataSpec(**{name: getattr(config, name) for name in fields if name != "dataset"}, dataset=config.dataset)


def load_data(config: TrainingConfig) -> PreparedData:
    """Pairs from the dataset (or the embedded demo), the tokenizer, and the tokenized splits."""
    spec = data_spec(config)
    if config.dataset is None:
        splits = demos.demo_splits(config.demo, config.source_lang, config.target_lang, config.demo_size, config.seed)
        pairs, schema = pairs_from_splits(splits, spec, source=f"the embedded {config.demo} demo")
        description = demos.describe_demo(config.demo, config.source_lang, config.target_lang)
    else:
        pairs, schema = load_pairs(spec)
        configuration = f" ({config.dataset_config})" if config.dataset_config else ""
        description = f"{public_name(config.dataset)}{configuration}, {schema.describe()}"
    train, validation = pairs["train"], pairs["validation"]
    if config.streaming:
        train = train.shuffle(seed=config.seed, buffer_size=config.shuffle_buffer_size)
    elif config.max_train_samples:
        train = train.select(range(min(config.max_train_samples, len(train))))
    if config.max_eval_samples:
        validation = (
            validation.take(config.max_eval_samples)
            if isinstance(validation, IterableDataset)
            else validation.select(range(min(config.max_eval_samples, len(validation))))
        )
    if isinstance(validation, IterableDataset):
        validation = Dataset.from_list(list(validation))
    if len(validation) == 0:
        raise TrainingInputError("the validation split is empty; pass --validation-split or --validation-size")
    tokenizer_path = config.tokenizer or config.model_name_or_path
    tokenizer = load_or_train_tokenizer(
        train,
        tokenizer_path,
        config.vocab_size,
        config.min_frequency,
        max(config.max_source_length, config.max_target_length),
        kind=config.tokenizer_type,
    )
    lengths = (config.max_source_length, config.max_target_length, config.overlong)
    train, train_report = tokenize_pairs(train, tokenizer, *lengths, num_proc=config.preprocessing_num_workers)
    validation, validation_report = tokenize_pairs(validation, tokenizer, *lengths)
    for split, report in (("train", train_report), ("validation", validation_report)):
        logger.info(report.describe(split), main_process_only=True)
    if isinstance(train, Dataset) and len(train) == 0:
        if train_report.overlong:
            hint = "raise --max-source-length / --max-target-length or pass --overlong truncate"
        else:
            hint = "every row lacks a source or a target (is the file whitespace only, or the columns wrong?)"
        raise TrainingInputError(
            f"no training pairs left: of {train_report.rows} rows, {train_report.empty} were empty and "
            f"{train_report.overlong} over-long; {hint}"
        )
    return PreparedData(
        tokenizer, train, validation, schema, {"train": train_report, "validation": validation_report}, description
    )


def new_model_config(config: TrainingConfig, **vocabulary: int) -> Seq2SeqRNNConfig:
    """The config of a new model: the run's model keys plus `vocabulary` (its size and special token
    ids); a bad value becomes `TrainingInputError`."""
    try:
        return Seq2SeqRNNConfig(**vocabulary, **config.model_arguments())
    except ValueError as error:
        raise TrainingInputError(f"bad model setting: {error}") from error


def load_saved(auto_class: type, path: str):
    """`auto_class.from_pretrained(path)` (a model or its config), a load failure as an input error."""
    try:
        return auto_class.from_pretrained(path, trust_remote_code=True)
    except (OSError, ValueError) as error:
        raise TrainingInputError(f"cannot load the model {path!r}: {error}") from error


def build_model(config: TrainingConfig, tokenizer: transformers.PreTrainedTokenizerBase) -> torch.nn.Module:
    """A new model sized for the tokenizer, or the one at `model_name_or_path`; checked against the tokenizer."""
    if config.model_name_or_path:
        model = load_saved(AutoModelForSeq2SeqLM, config.model_name_or_path)
    else:
        model_config = new_model_config(
            config,
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            unk_token_id=tokenizer.unk_token_id,
        )
        model = Seq2SeqRNNForConditionalGeneration(model_config)
    check_tokenizer_matches(tokenizer, model.config)
    model.generation_config = GenerationConfig(
        num_beams=config.num_beams,
        max_new_tokens=config.max_new_tokens,
        # A beam-search setting: with one beam, GenerationConfig.validate refuses it at save time.
        early_stopping=config.num_beams > 1,
        decoder_start_token_id=model.config.decoder_start_token_id,
        bos_token_id=model.config.bos_token_id,
        eos_token_id=model.config.eos_token_id,
        pad_token_id=model.config.pad_token_id,
    )
    if config.max_new_tokens > getattr(model, "MAX_NEW_TOKENS_LIMIT", config.max_new_tokens):
        model.generation_config.max_new_tokens_limit = config.max_new_tokens  # asked for on purpose
    return model


def get_dataloaders(
    config: TrainingConfig, data: PreparedData, model: torch.nn.Module
) -> tuple[DataLoader, DataLoader, LengthGroupedBatchSampler | None]:
    """Training batches grouped by length (map-style data) or in stream order, and validation batches.

    Each loader has its own `torch.Generator`, so creating its iterator never draws from the
    global RNG: a resumed run's random stream then matches the uninterrupted run's.
    """
    collator = DataCollatorForSeq2Seq(data.tokenizer, model=model, label_pad_token_id=-100)
    sampler = None
    if isinstance(data.train, IterableDataset):
        train_dataloader = DataLoader(
            data.train.remove_columns("length"),
            batch_size=config.batch_size,
            collate_fn=collator,
            generator=torch.Generator().manual_seed(config.seed),
        )
    else:
        sampler = LengthGroupedBatchSampler(data.train["length"], config.batch_size, seed=config.seed)
        train_dataloader = DataLoader(
            data.train.remove_columns("length"),
            batch_sampler=sampler,
            collate_fn=collator,
            generator=torch.Generator().manual_seed(config.seed),
        )
    eval_dataloader = DataLoader(
        data.validation.remove_columns("length"),
        batch_size=config.eval_batch_size,
        collate_fn=collator,
        generator=torch.Generator().manual_seed(config.seed),
    )
    return train_dataloader, eval_dataloader, sampler


def teacher_forcing_ratio(config: TrainingConfig, step: int, total_steps: int) -> float:
    """The teacher forcing ratio at `step`: constant, linear, or an inverse sigmoid (Bengio et al.,
    2015, section 2.4) from `teacher_forcing_start` to `teacher_forcing_end`."""
    start, end = config.teacher_forcing_start, config.teacher_forcing_end
    progress = min(step / max(total_steps, 1), 1.0)
    if config.teacher_forcing_schedule == "constant":
        return start
    if config.teacher_forcing_schedule == "linear":
        return start + (end - start) * progress
    return end + (start - end) / (1.0 + math.exp(10.0 * (progress - 0.5)))


def diverged_message(config: TrainingConfig, what: str, value: torch.Tensor, completed_steps: int) -> str:
    kept = checkpoints.read_index(config.output_dir).get("last")
    where = os.path.join(checkpoints.checkpoint_root(config.output_dir), kept) if kept else "none saved yet"
    return (
        f"the {what} became {value.item()} at step {completed_steps + 1}; stopped before updating the weights. "
        f"Last good checkpoint: {where}. Try a lower --learning-rate or --max-grad-norm, or --mixed-precision no."
    )


def has_accelerator() -> bool:
    """Whether torch sees a GPU (or another device) to train on."""
    if hasattr(torch, "accelerator"):
        return torch.accelerator.current_accelerator() is not None
    return torch.cuda.is_available()


def check_output_dir(output_dir: str, needed_bytes: int = 0) -> None:
    """Fail before the first step, not at the first save: `output_dir` can be created and written,
    and its disk has `needed_bytes` free. Every process checks (each writes its own probe file)."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise TrainingInputError(f"--output-dir {output_dir} is an existing file; pass a directory (new or existing)")
    try:
        os.makedirs(output_dir, exist_ok=True)
        probe = os.path.join(output_dir, f".write-probe-{os.getpid()}")
        with open(probe, "w", encoding="utf-8") as handle:
            handle.write("probe")
        os.remove(probe)
    except OSError as error:
        raise TrainingInputError(
            f"--output-dir {output_dir} cannot be written ({error.strerror or error}); pass a writable directory"
        ) from error
    free = shutil.disk_usage(output_dir).free
    if free < needed_bytes:
        raise TrainingInputError(
            f"--output-dir {output_dir} has {free / 2**20:.0f} MiB free but one checkpoint needs about "
            f"{needed_bytes / 2**20:.0f} MiB; free some space or pass another --output-dir"
        )


def checkpoint_bytes(model: torch.nn.Module) -> int:
    """About the size of one checkpoint plus the final model: fp32 weights, AdamW's two moments, weights again."""
    parameters = sum(parameter.numel() for parameter in model.parameters())
    return 4 * parameters * 4 + 2**20


def resolve_mixed_precision(config: TrainingConfig, checkpoint: str | None) -> tuple[str | None, str | None]:
    """The precision to train in and, for `auto`, the line that says why (`checkpoint`: the one resumed from).

    `auto` on a GPU is what `accelerate launch` says (as `null`); on a CPU a resumed run keeps its
    checkpoint's precision where this CPU can train in it, several processes keep fp32 (their probes
    could disagree), and a new single-process run times fp32 against bf16 autocast (`training.precision`).
    bf16 or fp16 asked for by name on a CPU that cannot train in it is an input error, not a crash.
    """
    if has_accelerator():
        if config.mixed_precision == "auto":
            return None, "mixed precision auto on a GPU: what accelerate launch says"
        return config.mixed_precision, None
    if config.mixed_precision in ("bf16", "fp16"):
        unavailable = autocast_unavailable(config.mixed_precision)
        if unavailable is not None:
            raise TrainingInputError(
                f"--mixed-precision {config.mixed_precision}: {unavailable}; pass --mixed-precision no"
            )
    if config.mixed_precision != "auto":
        return config.mixed_precision, None
    if checkpoint is not None:
        kept = checkpoints.read_trainer_state(checkpoint).get("mixed_precision")
        if kept in ("bf16", "fp16") and (unavailable := autocast_unavailable(kept)) is not None:
            return "no", f"mixed precision auto -> no: {checkpoint} trained in {kept}, but {unavailable}"
        if kept is not None:
            return kept, f"mixed precision auto -> {kept}: kept from {checkpoint}"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return "no", "mixed precision auto -> no: several processes (pass --mixed-precision bf16 to choose it)"
    if config.model_name_or_path:
        model_config = load_saved(AutoConfig, config.model_name_or_path)
    else:
        model_config = new_model_config(config, vocab_size=config.vocab_size)
    probe = probe_precision(model_config, config.batch_size)
    return probe.choice, probe.describe()


def make_accelerator(config: TrainingConfig, mixed_precision: str | None) -> Accelerator:
    report_to = None if config.report_to in ("none", "", None) else config.report_to
    return Accelerator(
        # Without any accelerator, several processes (WORLD_SIZE > 1) train data-parallel over gloo.
        cpu=not has_accelerator(),
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        mixed_precision=mixed_precision,
        log_with=report_to,
        project_config=ProjectConfiguration(
            project_dir=config.output_dir, logging_dir=os.path.join(config.output_dir, "logs")
        ),
        dataloader_config=DataLoaderConfiguration(even_batches=True),
        step_scheduler_with_optimizer=False,
    )


class TrainingProgress:
    """The progress bar: steps done out of the total or, under a time budget (`--max-minutes`), the
    training seconds spent out of the budget, with the steps done beside them.

    With a budget the step total is only an upper bound (often a huge `--max-steps`), so counting
    toward it would show a meaningless ETA; the clock is what ends the run.
    """

    def __init__(
        self,
        total_steps: int,
        completed_steps: int,
        budget_seconds: float | None,
        max_steps: int | None,
        disable: bool = False,
        file=None,
    ) -> None:
        self.budget_seconds, self.max_steps = budget_seconds, max_steps
        if budget_seconds is None:
            self.bar = tqdm(total=total_steps, initial=completed_steps, unit="step", disable=disable, file=file)
            return
        self.bar = tqdm(
            total=budget_seconds,
            disable=disable,
            file=file,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of the time budget{postfix}",
        )
        self.bar.set_description_str(self._steps(completed_steps), refresh=False)

    def _steps(self, completed_steps: int) -> str:
        bound = f" (of at most {self.max_steps})" if self.max_steps is not None else ""
        return f"step {completed_steps}{bound}"

    def advance(self, completed_steps: int, spent_seconds: float) -> None:
        """One optimizer step done; `spent_seconds` of training time (evaluation excluded) so far."""
        if self.budget_seconds is None:
            self.bar.update(1)
            return
        self.bar.set_description_str(self._steps(completed_steps), refresh=False)
        self.bar.update(min(spent_seconds, self.budget_seconds) - self.bar.n)

    def set_postfix(self, **values: str) -> None:
        self.bar.set_postfix(**values)

    def close(self) -> None:
        self.bar.close()


def log_evaluation(
    accelerator: Accelerator,
    model: torch.nn.Module,
    data: PreparedData,
    config: TrainingConfig,
    result: EvaluationResult,
    step: int,
) -> None:
    """Scores to the trackers and the log; samples as text and an attention heatmap as an image."""
    accelerator.log(result.scores, step=step)
    scores = ", ".join(f"{name} {value:.4g}" for name, value in result.scores.items())
    logger.info(f"step {step}: {scores}", main_process_only=True)
    if not accelerator.is_main_process:
        return
    samples = "\n\n".join(
        f"{source}  →  {prediction}  (reference: {reference})" for source, reference, prediction in result.samples
    )
    figure = (
        attention_heatmap(accelerator.unwrap_model(model), data.tokenizer, result.samples[0][0], config.max_new_tokens)
        if result.samples
        else None
    )
    if figure is not None:
        figure.savefig(os.path.join(config.output_dir, "attention.png"), dpi=80)
    if config.report_to in ("tensorboard", "all"):
        writer = accelerator.get_tracker("tensorboard", unwrap=True)
        writer.add_text("samples", samples.replace("\n\n", "  \n"), step)
        if figure is not None:
            writer.add_figure("attention", figure, step)


def training_function(config: TrainingConfig) -> dict[str, float]:
    """Train, evaluate, checkpoint and save; returns the final validation scores."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    threads, threads_note = choose_threads(config.num_threads)
    torch.set_num_threads(threads)  # before the precision probe, which times this thread count
    # Resolved once, before the data is read, so that an unreadable checkpoint stops the run at once
    # (and each skipped one is reported once).
    checkpoint = (
        checkpoints.resolve_checkpoint(config.output_dir, config.resume_from_checkpoint)
        if config.resume_from_checkpoint
        else None
    )
    mixed_precision, precision_note = resolve_mixed_precision(config, checkpoint)
    accelerator = make_accelerator(config, mixed_precision)
    if not accelerator.is_local_main_process:
        datasets.disable_progress_bars()
        datasets.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # one line per saved file otherwise
    if threads_note:
        logger.warning(threads_note, main_process_only=True)
    if not has_accelerator():
        logger.info(f"CPU: {describe_cpu()}, {threads} torch thread(s)", main_process_only=True)
    if precision_note:
        logger.info(precision_note, main_process_only=True)
    check_output_dir(config.output_dir)
    set_seed(config.seed)

    with accelerator.main_process_first():
        data = load_data(config)
    model = build_model(config, data.tokenizer)
    check_output_dir(config.output_dir, checkpoint_bytes(model))
    train_dataloader, eval_dataloader, sampler = get_dataloaders(config, data, model)
    # The fused kernel: one pass over all parameters (CPU and GPU), several times faster than the loop.
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=True
    )
    model, optimizer, train_dataloader, eval_dataloader = accelerator.prepare(
        model, optimizer, train_dataloader, eval_dataloader
    )
    if config.max_steps is not None:
        total_steps = config.max_steps
        steps_per_epoch = (
            math.ceil(len(train_dataloader) / config.gradient_accumulation_steps) if sampler is not None else None
        )
    else:
        steps_per_epoch = math.ceil(len(train_dataloader) / config.gradient_accumulation_steps)
        total_steps = config.num_epochs * steps_per_epoch
    lr_scheduler = get_scheduler(
        config.lr_scheduler, optimizer, num_warmup_steps=config.warmup_steps, num_training_steps=total_steps
    )
    lr_scheduler = accelerator.prepare(lr_scheduler)
    metrics = load_metrics(config.task)
    if config.report_to not in ("none", "", None):
        tracked = {k: v for k, v in dataclasses.asdict(config).items() if isinstance(v, (int, float, str, bool))}
        accelerator.init_trackers("seq2seq_rnn", config=tracked)

    # Resume: the full state (weights, optimizer, scheduler, RNG of every process), then skip the
    # batches of the current epoch that were already trained on.
    completed_steps, epoch, batches_done = 0, 0, 0
    history: list[dict[str, float]] = []  # every evaluation: {"step": ..., "eval_loss": ..., ...}
    if config.resume_from_checkpoint:
        if checkpoint is None:
            logger.info("no checkpoint in %s yet: starting from scratch", config.output_dir, main_process_only=True)
        else:
            try:
                accelerator.load_state(checkpoint)
            except Exception as error:  # damage that the read-back check missed, or another model's state
                reason = " ".join(f"{type(error).__name__}: {error}".split())[:300]
                raise TrainingInputError(
                    f"cannot load the checkpoint {checkpoint} ({reason}); pass another one to --resume-from-checkpoint"
                ) from error
            state = checkpoints.read_trainer_state(checkpoint)
            completed_steps, epoch, batches_done = state["completed_steps"], state["epoch"], state["batches_done"]
            history = state.get("eval_history", [])
            logger.info(f"resumed from {checkpoint} at step {completed_steps}", main_process_only=True)

    logger.info(
        f"training {sum(p.numel() for p in model.parameters()):,} parameters for {total_steps} steps "
        f"on {accelerator.num_processes} process(es), mixed precision {accelerator.mixed_precision}",
        main_process_only=True,
    )
    budget_seconds = 60 * config.max_minutes if config.max_minutes is not None else None
    progress = TrainingProgress(
        total_steps, completed_steps, budget_seconds, config.max_steps, disable=not accelerator.is_local_main_process
    )
    started, training_seconds, trained_tokens = time.perf_counter(), 0.0, 0  # this session's training time
    evaluation_seconds = 0.0
    last_scores: dict[str, float] = {}
    last_eval_step = -1

    def evaluate_now(with_generation: bool = True) -> EvaluationResult:
        return evaluate_model(
            accelerator, model, eval_dataloader, data.tokenizer, metrics, config.task,
            config.num_beams, config.max_new_tokens, config.num_samples, with_generation=with_generation,
        )  # fmt: skip

    if config.eval_on_start and completed_steps == 0:
        result = evaluate_now(with_generation=False)
        accelerator.log(result.scores, step=0)
        logger.info(f"step 0: eval_loss {result.scores['eval_loss']:.4g}", main_process_only=True)
        history.append({"step": 0, **result.scores})
    running_loss, running_batches, running_tokens, window_start = 0.0, 0, 0, time.perf_counter()
    model.train()
    while completed_steps < total_steps:
        train_dataloader.set_epoch(epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        batches = accelerator.skip_first_batches(train_dataloader, batches_done) if batches_done else train_dataloader
        for batch in batches:
            ratio = teacher_forcing_ratio(config, completed_steps, total_steps)
            with accelerator.accumulate(model):
                loss = model(**batch, teacher_forcing_ratio=ratio).loss
                finite = accelerator.reduce(torch.isfinite(loss.detach()).float(), reduction="sum")
                if finite.item() < accelerator.num_processes:
                    raise TrainingDivergedError(diverged_message(config, "training loss", loss, completed_steps))
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    norm = accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                    if not torch.isfinite(norm):  # the same on every process: gradients are all-reduced
                        raise TrainingDivergedError(diverged_message(config, "gradient norm", norm, completed_steps))
                optimizer.step()
                optimizer.zero_grad()
            batches_done += 1
            running_loss += loss.detach().float().item()
            running_batches += 1
            batch_tokens = int((batch["labels"] != -100).sum())
            running_tokens += batch_tokens
            trained_tokens += batch_tokens
            if not accelerator.sync_gradients:
                continue
            lr_scheduler.step()
            completed_steps += 1
            progress.advance(completed_steps, time.perf_counter() - started - evaluation_seconds)
            if completed_steps % config.logging_steps == 0:
                elapsed = time.perf_counter() - window_start
                totals = accelerator.reduce(
                    torch.tensor(
                        [running_loss, running_batches, running_tokens], device=accelerator.device, dtype=torch.float64
                    ),
                    reduction="sum",
                )
                train_loss = (totals[0] / totals[1]).item()
                accelerator.log(
                    {
                        "train_loss": train_loss,
                        "learning_rate": lr_scheduler.get_last_lr()[0],
                        "teacher_forcing_ratio": ratio,
                        "target_tokens_per_second": totals[2].item() / elapsed,
                    },
                    step=completed_steps,
                )
                progress.set_postfix(loss=f"{train_loss:.3f}", tok_s=f"{totals[2].item() / elapsed:.0f}")
                running_loss, running_batches, running_tokens, window_start = 0.0, 0, 0, time.perf_counter()
            at_end = completed_steps >= total_steps
            if config.max_minutes is not None and not at_end:
                # every process must stop at the same step: the slowest clock decides
                spent = torch.tensor(time.perf_counter() - started - evaluation_seconds, device=accelerator.device)
                at_end = accelerator.reduce(spent, reduction="max").item() >= 60 * config.max_minutes
            if config.eval_steps and (completed_steps % config.eval_steps == 0 or at_end):
                evaluation_started = time.perf_counter()
                result = evaluate_now()
                log_evaluation(accelerator, model, data, config, result, completed_steps)
                evaluation_seconds += time.perf_counter() - evaluation_started
                last_scores, last_eval_step = result.scores, completed_steps
                training_seconds = time.perf_counter() - started - evaluation_seconds
                history.append({"step": completed_steps, "training_seconds": training_seconds, **result.scores})
                window_start = time.perf_counter()  # tokens per second count training time only
            if (config.checkpointing_steps and completed_steps % config.checkpointing_steps == 0) or at_end:
                epoch_finished = steps_per_epoch is not None and batches_done >= len(train_dataloader)
                state = {
                    "completed_steps": completed_steps,
                    "epoch": epoch + 1 if epoch_finished else epoch,
                    "batches_done": 0 if epoch_finished else batches_done,
                    "eval_history": history,
                    "mixed_precision": accelerator.mixed_precision,
                }
                metric = last_scores.get(config.metric_for_best) if last_eval_step == completed_steps else None
                checkpoints.save_checkpoint(accelerator, config.output_dir, state, config.metric_for_best, metric)
            if at_end:
                break
        else:
            epoch += 1
            batches_done = 0
            continue
        break
    progress.close()

    if last_eval_step != completed_steps:
        result = evaluate_now()
        log_evaluation(accelerator, model, data, config, result, completed_steps)
        last_scores = result.scores
        history.append({"step": completed_steps, **result.scores})
    training_seconds = time.perf_counter() - started - evaluation_seconds
    tokens = accelerator.reduce(torch.tensor(trained_tokens, device=accelerator.device), reduction="sum").item()
    throughput = {
        "training_seconds": training_seconds,
        "target_tokens_per_second": tokens / max(training_seconds, 1e-9),
    }
    logger.info(
        f"trained {completed_steps} steps, {throughput['target_tokens_per_second']:.0f} target tokens/s",
        main_process_only=True,
    )
    save_model(accelerator, model, data, config, last_scores, history, throughput)
    show_samples(accelerator, model, data, config, eval_dataloader)
    accelerator.end_training()
    return last_scores


def save_model(
    accelerator: Accelerator,
    model: torch.nn.Module,
    data: PreparedData,
    config: TrainingConfig,
    scores: dict[str, float],
    history: list[dict[str, float]],
    throughput: dict[str, float],
) -> None:
    """The final model directory: weights with code, tokenizer, generation config, card, training info."""
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.save_pretrained(
        config.output_dir,
        is_main_process=accelerator.is_main_process,
        save_function=accelerator.save,
        state_dict=accelerator.get_state_dict(model),
    )
    if not accelerator.is_main_process:
        return
    data.tokenizer.save_pretrained(config.output_dir)
    counts = {
        split: dataclasses.asdict(report) | {"schema": data.schema.describe()} for split, report in data.reports.items()
    }
    examples = list(config.sample_prompts[:NUM_EXAMPLES])
    if not examples:
        rows = data.validation.select(range(min(NUM_EXAMPLES, len(data.validation))))
        examples = data.tokenizer.batch_decode(list(rows["input_ids"]), skip_special_tokens=True)
    info = training_info(
        data.description,
        dataclasses.asdict(config),
        scores,
        counts,
        config.command or "",
        examples=examples,
    )
    info["eval_history"] = history
    info["throughput"] = throughput
    write_model_card(config.output_dir, info)
    logger.info(f"model saved to {config.output_dir}", main_process_only=True)
    if config.push_to_hub:
        push_to_hub(config)


def push_to_hub(config: TrainingConfig) -> None:
    """Upload the model directory (not its checkpoints or logs) to the Hub."""
    from huggingface_hub import HfApi

    repo_id = config.hub_model_id or os.path.basename(os.path.abspath(config.output_dir))
    try:
        api = HfApi()
        api.create_repo(repo_id, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id, folder_path=config.output_dir, ignore_patterns=["checkpoints/*", "logs/*", "*.png"]
        )
    except Exception as error:  # network, authentication and permission errors alike
        raise TrainingInputError(
            f"could not push to the Hub as {repo_id!r} ({error}); the model is saved in {config.output_dir}"
        ) from error
    logger.info(f"pushed to https://huggingface.co/{repo_id}", main_process_only=True)


def show_samples(
    accelerator: Accelerator,
    model: torch.nn.Module,
    data: PreparedData,
    config: TrainingConfig,
    eval_dataloader: DataLoader,
) -> None:
    """Print a few validation sources and sample prompts with the model's outputs."""
    if not accelerator.is_main_process:
        return
    unwrapped = accelerator.unwrap_model(model)
    validation = data.validation.select(range(min(config.num_samples, len(data.validation))))
    sources = data.tokenizer.batch_decode(list(validation["input_ids"]), skip_special_tokens=True)
    references = data.tokenizer.batch_decode(list(validation["labels"]), skip_special_tokens=True)
    prompts = sources + list(config.sample_prompts)
    outputs = translate(unwrapped, data.tokenizer, prompts, config.num_beams, config.max_new_tokens)
    accelerator.print("\nSamples (source → prediction):")
    for index, (prompt, output) in enumerate(zip(prompts, outputs, strict=True)):
        reference = f"   [reference: {references[index]}]" if index < len(references) else ""
        accelerator.print(f"  {prompt}  →  {output}{reference}")


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 on success, 2 on bad input, 3 when the loss diverged."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    try:
        config = parse_config(arguments)
        config.command = "python -m training.train " + shlex.join(arguments)
        training_function(config)
    except (TrainingInputError, TrainingDivergedError, OSError) as error:
        message = describe_expected(error)
        if message is None:
            raise  # a bug: keep the traceback
        print(f"error: {message}", file=sys.stderr)
        return 3 if isinstance(error, TrainingDivergedError) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

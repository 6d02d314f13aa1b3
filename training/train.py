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
`checkpoints/` (the last `--keep-checkpoints` and the best) and `logs/` (TensorBoard).

Flow: `get_dataloaders` (data -> pairs -> tokenizer -> tokens -> batches) -> `training_function`
(the loop: accumulate, clip, step, evaluate, checkpoint) -> `main` (the command line).
"""

from __future__ import annotations

if __name__ == "__main__":
    # Before the imports below (3 s): under tcmalloc, when installed, this process starts again from
    # here (training/allocator.py), and the first one would have loaded them for nothing.
    from training.allocator import relaunch_under_tcmalloc

    relaunch_under_tcmalloc()

import contextlib
import dataclasses
import glob
import logging
import math
import os
import shlex
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import datasets
import torch
import transformers
from accelerate import Accelerator, PartialState
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from datasets import Dataset, IterableDataset
from torch.utils.data import DataLoader
from transformers import DataCollatorForSeq2Seq, GenerationConfig

import hf_seq2seq_rnn  # noqa: F401  (registers the model with the Auto classes)
from hf_seq2seq_rnn import Seq2SeqRNNConfig, Seq2SeqRNNForConditionalGeneration
from hf_seq2seq_rnn.search_seq2seq_rnn import MAX_NEW_TOKENS_LIMIT
from seq2seq_tools.decoding_options import generate_value
from seq2seq_tools.generation import generate_texts
from seq2seq_tools.loading import MODEL_TYPE, UntrustedModelError, load_config, load_model
from seq2seq_tools.machine import choose_threads, describe_cpu, has_accelerator

from . import checkpoints, demos, schedules
from .config import TrainingConfig, parse_config
from .data import data_spec, load_pairs, pairs_from_splits
from .ema import WeightAverage
from .errors import TrainingDivergedError, TrainingInputError, run_command
from .evaluation import EvaluationResult, attention_heatmap, evaluate_model, load_metrics
from .hub import push_to_hub
from .main_process import wait_for_main_process
from .model_card import public_name, training_info, write_model_card
from .precision import resolve_mixed_precision
from .prepare import (
    LengthGroupedBatchSampler,
    PreparationReport,
    check_tokenizer_matches,
    grouping_lengths,
    load_or_train_tokenizer,
    log_preparation_time,
    tokenize_pairs,
)
from .progress import RunningTotals, TrainingClock, TrainingProgress
from .schema import Schema
from .shortlist import learn_shortlist, sample_indices
from .stream import ShuffledStream, check_stream_settings, stream_settings

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


def load_data(config: TrainingConfig) -> PreparedData:
    """Pairs from the dataset (or the embedded demo), the tokenizer, and the tokenized splits."""
    started = time.perf_counter()
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
    if not config.streaming and config.max_train_samples:  # a stream is shuffled in get_dataloaders
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
        sample_pairs=config.tokenizer_sample_pairs,
        kind=config.tokenizer_type,
        seed=config.seed,
    )
    lengths = (config.max_source_length, config.max_target_length, config.overlong)
    train, train_report = tokenize_pairs(train, tokenizer, *lengths, num_proc=config.preprocessing_num_workers)
    validation, validation_report = tokenize_pairs(validation, tokenizer, *lengths)
    for split, report in (("train", train_report), ("validation", validation_report)):
        logger.info(report.describe(split), main_process_only=True)
    if PartialState().is_main_process:  # the others read what it prepared
        log_preparation_time(train, time.perf_counter() - started)
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


def load_saved(load: Callable[[str], Any], path: str) -> Any:
    """`load(path)`, `seq2seq_tools.loading`'s `load_model` or `load_config`, a failure as an input error.

    Only our own model type is fine-tuned, with the installed code: none of the folder's Python
    files run, so the trainer has no `--trust-remote-code`.
    """
    try:
        return load(path)
    except UntrustedModelError as error:
        raise TrainingInputError(
            f"--model-name-or-path {path} is a {error.model_type!r} model; the trainer fine-tunes {MODEL_TYPE!r} "
            "models only (and never runs code that comes with a model)"
        ) from error
    except (OSError, ValueError) as error:
        raise TrainingInputError(f"cannot load the model {path!r}: {error}") from error


def build_model(config: TrainingConfig, tokenizer: transformers.PreTrainedTokenizerBase) -> torch.nn.Module:
    """A new model sized for the tokenizer, or the one at `model_name_or_path`; checked against the tokenizer."""
    if config.model_name_or_path:
        model = load_saved(load_model, config.model_name_or_path)
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
        max_length_a=generate_value(config.max_length_a),  # none or null: no such term
        max_length_b=generate_value(config.max_length_b),
    )
    if config.max_new_tokens > MAX_NEW_TOKENS_LIMIT:
        model.generation_config.max_new_tokens_limit = config.max_new_tokens  # asked for on purpose
    return model


def get_dataloaders(
    config: TrainingConfig, data: PreparedData, model: torch.nn.Module, num_processes: int = 1
) -> tuple[DataLoader, DataLoader, LengthGroupedBatchSampler | None]:
    """Training batches grouped by length (map-style data) or shuffled from a stream, and validation batches.

    Each loader has its own `torch.Generator`, so creating its iterator never draws from the
    global RNG: a resumed run's random stream then matches the uninterrupted run's. A stream's
    loaders hold the batches of all `num_processes` processes, which Accelerate splits
    (`make_accelerator`); its rows are shuffled by a `ShuffledStream`, whose position checkpoints save.
    """
    collator = DataCollatorForSeq2Seq(data.tokenizer, model=model, label_pad_token_id=-100)
    sampler = None
    loader_rows = num_processes if isinstance(data.train, IterableDataset) else 1
    if isinstance(data.train, IterableDataset):
        train_dataloader = DataLoader(
            ShuffledStream(data.train.remove_columns("length"), config.shuffle_buffer_size, config.seed),
            batch_size=config.batch_size * loader_rows,
            collate_fn=collator,
            generator=torch.Generator().manual_seed(config.seed),
        )
    else:
        sampler = LengthGroupedBatchSampler(grouping_lengths(data.train), config.batch_size, seed=config.seed)
        train_dataloader = DataLoader(
            data.train.remove_columns("length"),
            batch_sampler=sampler,
            collate_fn=collator,
            generator=torch.Generator().manual_seed(config.seed),
        )
    eval_dataloader = DataLoader(
        data.validation.remove_columns("length"),
        batch_size=config.eval_batch_size * loader_rows,
        collate_fn=collator,
        generator=torch.Generator().manual_seed(config.seed),
    )
    return train_dataloader, eval_dataloader, sampler


def diverged_message(config: TrainingConfig, what: str, value: torch.Tensor, completed_steps: int) -> str:
    kept = checkpoints.read_index(config.output_dir).get("last")
    where = os.path.join(checkpoints.checkpoint_root(config.output_dir), kept) if kept else "none saved yet"
    return (
        f"the {what} became {value.item()} at step {completed_steps + 1}; stopped before updating the weights. "
        f"Last good checkpoint: {where}. Try a lower --learning-rate or --max-grad-norm, or --mixed-precision no."
    )


def make_accelerator(config: TrainingConfig, mixed_precision: str | None) -> Accelerator:
    """The run's Accelerator. A stream's loaders are torchdata's `StatefulDataLoader`, whose state
    (the stream's position) `save_state` saves and `load_state` restores; and the first process reads
    one batch for all of them, split between them (`split_batches`): a batch of all processes' rows,
    padded together, so that their rows may differ in length, and one read per step, after which
    the saved position stands (reading a batch for each process, Accelerate would save a position
    past batches not yet trained on)."""
    report_to = None if config.report_to in ("none", "", None) else config.report_to
    streaming = {"split_batches": True, "use_stateful_dataloader": True} if config.streaming else {}
    return Accelerator(
        # Without any accelerator, several processes (WORLD_SIZE > 1) train data-parallel over gloo.
        cpu=not has_accelerator(),
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        mixed_precision=mixed_precision,
        log_with=report_to,
        project_config=ProjectConfiguration(
            project_dir=config.output_dir, logging_dir=os.path.join(config.output_dir, "logs")
        ),
        dataloader_config=DataLoaderConfiguration(even_batches=True, **streaming),
        step_scheduler_with_optimizer=False,
    )


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


@dataclass
class TrainingState:
    """Where a run stands: written into every checkpoint (`trainer_state.json`, read back on resume).

    The weights, optimizer, scheduler and random states are Accelerate's `save_state`; this is the
    rest. It is JSON rather than a pickle registered with Accelerate because it must be readable
    before Accelerate starts (a resumed run's precision decides how the Accelerator is made) and by
    the checkpoint checks that pick `latest` and `best`.
    """

    completed_steps: int = 0
    training_seconds: float = 0.0  # the training clock at this step (evaluation excluded), every session
    epoch: int = 0
    batches_done: int = 0  # batches of `epoch` already trained on (a resumed run skips them)
    eval_history: list[dict[str, float]] = field(default_factory=list)  # {"step": ..., "eval_loss": ...}
    mixed_precision: str | None = None

    def state_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for item in dataclasses.fields(self):
            if item.name in state:
                setattr(self, item.name, state[item.name])


@dataclass
class Run:
    """Everything the loop works on, made once by `prepare_run`."""

    config: TrainingConfig
    accelerator: Accelerator
    data: PreparedData
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    lr_scheduler: Any
    train_dataloader: DataLoader
    eval_dataloader: DataLoader
    sampler: LengthGroupedBatchSampler | None
    metrics: dict[str, Any]
    horizon: schedules.Horizon
    steps_per_epoch: int | None  # None for a stream of unknown length
    state: TrainingState
    progress: TrainingProgress
    clock: TrainingClock
    decay: schedules.BudgetedDecay | None = None  # the learning rate's clock, under a time budget
    average: WeightAverage | None = None  # --ema-decay
    totals: RunningTotals = field(default_factory=RunningTotals)
    last_scores: dict[str, float] = field(default_factory=dict)
    last_eval_step: int = -1
    teacher_forcing: float = 1.0  # the ratio of the last step
    spent_seconds: float = 0.0  # the training clock after the last step, the slowest process's
    done: bool = False

    @property
    def total_steps(self) -> int:
        return self.horizon.total_steps

    def averaged(self) -> contextlib.AbstractContextManager[None]:
        """Inside the block the model holds the weight average (with --ema-decay), as evaluated and saved."""
        if self.average is None:
            return contextlib.nullcontext()
        return self.average.applied_to(self.accelerator.unwrap_model(self.model))


def start_accelerator(config: TrainingConfig, checkpoint: str | None) -> Accelerator:
    """Logging, the main process reached (from a process of rank > 0), the thread count, the precision
    (`checkpoint`: the one resumed from) and the accelerator, with one line for each choice that
    depends on the machine."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    wait_for_main_process(config.connect_timeout)  # before the Accelerator, whose own wait lasts 30 minutes
    threads, threads_note = choose_threads(config.num_threads)
    torch.set_num_threads(threads)  # before the precision probe, which times this thread count
    mixed_precision, precision_note = resolve_mixed_precision(
        config.mixed_precision, checkpoint, lambda: probe_model_config(config), config.batch_size
    )
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
    return accelerator


def make_optimizer(config: TrainingConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW with the run's learning rate and weight decay, as the fused kernel: one pass over all
    parameters (CPU and GPU), several times faster than the loop."""
    return torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=True)


def plan_steps(
    config: TrainingConfig, train_dataloader: DataLoader, sampler: LengthGroupedBatchSampler | None
) -> tuple[int | None, schedules.Horizon]:
    """Optimizer steps per epoch (None for a stream of unknown length with --max-steps) and where
    the run ends, from the training batches per epoch and process (the loader's length, asked for
    only where it has one: a stream has none)."""
    steps_per_epoch = (
        math.ceil(len(train_dataloader) / config.gradient_accumulation_steps)
        if sampler is not None or config.max_steps is None
        else None
    )
    total_steps = config.max_steps if config.max_steps is not None else config.num_epochs * steps_per_epoch
    budget_seconds = 60 * config.max_minutes if config.max_minutes is not None else None
    return steps_per_epoch, schedules.Horizon(total_steps, budget_seconds)


def weight_average(config: TrainingConfig, accelerator: Accelerator, model: torch.nn.Module) -> WeightAverage | None:
    """The exponential moving average of the weights when `ema_decay` asks for one, registered for
    checkpointing (before `resume`, which restores it); else None."""
    if config.ema_decay is None:
        return None
    average = WeightAverage(accelerator.unwrap_model(model), config.ema_decay)
    accelerator.register_for_checkpointing(average)
    return average


def start_trackers(config: TrainingConfig, accelerator: Accelerator) -> None:
    """The `report_to` trackers, given the config's plain values as the run's hyperparameters."""
    if config.report_to not in ("none", "", None):
        tracked = {k: v for k, v in dataclasses.asdict(config).items() if isinstance(v, (int, float, str, bool))}
        accelerator.init_trackers("seq2seq_rnn", config=tracked)


def log_plan(
    config: TrainingConfig,
    accelerator: Accelerator,
    model: torch.nn.Module,
    horizon: schedules.Horizon,
    average: WeightAverage | None,
) -> None:
    """What the run is about to do: its size, length, processes, precision, schedule and averaging."""
    logger.info(
        f"training {sum(p.numel() for p in model.parameters()):,} parameters for {horizon.describe()} "
        f"on {accelerator.num_processes} process(es), mixed precision {accelerator.mixed_precision}",
        main_process_only=True,
    )
    logger.info(
        schedules.describe_lr_schedule(config.lr_scheduler, config.warmup_steps, horizon, config.lr_decay_fraction),
        main_process_only=True,
    )
    if average is not None:
        logger.info(f"evaluating and saving an exponential moving average of the weights (decay {config.ema_decay})")


def prepare_run(config: TrainingConfig) -> Run:
    """The accelerator, data, model, optimizer, step counts, and the state to start from."""
    # Resolved once, before the data is read, so that an unreadable checkpoint stops the run at once
    # (and each skipped one is reported once).
    checkpoint = (
        checkpoints.resolve_checkpoint(config.output_dir, config.resume_from_checkpoint)
        if config.resume_from_checkpoint
        else None
    )
    accelerator = start_accelerator(config, checkpoint)
    checkpoints.check_output_dir(config.output_dir)
    set_seed(config.seed)

    with accelerator.main_process_first():
        data = load_data(data_config(config, accelerator, checkpoint))
    model = build_model(config, data.tokenizer)
    needed = checkpoints.checkpoint_bytes(model, config.keep_checkpoints + 1, config.ema_decay is not None)
    checkpoints.check_output_dir(config.output_dir, needed)
    train_dataloader, eval_dataloader, sampler = get_dataloaders(config, data, model, accelerator.num_processes)
    optimizer = make_optimizer(config, model)
    with warnings.catch_warnings():
        # torchdata's StatefulDataLoader (a stream's) calls torch.set_vital, which torch deprecates.
        warnings.filterwarnings("ignore", message="'set_vital' is deprecated", category=UserWarning)
        model, optimizer, train_dataloader, eval_dataloader = accelerator.prepare(
            model, optimizer, train_dataloader, eval_dataloader
        )
    if config.streaming:
        # Accelerate drops the generator of a loader whose batches it dispatches; each new iterator
        # would then draw its seed from the global RNG, and a resumed stream's first iterator would
        # shift every later random draw (dropout) from the uninterrupted run's.
        train_dataloader.base_dataloader.generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch, horizon = plan_steps(config, train_dataloader, sampler)
    lr_scheduler, decay = schedules.make_lr_scheduler(
        config.lr_scheduler, optimizer, config.warmup_steps, horizon, config.lr_decay_fraction
    )
    lr_scheduler = accelerator.prepare(lr_scheduler)
    average = weight_average(config, accelerator, model)
    start_trackers(config, accelerator)
    state = resume(accelerator, config, checkpoint)
    log_plan(config, accelerator, model, horizon, average)
    progress = TrainingProgress(
        horizon.total_steps,
        state.completed_steps,
        horizon.budget_seconds,
        config.max_steps,
        disable=not accelerator.is_local_main_process,
    )
    return Run(
        config=config,
        accelerator=accelerator,
        data=data,
        model=model,
        optimizer=optimizer,
        lr_scheduler=lr_scheduler,
        train_dataloader=train_dataloader,
        eval_dataloader=eval_dataloader,
        sampler=sampler,
        metrics=load_metrics(config.task),
        horizon=horizon,
        steps_per_epoch=steps_per_epoch,
        state=state,
        progress=progress,
        clock=TrainingClock(earlier_seconds=state.training_seconds),
        decay=decay,
        average=average,
        spent_seconds=state.training_seconds,
    )


def probe_model_config(config: TrainingConfig) -> Seq2SeqRNNConfig:
    """The model shape the precision probe times: the saved model's, or the run's new one."""
    if config.model_name_or_path:
        return load_saved(load_config, config.model_name_or_path)
    return new_model_config(config, vocab_size=config.vocab_size)


def data_config(config: TrainingConfig, accelerator: Accelerator, checkpoint: str | None) -> TrainingConfig:
    """The config `load_data` reads. A stream resumed from `checkpoint` must have the data settings
    it was saved with (else a one-line error names the one that differs), and takes the tokenizer
    saved with it: training one again would read the stream's first pairs again."""
    if checkpoint is None:
        return config
    saved = checkpoints.read_trainer_state(checkpoint).get("stream")
    current = stream_settings(config, accelerator.num_processes) if config.streaming else None
    check_stream_settings(checkpoint, saved, current)
    tokenizer = os.path.join(checkpoint, checkpoints.TOKENIZER_DIR)
    return dataclasses.replace(config, tokenizer=tokenizer) if config.streaming else config


def resume(accelerator: Accelerator, config: TrainingConfig, checkpoint: str | None) -> TrainingState:
    """The state to start from: a checkpoint's (weights, optimizer, scheduler and the RNG of every
    process restored into the prepared objects), or a new one."""
    state = TrainingState(mixed_precision=accelerator.mixed_precision)
    if config.resume_from_checkpoint and checkpoint is None:
        logger.info("no checkpoint in %s yet: starting from scratch", config.output_dir, main_process_only=True)
    if checkpoint is None:
        return state
    if config.ema_decay is not None and not glob.glob(os.path.join(checkpoint, "custom_checkpoint_*")):
        raise TrainingInputError(
            f"the checkpoint {checkpoint} holds no weight average (its run had no --ema-decay); resume without "
            "--ema-decay, or start a new run with it"
        )
    try:
        accelerator.load_state(checkpoint)
    except Exception as error:  # damage that the read-back check missed, or another model's state
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:300]
        raise TrainingInputError(
            f"cannot load the checkpoint {checkpoint} ({reason}); pass another one to --resume-from-checkpoint"
        ) from error
    state.load_state_dict(checkpoints.read_trainer_state(checkpoint))
    state.mixed_precision = accelerator.mixed_precision
    logger.info(f"resumed from {checkpoint} at step {state.completed_steps}", main_process_only=True)
    return state


def training_function(config: TrainingConfig) -> dict[str, float]:
    """Train, evaluate, checkpoint and save; returns the final validation scores."""
    run = prepare_run(config)
    if config.eval_on_start and run.state.completed_steps == 0:
        evaluate_loss_at_start(run)
    run.model.train()
    while not run.done:
        for batch in epoch_batches(run):
            if train_step(run, batch):  # an optimizer step was taken (not only accumulated)
                after_optimizer_step(run)
                maybe_log(run)
                run.done = reached_the_end(run)
                maybe_evaluate_model(run)
                maybe_checkpoint(run)
                if run.done:
                    break
        else:  # the epoch ran out before the run did
            run.state.epoch += 1
            run.state.batches_done = 0
    run.progress.close()
    return finish(run)


def epoch_batches(run: Run):
    """The batches of the current epoch, past those a resumed run already trained on: map-style
    batches are skipped (indices only); a stream continues from the position `resume` loaded."""
    run.train_dataloader.set_epoch(run.state.epoch)
    if run.sampler is not None:
        run.sampler.set_epoch(run.state.epoch)
        if run.state.batches_done:
            return run.accelerator.skip_first_batches(run.train_dataloader, run.state.batches_done)
    return run.train_dataloader


def train_step(run: Run, batch: dict[str, torch.Tensor]) -> bool:
    """Forward, backward and (once the gradients are accumulated) clip and update; True when the
    optimizer stepped. A non-finite loss or gradient norm stops the run before the weights change."""
    config, accelerator, model = run.config, run.accelerator, run.model
    run.teacher_forcing = schedules.teacher_forcing_ratio(
        config.teacher_forcing_schedule,
        config.teacher_forcing_start,
        config.teacher_forcing_end,
        run.horizon.progress(run.state.completed_steps, run.spent_seconds),
    )
    with accelerator.accumulate(model):
        loss = model(**batch, teacher_forcing_ratio=run.teacher_forcing).loss
        finite = accelerator.reduce(torch.isfinite(loss.detach()).float(), reduction="sum")
        if finite.item() < accelerator.num_processes:
            raise TrainingDivergedError(diverged_message(config, "training loss", loss, run.state.completed_steps))
        accelerator.backward(loss)
        if accelerator.sync_gradients:
            norm = accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            if not torch.isfinite(norm):  # the same on every process: gradients are all-reduced
                raise TrainingDivergedError(diverged_message(config, "gradient norm", norm, run.state.completed_steps))
        run.optimizer.step()
        run.optimizer.zero_grad()
    run.state.batches_done += 1
    run.totals.add(loss.detach().float().item(), int((batch["labels"] != -100).sum()))
    return accelerator.sync_gradients


def after_optimizer_step(run: Run) -> None:
    """The clock, the weight average, the learning rate for the next step, the step count and the bar."""
    run.spent_seconds = synced_training_seconds(run)
    if run.average is not None:
        run.average.update(run.accelerator.unwrap_model(run.model))
    if run.decay is not None:
        run.decay.training_seconds = run.spent_seconds
    run.lr_scheduler.step()
    run.state.completed_steps += 1
    run.progress.advance(run.state.completed_steps, run.spent_seconds)


def synced_training_seconds(run: Run) -> float:
    """The training clock, the same on every process: the slowest process's, so that they all follow
    one learning rate and stop at the same step. One all-reduce, under a time budget only."""
    if run.horizon.budget_seconds is None:
        return run.clock.training_seconds()
    spent = torch.tensor(run.clock.training_seconds(), device=run.accelerator.device, dtype=torch.float64)
    return run.accelerator.reduce(spent, reduction="max").item()


def maybe_log(run: Run) -> None:
    """Every `logging_steps`: the window's training loss, learning rate, ratio and tokens/s."""
    if run.state.completed_steps % run.config.logging_steps:
        return
    train_loss, tokens_per_second = run.totals.reduce(run.accelerator)
    run.accelerator.log(
        {
            "train_loss": train_loss,
            "learning_rate": run.lr_scheduler.get_last_lr()[0],
            "teacher_forcing_ratio": run.teacher_forcing,
            "target_tokens_per_second": tokens_per_second,
        },
        step=run.state.completed_steps,
    )
    run.progress.set_postfix(loss=f"{train_loss:.3f}", tok_s=f"{tokens_per_second:.0f}")
    run.totals.restart()


def reached_the_end(run: Run) -> bool:
    """The last step, or a spent time budget (on the clock every process shares)."""
    return run.horizon.progress(run.state.completed_steps, run.spent_seconds) >= 1.0


def evaluate(run: Run, with_generation: bool = True) -> EvaluationResult:
    """`evaluate_model` on the run's validation data, with its settings and metrics."""
    return evaluate_model(
        run.accelerator, run.model, run.data.tokenizer, run.eval_dataloader, run.metrics, run.config, with_generation
    )


def evaluate_loss_at_start(run: Run) -> None:
    result = evaluate(run, with_generation=False)
    run.accelerator.log(result.scores, step=0)
    logger.info(f"step 0: eval_loss {result.scores['eval_loss']:.4g}", main_process_only=True)
    run.state.eval_history.append({"step": 0, **result.scores})


def maybe_evaluate_model(run: Run) -> None:
    """Every `eval_steps` and at the end: loss, generation and metrics, logged and kept in the history."""
    step = run.state.completed_steps
    if not run.config.eval_steps or (step % run.config.eval_steps and not run.done):
        return
    started = time.perf_counter()
    with run.averaged():
        result = evaluate(run)
        log_evaluation(run.accelerator, run.model, run.data, run.config, result, step)
    seconds = time.perf_counter() - started
    run.clock.add_evaluation(seconds)  # the time budget and tokens per second count training time only
    run.totals.pause(seconds)
    run.last_scores, run.last_eval_step = result.scores, step
    run.state.eval_history.append({"step": step, **history_point(run), **result.scores})


def history_point(run: Run) -> dict[str, float]:
    """Where the run stood at an evaluation: the training clock and the learning rate of the next step."""
    return {"training_seconds": run.spent_seconds, "learning_rate": run.lr_scheduler.get_last_lr()[0]}


def maybe_checkpoint(run: Run) -> None:
    """Every `checkpointing_steps` and at the end: the full state, kept while among the newest or the best."""
    config, state = run.config, run.state
    if not (config.checkpointing_steps and state.completed_steps % config.checkpointing_steps == 0) and not run.done:
        return
    state.training_seconds = run.spent_seconds  # a resumed run's clock starts here
    saved = state.state_dict()
    if config.streaming:  # a stream, whose loader saves its position: a resumed run reads no row again
        saved["stream"] = stream_settings(config, run.accelerator.num_processes)
        epoch_ended = run.train_dataloader.end_of_dataloader
    else:
        epoch_ended = run.steps_per_epoch is not None and state.batches_done >= len(run.train_dataloader)
    if epoch_ended:
        saved.update(epoch=state.epoch + 1, batches_done=0)  # a resumed run starts the next epoch
    metric = run.last_scores.get(config.metric_for_best) if run.last_eval_step == state.completed_steps else None
    checkpoints.save_checkpoint(
        run.accelerator,
        config.output_dir,
        saved,
        config.metric_for_best,
        metric,
        keep=config.keep_checkpoints,
        tokenizer=run.data.tokenizer if config.streaming else None,
    )


def finish(run: Run) -> dict[str, float]:
    """The final evaluation (unless the last step had one), the saved model and the printed samples."""
    accelerator, state = run.accelerator, run.state
    session_seconds = run.clock.session_seconds()  # before the final evaluation, which is not training
    with run.averaged():
        if run.last_eval_step != state.completed_steps:
            result = evaluate(run)
            log_evaluation(accelerator, run.model, run.data, run.config, result, state.completed_steps)
            run.last_scores = result.scores
            state.eval_history.append({"step": state.completed_steps, **history_point(run), **result.scores})
        tokens = accelerator.reduce(torch.tensor(run.totals.session_tokens, device=accelerator.device), reduction="sum")
        throughput = {
            "training_seconds": run.spent_seconds,
            "target_tokens_per_second": tokens.item() / max(session_seconds, 1e-9),
        }
        logger.info(
            f"trained {state.completed_steps} steps, {throughput['target_tokens_per_second']:.0f} target tokens/s",
            main_process_only=True,
        )
        save_model(accelerator, run.model, run.data, run.config, run.last_scores, state.eval_history, throughput)
        show_samples(accelerator, run.model, run.data, run.config)
    accelerator.end_training()
    return run.last_scores


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
    if config.shortlist_pairs:
        save_shortlist(unwrapped, data, config)
    write_model_card(config.output_dir, info)
    logger.info(f"model saved to {config.output_dir}", main_process_only=True)
    if config.push_to_hub:
        push_to_hub(config.output_dir, config.hub_model_id)


def save_shortlist(model: torch.nn.Module, data: PreparedData, config: TrainingConfig) -> None:
    """Learn the vocabulary shortlist from a seeded sample of the tokenized training pairs and write it
    beside the model. A stream is not read again for it (a second pass over a Hub stream); the log
    says how to learn one from the data afterwards."""
    if isinstance(data.train, IterableDataset):
        logger.info(
            "no vocabulary shortlist learned from a stream; python -m training.shortlist --model "
            f"{config.output_dir} --dataset DATA learns one from a file or a sample of the data",
            main_process_only=True,
        )
        return
    started = time.perf_counter()
    chosen = data.train.select(sample_indices(len(data.train), config.shortlist_pairs, config.seed))
    columns = chosen.with_format("arrow", columns=["input_ids", "labels"])[:]
    id_pairs = zip(columns["input_ids"].to_pylist(), columns["labels"].to_pylist(), strict=True)
    shortlist = learn_shortlist(id_pairs, data.tokenizer, model.config.vocab_size)
    shortlist.save(config.output_dir)
    logger.info(
        f"vocabulary shortlist learned from {shortlist.pairs} training pairs in {time.perf_counter() - started:.1f} s "
        "(decode with --shortlist FIRST,BEST)",
        main_process_only=True,
    )


def show_samples(
    accelerator: Accelerator,
    model: torch.nn.Module,
    data: PreparedData,
    config: TrainingConfig,
) -> None:
    """Print a few validation sources and sample prompts with the model's outputs."""
    if not accelerator.is_main_process:
        return
    unwrapped = accelerator.unwrap_model(model)
    validation = data.validation.select(range(min(config.num_samples, len(data.validation))))
    sources = data.tokenizer.batch_decode(list(validation["input_ids"]), skip_special_tokens=True)
    references = data.tokenizer.batch_decode(list(validation["labels"]), skip_special_tokens=True)
    prompts = sources + list(config.sample_prompts)
    unwrapped.eval()
    results = generate_texts(
        unwrapped, data.tokenizer, prompts, num_beams=config.num_beams, max_new_tokens=config.max_new_tokens
    )
    outputs = [result.text for result in results]
    accelerator.print("\nSamples (source → prediction):")
    for index, (prompt, output) in enumerate(zip(prompts, outputs, strict=True)):
        reference = f"   [reference: {references[index]}]" if index < len(references) else ""
        accelerator.print(f"  {prompt}  →  {output}{reference}")


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 on success, 2 on bad input, 3 when the loss diverged."""
    arguments = sys.argv[1:] if argv is None else list(argv)

    def train() -> None:
        config = parse_config(arguments)
        config.command = "python -m training.train " + shlex.join(arguments)
        training_function(config)

    return run_command(train)


if __name__ == "__main__":
    sys.exit(main())

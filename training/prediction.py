"""What a run of `python -m training.predict` (training/predict_run.py) and `--compare`
(training/compare.py) share: the command's inputs and where each one's outputs go, the test sets read
as training reads its data (a text file line by line, without `datasets`), the models loaded, the
decoding settings checked, the data decoded, and the outputs written. The command's settings are
`training.predict_options.PredictSettings`.

The run (`training.predict_run`) and the comparison (`training.compare`) both import this module, and
it imports neither, so imports run one way: predict -> predict_run -> compare -> prediction -> predict_options.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import transformers
from tqdm.auto import tqdm

import hf_seq2seq_rnn  # noqa: F401  (registers our model type with the Auto classes)
from hf_seq2seq_rnn.shortlist_seq2seq_rnn import check_setting
from seq2seq_tools import files, loading, machine
from seq2seq_tools.decoding import DECODING_KEYS, generate_arguments
from seq2seq_tools.ensemble import ensemble_of
from seq2seq_tools.generation import Generated, generate_texts

from .data_spec import DataSpec, data_spec, read_text_rows, text_file_column
from .errors import TrainingInputError
from .predict_options import DATA_KEYS, NO_SUMMARY, PREDICT_SHORTLIST, STDIO, PredictSettings
from .schema import detect_schema, pairs_from_batch

logger = logging.getLogger(__name__)
# With several `--dataset`, each input's files in the folders named by these flags: INPUT + suffix
# (`--output out --dataset data/test.de` writes out/test.de.hyp).
INPUT_SUFFIXES = {
    "output": ".hyp",
    "n_best_output": ".nbest",
    "alignments": ".alignments.jsonl",
    "hard_alignments": ".hard-alignments.txt",
    "summary": ".summary.json",
}


def load_model_and_tokenizer(
    path: str, trust_remote_code: bool = False, quantize: str = "none"
) -> tuple[torch.nn.Module, Any]:
    """The model (int8 when `quantize` says so) and tokenizer at `path` (a folder or a Hub id), in
    eval mode, through the shared loader (`seq2seq_tools.loading.load_model_and_tokenizer`), its
    errors as `TrainingInputError`: our model type loads with the installed classes, never with the
    `.py` files saved in the folder; `trust_remote_code` admits other model types (their code then runs)."""
    check_model_paths([path])
    try:
        return loading.load_model_and_tokenizer(path, quantize=quantize, trust_remote_code=trust_remote_code)
    except (loading.UntrustedModelError, loading.IncompatibleModelError) as error:
        raise TrainingInputError(str(error)) from error
    except (OSError, ValueError) as error:
        raise TrainingInputError(f"cannot load the model {path!r}: {error}") from error


def check_model_paths(paths: list[str]) -> None:
    """Refuse a local `--model` path that holds no model, naming the flag (the loader checks too, in
    other words), so that predict can say so before it reads the test data."""
    for path in paths:
        try:
            loading.check_model_path(path)
        except FileNotFoundError as error:
            raise TrainingInputError(f"--model {error}") from error


def load_models(
    paths: list[str], trust_remote_code: bool = False, quantize: str = "none"
) -> tuple[torch.nn.Module, Any]:
    """The model at the one path of `paths`, or the ensemble of the models at several
    (`seq2seq_tools.ensemble.ensemble_of`), and the tokenizer; models whose tokenizers differ are refused."""
    loaded = [load_model_and_tokenizer(path, trust_remote_code, quantize) for path in paths]
    if len(loaded) == 1:
        return loaded[0]
    models, tokenizers = zip(*loaded, strict=True)
    try:
        return ensemble_of(models, tokenizers, paths), tokenizers[0]
    except ValueError as error:
        raise TrainingInputError(str(error)) from error


def model_task(settings: PredictSettings) -> tuple[str, dict[str, Any]]:
    """The task to score (`--task`, else the model's, else translation) and the `training_info.json`
    of the first `--model` when it is a folder (an ensemble's task and languages are its first model's)."""
    first = settings.model[0]
    info = loading.read_training_info(first) if os.path.isdir(first) else {}
    return settings.task or info.get("task") or "translation", info


@dataclass(frozen=True)
class PredictInput:
    """One `--dataset` of a run, its references file, and the files its outputs go to (named by the
    flag that names them: `None` not written, `-` stdout, `summary` also none)."""

    dataset: str
    references: str | None
    output: str
    n_best_output: str | None = None
    alignments: str | None = None
    hard_alignments: str | None = None
    summary: str | None = None


def predict_inputs(settings: PredictSettings) -> list[PredictInput]:
    """Each `--dataset` of the run and the files its outputs go to, checked before anything loads.

    One `--dataset` writes where the flags say. With several, `--output` and the other output flags
    given name existing folders (`--n-best-output` and `--summary` default to the `--output` folder),
    where each input's files are named after the input's file name (`INPUT_SUFFIXES`).

    Raises:
        TrainingInputError: references that do not pair with the inputs; with several inputs, stdin
            among them, an output flag that is not an existing folder (`-` included), two inputs of
            the same name, or an output that would overwrite an input.
    """
    references = settings.references
    if references and len(references) != len(settings.dataset):
        raise TrainingInputError(
            f"{len(references)} --references for {len(settings.dataset)} --dataset: give one per --dataset, in "
            "the same order, or none"
        )
    pairs = list(zip(settings.dataset, references or [None] * len(settings.dataset), strict=True))
    if len(pairs) == 1:
        keys = ("output", "n_best_output", "alignments", "hard_alignments", "summary")
        return [PredictInput(*pairs[0], **{key: getattr(settings, key) for key in keys})]
    if STDIO in settings.dataset:
        raise TrainingInputError(
            "--dataset - (stdin) cannot be one of several --dataset; decode it in a run of its own"
        )
    names = [os.path.basename(os.path.normpath(dataset)) for dataset in settings.dataset]
    for position, name in enumerate(names):
        if name in names[:position]:
            first = settings.dataset[names.index(name)]
            raise TrainingInputError(
                f"--dataset {first} and {settings.dataset[position]} are both named {name}: their outputs would "
                "overwrite each other's; decode them in separate runs, or give one another name"
            )
    folders = _output_folders(settings, names[0])
    inputs = []
    for (dataset, reference), name in zip(pairs, names, strict=True):
        files = {key: os.path.join(folder, name + INPUT_SUFFIXES[key]) for key, folder in folders.items()}
        files.setdefault("summary", NO_SUMMARY)  # `--summary none`
        inputs.append(PredictInput(dataset, reference, **files))
    _check_inputs_kept(inputs)
    return inputs


def _output_folders(settings: PredictSettings, example: str) -> dict[str, str]:
    """The folder of each output flag in use, with several `--dataset`: each must exist already."""
    given = {
        "output": settings.output,
        "n_best_output": (settings.n_best_output or settings.output) if settings.n_best else None,
        "alignments": settings.alignments,
        "hard_alignments": settings.hard_alignments,
        "summary": None if settings.summary == NO_SUMMARY else settings.summary or settings.output,
    }
    folders = {key: folder for key, folder in given.items() if folder is not None}
    for key, folder in folders.items():
        flag = "--" + key.replace("_", "-")
        where = f"an existing folder, where each input's file is named after it ({example}{INPUT_SUFFIXES[key]})"
        where += " or none" if key == "summary" else ""
        if folder == STDIO:
            raise TrainingInputError(
                f"{flag} - with several --dataset: each input needs files of its own; pass {where}"
            )
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise TrainingInputError(f"{flag} {folder} is a file: with several --dataset, {flag} names {where}")
        if not os.path.isdir(folder):
            raise TrainingInputError(f"{flag} {folder}: no such folder; with several --dataset, {flag} names {where}")
    return folders


def _check_inputs_kept(inputs: list[PredictInput]) -> None:
    """Refuse outputs that would overwrite one of the inputs (`--output data` beside `data/a.de.hyp`)."""
    read = {os.path.realpath(path): path for item in inputs for path in (item.dataset, item.references) if path}
    for item in inputs:
        for path in (item.output, item.n_best_output, item.alignments, item.hard_alignments, item.summary):
            if path and os.path.realpath(path) in read:
                raise TrainingInputError(
                    f"the outputs of --dataset {item.dataset} would overwrite the input {read[os.path.realpath(path)]}; "
                    "pass another folder"
                )


@dataclass
class PredictData:
    """The sources to decode, their references (`None` when there are none) and where they came from."""

    sources: list[str]
    references: list[str] | None
    description: str


def _data_spec(settings: PredictSettings, info: dict[str, Any], dataset: str) -> DataSpec:
    """How to read `dataset`: the data flags, the languages defaulting to the model's."""
    return data_spec(
        settings,
        DATA_KEYS,
        dataset=dataset,
        source_lang=settings.source_lang or info.get("source_lang"),
        target_lang=settings.target_lang or info.get("target_lang"),
    )


def _read_text_file(settings: PredictSettings, info: dict[str, Any], dataset: str) -> tuple[list[str], list[str], str]:
    """The sources, targets and description of a `.txt` or plain-text `dataset` (`text_file_column`): its
    lines read as `datasets`' text builder reads them, then the schema and pairs of `training.data`
    (`detect_schema`, `pairs_from_batch`), without `datasets`."""
    column = text_file_column(dataset)
    rows = read_text_rows(dataset)
    schema = detect_schema([column], _data_spec(settings, info, dataset))
    pairs = pairs_from_batch({column: rows}, schema)
    return pairs["source"], pairs["target"], f"{dataset} ({settings.split}), {schema.describe()}"


def _read_dataset(settings: PredictSettings, info: dict[str, Any], dataset: str) -> tuple[list[str], list[str], str]:
    """The sources, targets and description of `dataset` read as training reads its data (`training.data`)."""
    # Imported here: `training.data` imports `datasets` (pyarrow and pandas with it, over half a
    # second), which stdin and a text file, read line by line, do not need.
    from .data import load_raw, schema_of, to_pairs

    spec = _data_spec(settings, info, dataset)
    splits = load_raw(spec.dataset, spec.dataset_config, streaming=False, split_name=settings.split, spec=spec)
    if settings.split not in splits:
        raise TrainingInputError(f"split {settings.split!r} not found in {dataset}; its splits are {sorted(splits)}")
    raw = splits[settings.split]
    schema = schema_of(raw, spec, dataset)
    pairs = to_pairs(raw, schema)
    return list(pairs["source"]), list(pairs["target"]), f"{dataset} ({settings.split}), {schema.describe()}"


def read_data(settings: PredictSettings, info: dict[str, Any], item: PredictInput) -> PredictData:
    """The sources and references of input `item`: one source per line from stdin, else read as training
    reads its data, a `.txt` or plain-text file (`test.de`) line by line (`_read_text_file`), any other
    through `datasets` (`_read_dataset`)."""
    if item.dataset == STDIO:
        sources = [line.rstrip("\r\n") for line in sys.stdin]
        targets: list[str] = []
        description = "stdin, one source per line"
    elif os.path.isfile(item.dataset) and os.path.getsize(item.dataset) == 0:
        raise TrainingInputError(f"the input {item.dataset} is empty (0 bytes): there is nothing to decode")
    elif text_file_column(item.dataset):
        sources, targets, description = _read_text_file(settings, info, item.dataset)
    else:
        sources, targets, description = _read_dataset(settings, info, item.dataset)
    if not sources:
        raise TrainingInputError(f"the input {item.dataset} is empty: there is nothing to decode")
    if item.references:
        if not os.path.isfile(item.references):
            raise TrainingInputError(f"--references {item.references}: file not found")
        with open(item.references, encoding="utf-8") as handle:
            targets = [line.rstrip("\r\n") for line in handle]
        description += f", references from {item.references}"
    given = sum(1 for target in targets if target.strip())
    if given == 0:
        return PredictData(sources, None, description)
    if len(targets) != len(sources) or given != len(sources):
        raise TrainingInputError(
            f"{len(sources)} sources but {given} references (of {len(targets)} lines); every source needs "
            "one, or pass none to decode without metrics"
        )
    return PredictData(sources, targets, description)


def output_paths(settings: PredictSettings, item: PredictInput) -> dict[str, str]:
    """Every file the run writes for input `item`, by the flag that names it (stdout not included)."""
    paths = {"output": item.output}
    beside = item.output != STDIO
    if settings.n_best:
        paths["n_best_output"] = item.n_best_output or f"{item.output}.nbest"
    for key in ("alignments", "hard_alignments"):
        if getattr(item, key):
            paths[key] = getattr(item, key)
    if item.summary != NO_SUMMARY and (item.summary or beside):
        paths["summary"] = item.summary or f"{item.output}.summary.json"
    return {key: path for key, path in paths.items() if path != STDIO}


def check_writable(paths: dict[str, str]) -> None:
    """Fail before decoding, not after: each output's folder exists and takes a new file."""
    for key, path in paths.items():
        flag = "--" + key.replace("_", "-")
        if os.path.isdir(path):
            raise TrainingInputError(f"{flag} {path} is a directory; pass a file path")
        folder = os.path.dirname(os.path.abspath(path))
        try:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-"):
                pass
        except OSError as error:
            raise TrainingInputError(
                f"{flag} {path} cannot be written ({error.strerror or error}); pass a path in a writable folder"
            ) from error


def write_output(path: str, text: str) -> None:
    """Write an output of the command: to stdout for `-`, else to `path` whole or not at all
    (`seq2seq_tools.files.write_atomically`)."""
    if path == STDIO:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    files.write_atomically(path, text)


def default_shortlist(
    model: torch.nn.Module, task: str, tokenizer: Any = None, others: Sequence[torch.nn.Module] = ()
) -> str | None:
    """predict's `--shortlist` when it is not given: `PREDICT_SHORTLIST` (within what the model's shortlist
    holds) for a translation model with a shortlist whose generation config names none, when each of
    `others` (the other models of `--compare`, which decode with `model`'s settings) has one too; else
    None. Only translation: a Q/A model's answers need not echo its questions' words, and the default
    was measured on translation.

    Raises:
        TrainingInputError: the model's shortlist file is there but cannot be used (cut short, made for
            another vocabulary); the message says how to decode without it.
    """
    has_shortlist = all(getattr(each, "has_shortlist", False) for each in (model, *others))
    if task != "translation" or not has_shortlist or getattr(model.generation_config, "shortlist", None) is not None:
        return None
    try:
        shortlist = model.load_shortlist(tokenizer)
    except ValueError as error:
        raise TrainingInputError(f"{error}; or pass --shortlist none to decode over the whole vocabulary") from error
    first, best = check_setting(PREDICT_SHORTLIST)
    return f"{min(first, shortlist.frequent.numel())},{min(best, shortlist.candidates.shape[1])}"


def generation_settings(
    model: torch.nn.Module,
    settings: PredictSettings,
    tokenizer: Any = None,
    task: str = "translation",
    others: Sequence[torch.nn.Module] = (),
) -> dict[str, Any]:
    """The `generate()` arguments of this run: the flags given, on top of the model's generation config
    (whose other settings `generate()` applies itself), checked where generate() checks them
    (`seq2seq_tools.decoding.generate_arguments`, as the chatbot's JSON endpoint checks its requests).
    Without `--shortlist`, `default_shortlist(model, task, tokenizer, others)`."""
    given = {key: getattr(settings, key) for key in DECODING_KEYS}
    if given["shortlist"] is None:
        given["shortlist"] = default_shortlist(model, task, tokenizer, others)
    num_beams = settings.num_beams if settings.num_beams is not None else model.generation_config.num_beams
    if settings.n_best and isinstance(num_beams, int) and settings.n_best > num_beams:
        raise TrainingInputError(
            f"--n-best {settings.n_best} is above the {num_beams} beam(s) searched: beam search keeps "
            f"only num_beams hypotheses; raise --num-beams to {settings.n_best} or more, or lower --n-best"
        )
    try:
        return generate_arguments(model, given, n_best=settings.n_best or 1, tokenizer=tokenizer)
    except ValueError as error:
        raise TrainingInputError(f"bad decoding settings: {error}") from error


def cpu_description() -> dict[str, Any]:
    """The CPU's name, its flags that decide torch's kernels, torch's dispatch level and thread count."""
    return {
        "model_name": machine.cpu_name(),
        "flags": [flag for flag in machine.REPORTED_FLAGS if flag in machine.cpu_flags()],
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "description": machine.describe_cpu(),
    }


def one_line(text: str) -> str:
    return " ".join(text.splitlines())


def decode(
    model: torch.nn.Module,
    tokenizer: Any,
    data: PredictData,
    settings: PredictSettings,
    description: str = "Decoding",
    **generation: Any,
) -> tuple[list[Generated], float]:
    """`data`'s sources through `generate_texts` with `generation`, and the seconds it took: on the GPU
    when there is one and no quantization (an int8 model, quantized when loaded, stays on the CPU),
    seeded, with a progress bar on stderr."""
    if torch.cuda.is_available() and settings.quantize == "none":
        model = model.to("cuda")
    transformers.set_seed(settings.seed)
    started = time.perf_counter()
    with tqdm(total=len(data.sources), unit="sent", desc=description, file=sys.stderr) as bar:
        results = generate_texts(
            model,
            tokenizer,
            data.sources,
            batch_size=settings.batch_size,
            max_input_tokens=settings.max_input_tokens,
            progress=bar.update,
            **generation,
        )
    return results, time.perf_counter() - started


__all__ = [
    "PredictData",
    "INPUT_SUFFIXES",
    "PredictInput",
    "check_model_paths",
    "load_model_and_tokenizer",
    "load_models",
    "model_task",
    "predict_inputs",
    "read_data",
    "output_paths",
    "check_writable",
    "write_output",
    "generation_settings",
    "cpu_description",
    "one_line",
    "decode",
]

"""Serve models of this project in a browser and to `gradio_client`.

python -m chatbot --model runs/chat                  # a trained directory
python -m chatbot --model user/seq2seq-rnn-en-fr      # a Hub id (loaded with the installed code, not its own)
python -m chatbot --model runs/chat --model runs/fr   # several models, chosen in the page
python -m chatbot --ensemble runs/chat --ensemble runs/chat2   # one entry that decodes with both at once
python -m chatbot                                      # the demo models (trained on first use, in the background)
python -m chatbot --variants                           # the textbook's variants on dates, on the Compare tab
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import logging
import math
import os
import platform
import sys
import typing

logger = logging.getLogger("chatbot")


def parse_auth(value: str) -> tuple[str, str]:
    user, separator, password = value.partition(":")
    if not separator or not user or not password:
        raise argparse.ArgumentTypeError("--auth takes USER:PASSWORD, both non-empty")
    return user, password


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} must be an integer >= 1")
    return number


def non_negative_number(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number >= 0):
        raise argparse.ArgumentTypeError(f"{value!r} must be a number of at least 0")
    return number


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr and exit code 2, as in `training.predict`."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"error: {message} (see python -m chatbot --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line. Long only because it declares one flag after another, each with its help;
    split up, the flags would be harder to find, not easier to read."""
    parser = _Parser(
        prog="python -m chatbot",
        description=(
            "Chat with and translate through recurrent encoder-decoder models in a browser, with the attention "
            "heatmap of every reply. The same server answers programs through gradio_client (endpoints /chat "
            "and /translate)."
        ),
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        action="append",
        metavar="DIR_OR_HUB_ID",
        help="a model directory written by save_pretrained, or a Hub id; repeat it to serve several models, "
        "chosen in the page. Models of this project (model_type seq2seq_rnn) load with the installed code, "
        "never with Python files that come with them; other types are refused unless --trust-remote-code. "
        "Default: the demo chat and translation models under $HF_SEQ2SEQ_RNN_HOME (default "
        "~/.cache/hf-seq2seq-rnn), trained on first use.",
    )
    parser.add_argument(
        "--variants",
        action="store_true",
        help="serve the variants demo instead: five small models of the textbook's date task (no attention; dot, "
        "additive, and general attention with input feeding; a peeky decoder without attention), trained on first "
        "use into the same cache, and open the page on the Compare tab with example dates of growing length",
    )
    parser.add_argument(
        "--ensemble",
        action="append",
        metavar="DIR_OR_HUB_ID",
        help="a model of an ensemble: give it twice or more to serve one more entry in the page's model list that "
        "decodes with all of these models at once (their log-probabilities averaged at each step, the heatmap "
        "the mean of their attention). They must share a tokenizer. With --model, both are served; without it, "
        "the ensemble alone.",
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="also load models of other types, through transformers' Auto classes with trust_remote_code=True: "
        "the Python files that come with such a model run on this machine, so pass it only for models whose "
        "code you trust (off by default)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (default: %(default)s, this machine only; 0.0.0.0 exposes the page to "
        "your network)",
    )
    parser.add_argument(
        "--quantize",
        choices=("none", "int8"),
        default="none",
        help="int8: serve with int8 weights in the recurrent and linear layers (dynamic quantization: faster "
        "decoding on a CPU, outputs within rounding of fp32). Default: %(default)s",
    )
    parser.add_argument("--port", type=positive_int, default=7860, help="the port to listen on (default: %(default)s)")
    parser.add_argument(
        "--share",
        action="store_true",
        help="also open a public *.gradio.live link through Gradio's share servers (off by default: anyone with "
        "the link can use the server)",
    )
    parser.add_argument(
        "--auth",
        type=parse_auth,
        metavar="USER:PASSWORD",
        help="require this login in the page and for API clients (default: no login; note that a password given "
        "on the command line is visible to other users of this machine)",
    )
    parser.add_argument(
        "--max-input-tokens",
        type=positive_int,
        metavar="N",
        help="truncate messages longer than N tokens, with a notice in the page (default: each tokenizer's "
        "model_max_length)",
    )
    parser.add_argument(
        "--max-length-a",
        type=non_negative_number,
        metavar="A",
        help="cap every reply at A x its message's tokens + B new tokens (with --max-length-b; fairseq's "
        "--max-len-a/b). Default: each model's generation config (training sets 2 and 10)",
    )
    parser.add_argument("--max-length-b", type=non_negative_number, metavar="B", help="B of that cap, in tokens")
    parser.add_argument(
        "--coverage-penalty",
        type=non_negative_number,
        metavar="BETA",
        help="beam search: the coverage penalty of Wu et al. (2016), which favours replies whose attention covers "
        "the whole message (default: off)",
    )
    parser.add_argument(
        "--concurrency-limit",
        type=positive_int,
        default=2,
        metavar="N",
        help="requests decoded at the same time; others wait in the queue (default: %(default)s)",
    )
    parser.add_argument(
        "--max-queue-size",
        type=positive_int,
        default=64,
        metavar="N",
        help="requests allowed to wait; past this a client is told that the queue is full (default: %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="torch CPU threads per process (default: torch's own choice)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much the server logs to stderr (default: %(default)s)",
    )
    return parser


def limit_malloc_arenas(count: int = 2, libc: tuple[str, str] | None = None) -> str | None:
    """Cap glibc's heap arenas (unless MALLOC_ARENA_MAX is set); return a line saying why not where
    the cap was wanted but cannot be set (`libc`: `platform.libc_ver()`, read when not given).

    glibc gives busy threads their own arena, up to 8 per core, and keeps their freed memory, so a
    server under many concurrent clients grows between requests (`benchmarks/bench_soak.py` measures
    it). Other C libraries (musl, macOS, Windows) have no such arenas and no `mallopt` for them.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return None
    name, version = platform.libc_ver() if libc is None else libc
    if name != "glibc":
        return f"memory arenas not capped: the C library is {name or 'not glibc'}, and only glibc has them"
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError) as error:
        return f"memory arenas not capped: glibc {version}'s mallopt cannot be reached ({error})"
    m_arena_max = -8  # from glibc's malloc.h
    if mallopt(m_arena_max, count) != 1:
        return f"memory arenas not capped: glibc {version} refused mallopt(M_ARENA_MAX, {count})"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ensemble is not None and len(args.ensemble) < 2:
        parser.error("--ensemble needs two models or more (give the flag once per model)")
    if args.variants and (args.model or args.ensemble):
        parser.error("--variants serves its own models; leave out --model and --ensemble")
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    arenas_note = limit_malloc_arenas()
    if arenas_note:
        logger.info(arenas_note)
    # No usage reports from a local server unless the user asks for them in the environment.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

    import torch

    from hf_seq2seq_rnn.search_seq2seq_rnn import SEARCH_SETTINGS
    from seq2seq_tools.loading import IncompatibleModelError, UntrustedModelError
    from seq2seq_tools.machine import choose_threads

    from .background import ModelRegistry, train_in_background
    from .demo_models import (
        DEMO_MODELS,
        VARIANT_COMPARED,
        VARIANT_DEMOS,
        VARIANT_EXAMPLES,
        DemoModelError,
        demo_home,
        missing_demo_models,
        train_demo_model,
    )
    from .demo_models import training_config as demo_training_config
    from .inference import load_ensemble, load_model

    threads, threads_note = choose_threads(args.threads)
    torch.set_num_threads(threads)
    if threads_note:
        logger.warning(threads_note)
    sources = args.model
    pending: list[str] = []  # demo models to train in the background while the page is served
    home = demo_home()
    demos = VARIANT_DEMOS if args.variants else DEMO_MODELS
    if not sources and not args.ensemble:
        pending = missing_demo_models(home, demos)
        try:
            for name in pending:
                spec = demos[name]
                demo_training_config(spec if isinstance(spec, str) else spec[0])
        except DemoModelError as error:  # nothing could be trained: say so now rather than on the page
            print(f"error: {error}", file=sys.stderr)
            return 2
        sources = [str(home / name) for name in demos if name not in pending]

    def configure(loaded):
        for key in SEARCH_SETTINGS:
            if getattr(args, key) is not None:  # a search setting of every served model (its generation config)
                setattr(loaded.model.generation_config, key, getattr(args, key))
        return loaded

    loads = [(source, functools.partial(load_model, source)) for source in sources or []]
    if args.ensemble:
        loads.append((" + ".join(args.ensemble), functools.partial(load_ensemble, args.ensemble)))
    models = []
    for source, load in loads:
        logger.info("loading %s", source)
        try:
            models.append(
                load(
                    max_input_tokens=args.max_input_tokens,
                    quantize=args.quantize,
                    trust_remote_code=args.trust_remote_code,
                )
            )
        except (UntrustedModelError, IncompatibleModelError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except Exception as error:
            print(f"error: could not load the model {source!r}: {type(error).__name__}: {error}", file=sys.stderr)
            return 2
        configure(models[-1])

    from .app import build_app, model_names
    from .page_text import PAGE_I18N

    registry = ModelRegistry(model_names(models), pending=pending)
    if pending:
        load = functools.partial(
            load_model, max_input_tokens=args.max_input_tokens, quantize=args.quantize, trust_remote_code=False
        )
        train = functools.partial(train_demo_model, home=home, demos=demos)
        train_in_background(registry, train, lambda path: configure(load(path)))
        logger.warning("Serving the page now; training %s in the background", ", ".join(pending))
    if args.variants:  # the names in the order of VARIANT_DEMOS, whichever were trained before
        registry.names.sort(key=list(VARIANT_DEMOS).index)
        app = build_app(
            registry,
            title="Seq2seq RNN variants: the same dates, with and without attention",
            compare=VARIANT_COMPARED,
            compare_examples=VARIANT_EXAMPLES,
            start_tab="compare",
        )
    else:
        app = build_app(registry)
    app.queue(max_size=args.max_queue_size, default_concurrency_limit=args.concurrency_limit)
    app.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        auth=args.auth,
        show_error=False,
        i18n=PAGE_I18N,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

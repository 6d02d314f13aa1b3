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
import dataclasses
import functools
import logging
import os
import platform
import sys
from dataclasses import dataclass
from typing import Literal

from seq2seq_tools.decoding_options import SEARCH_KEYS, SearchOptions, generate_value
from seq2seq_tools.options import InputError, OptionParser, add_options, from_namespace, option

logger = logging.getLogger("chatbot")


@dataclass
class ChatbotSettings(SearchOptions):
    """The options of `python -m chatbot`; each field is a flag (`max_input_tokens` -> `--max-input-tokens`):
    these, and this project's search settings for every served model (`SearchOptions`, declared with the
    other decoding settings in `seq2seq_tools.decoding_options`)."""

    model: list[str] | None = option(
        "a model directory written by save_pretrained, or a Hub id; repeat it to serve several models, chosen in "
        "the page. Models of this project (model_type seq2seq_rnn) load with the installed code, never with Python "
        "files that come with them; other types are refused unless --trust-remote-code. Default: the demo chat and "
        "translation models under $HF_SEQ2SEQ_RNN_HOME (default ~/.cache/hf-seq2seq-rnn), trained on first use.",
        metavar="DIR_OR_HUB_ID",
    )
    variants: bool = option(
        "serve the variants demo instead: five small models of the textbook's date task (no attention; dot, "
        "additive, and general attention with input feeding; a peeky decoder without attention), trained on first "
        "use into the same cache, and open the page on the Compare tab with example dates of growing length",
        False,
    )
    ensemble: list[str] | None = option(
        "a model of an ensemble: give it twice or more to serve one more entry in the page's model list that "
        "decodes with all of these models at once (their log-probabilities averaged at each step, the heatmap "
        "the mean of their attention). They must share a tokenizer. With --model, both are served; without it, "
        "the ensemble alone.",
        metavar="DIR_OR_HUB_ID",
    )
    trust_remote_code: bool = option(
        "also load models of other types, through transformers' Auto classes with trust_remote_code=True: the "
        "Python files that come with such a model run on this machine, so pass it only for models whose code you "
        "trust",
        False,
    )
    host: str = option(
        "the address to listen on (this machine only by default; 0.0.0.0 exposes the page to your network)",
        "127.0.0.1",
    )
    quantize: Literal["none", "int8"] = option(
        "int8: serve with int8 weights in the recurrent and linear layers (dynamic quantization: faster decoding "
        "on a CPU, outputs within rounding of fp32)",
        "none",
    )
    port: int = option("the port to listen on", 7860, minimum=1)
    share: bool = option(
        "also open a public *.gradio.live link through Gradio's share servers (anyone with the link can use the "
        "server)",
        False,
    )
    auth: str | None = option(
        "require this login, USER:PASSWORD, in the page and for API clients (default: no login; note that a "
        "password given on the command line is visible to other users of this machine)",
        metavar="USER:PASSWORD",
    )
    max_input_tokens: int | None = option(
        "truncate messages longer than N tokens, with a notice in the page (default: each tokenizer's "
        "model_max_length)",
        minimum=1,
        metavar="N",
    )
    batching: Literal["continuous", "micro", "none"] = option(
        "how concurrent requests to a model are decoded: continuous (a request joins the running batch at the "
        "next step and leaves it when its reply ends), micro (requests that arrive while a batch decodes wait "
        "for it to end, then decode together), or none (each request on its own, as before 0.9)",
        "continuous",
    )
    max_batch_rows: int = option(
        "the most rows decoded at once per model (a beam-search request takes one per beam); more requests wait",
        64,
        minimum=1,
    )
    batch_wait_ms: float = option(
        "micro batching: how long the first request of a batch waits for others, in milliseconds", 5.0, minimum=0
    )
    stream_interval_ms: float = option(
        "show a growing reply at most every MS milliseconds; while other replies decode, the first time after "
        "half of that (a reply done sooner comes whole), as each update is an event that costs the server about "
        "as much as a decoding step of the whole batch. 0: after every token",
        100.0,
        minimum=0,
        metavar="MS",
    )
    concurrency_limit: int | None = option(
        "requests in progress at the same time (in the batch, or decoding on their own); others wait in the "
        "queue. Default: --max-queue-size with batching, 2 with --batching none",
        minimum=1,
    )
    max_queue_size: int = option(
        "requests allowed to wait; past this a client is told that the queue is full", 64, minimum=1
    )
    num_threads: int | None = option(
        "torch CPU threads of the decoding (default: with batching, the usable CPUs less one, at least 1, so that "
        "the web server's own work has a core; without, torch's own choice, at most the usable CPUs)",
        minimum=1,
        deprecated_names=("threads",),
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = option("how much the server logs to stderr", "INFO")

    def login(self) -> tuple[str, str] | None:
        """`--auth` as (user, password), or None without a login."""
        if self.auth is None:
            return None
        user, _, password = self.auth.partition(":")
        return user, password

    def search_settings(self) -> dict[str, float | None]:
        """The search settings given, for every served model's generation config (`None`: a length cap
        term given as none, switched off)."""
        return {key: generate_value(getattr(self, key)) for key in SEARCH_KEYS if getattr(self, key) is not None}


def build_parser() -> argparse.ArgumentParser:
    """The command line, from the fields of `ChatbotSettings`."""
    parser = OptionParser(
        prog="python -m chatbot",
        description=(
            "Chat with and translate through recurrent encoder-decoder models in a browser, with the attention "
            "heatmap of every reply. The same server answers programs through gradio_client (endpoints /chat "
            "and /translate)."
        ),
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    names = [item.name for item in dataclasses.fields(ChatbotSettings) if item.name not in SEARCH_KEYS]
    add_options(parser, ChatbotSettings, names)
    decoding = parser.add_argument_group("decoding (what is not given comes from each model's generation config)")
    add_options(decoding, ChatbotSettings, SEARCH_KEYS)
    return parser


def parse_arguments(argv: list[str] | None = None) -> ChatbotSettings:
    """The command line's settings.

    Raises:
        InputError: a flag or value the server cannot use; one line naming it.
    """
    parser = build_parser()
    settings = from_namespace(ChatbotSettings, parser.parse_args(argv))
    if settings.auth is not None and not all(settings.login()):
        parser.error("--auth takes USER:PASSWORD, both non-empty")
    if settings.ensemble is not None and len(settings.ensemble) < 2:
        parser.error("--ensemble needs two models or more (give the flag once per model)")
    if settings.variants and (settings.model or settings.ensemble):
        parser.error("--variants serves its own models; leave out --model and --ensemble")
    return settings


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
    """Serve the page until interrupted: 0, or 2 with one line on stderr for a bad command line or when
    nothing can be served."""
    try:
        settings = parse_arguments(argv)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    arenas_note = limit_malloc_arenas()
    if arenas_note:
        logger.info(arenas_note)
    # No usage reports from a local server unless the user asks for them in the environment.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # Gradio's queue summarizes its last GRADIO_ANALYTICS_MAX_EVENTS events (10,000) with pandas after
    # every event, for a monitoring page this server does not open: a cost per request that grows with
    # the requests served. Summarized every 500 events over the last 2,000 instead.
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "500")
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "2000")

    import torch

    from seq2seq_tools.machine import choose_threads, usable_cpus

    from .demo_models import DemoModelError

    if settings.num_threads is None and settings.batching != "none":
        threads, threads_note = serving_threads(usable_cpus()), None
    else:  # a count asked for, or torch's own choice for requests decoded each on its own
        threads, threads_note = choose_threads(settings.num_threads)
    torch.set_num_threads(threads)
    if threads_note:
        logger.warning(threads_note)
    try:
        sources, pending, demos = _sources(settings)
        models = _load_models(settings, sources)
    except (DemoModelError, _ServeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _serve(settings, models, pending, demos)
    return 0


# Page sessions kept in memory: a classroom's tabs, not every API call ever made.
SESSIONS_KEPT = 1000


def serving_threads(usable: int) -> int:
    """torch threads for the batch's decoding thread: all usable CPUs but one, which is left to the web
    server. Its events, replies and heatmaps cost a page request more CPU than decoding it, and a
    torch thread that must wait for a core stalls every step (benchmarks/README.md, "Serving")."""
    return max(1, usable - 1)


class _ServeError(Exception):
    """A model that cannot be served; the message says which and why."""


def _sources(settings: ChatbotSettings) -> tuple[list[str], list[str], dict]:
    """The model folders to load now, the demo models to train in the background (cheapest first),
    and the demos served."""
    from .demo_models import DEMO_MODELS, VARIANT_DEMOS, demo_home, missing_demo_models

    demos = VARIANT_DEMOS if settings.variants else DEMO_MODELS
    if settings.model or settings.ensemble:
        return list(settings.model or []), [], demos
    home = demo_home()
    # It reads each missing model's config, so a model that could not be trained fails here
    # (DemoModelError) rather than on the page.
    pending = missing_demo_models(home, demos)
    return [str(home / name) for name in demos if name not in pending], pending, demos


def _configured(settings: ChatbotSettings, loaded):
    """`loaded` with the search settings given on the command line in its generation config."""
    for key, value in settings.search_settings().items():
        setattr(loaded.model.generation_config, key, value)
    if settings.shortlist not in (None, "none"):
        try:  # now rather than at the first message: a missing or foreign shortlist is the command's error
            loaded.model.load_shortlist(loaded.tokenizer)
        except ValueError as error:
            raise _ServeError(f"--shortlist {settings.shortlist}: {error}") from error
    return loaded


def _load_models(settings: ChatbotSettings, sources: list[str]) -> list:
    """Each model of `sources`, and the ensemble of `--ensemble`, loaded and configured."""
    from seq2seq_tools.loading import IncompatibleModelError, UntrustedModelError

    from .inference import load_served_ensemble, load_served_model

    loads = [(source, functools.partial(load_served_model, source)) for source in sources]
    if settings.ensemble:
        loads.append((" + ".join(settings.ensemble), functools.partial(load_served_ensemble, settings.ensemble)))
    models = []
    for source, load in loads:
        logger.info("loading %s", source)
        try:
            loaded = load(
                max_input_tokens=settings.max_input_tokens,
                quantize=settings.quantize,
                trust_remote_code=settings.trust_remote_code,
            )
        except (UntrustedModelError, IncompatibleModelError) as error:
            raise _ServeError(str(error)) from error
        except Exception as error:
            raise _ServeError(f"could not load the model {source!r}: {type(error).__name__}: {error}") from error
        models.append(_configured(settings, loaded))
    return models


def _serve(settings: ChatbotSettings, models: list, pending: list[str], demos: dict) -> None:
    """Build the page, train the `pending` demo models in the background, and serve until interrupted."""
    from .api import api_routes
    from .app import build_app, model_names
    from .background import ModelRegistry, train_in_background
    from .demo_models import VARIANT_COMPARED, VARIANT_DEMOS, VARIANT_EXAMPLES, demo_home, train_demo_model
    from .inference import load_served_model
    from .page_text import PAGE_I18N
    from .scheduler import BatchScheduler

    registry = ModelRegistry(model_names(models), pending=pending)
    if pending:
        load = functools.partial(
            load_served_model,
            max_input_tokens=settings.max_input_tokens,
            quantize=settings.quantize,
            trust_remote_code=False,
        )
        train = functools.partial(train_demo_model, home=demo_home(), demos=demos)
        train_in_background(registry, train, lambda path: _configured(settings, load(path)))
        logger.warning("Serving the page now; training %s in the background", ", ".join(pending))
    scheduler = None
    if settings.batching != "none":
        scheduler = BatchScheduler(
            settings.batching,
            max_rows=settings.max_batch_rows,
            wait_ms=settings.batch_wait_ms,
            max_waiting=settings.max_queue_size,
        )
    if settings.variants:  # the names in the order of VARIANT_DEMOS, whichever were trained before
        registry.names.sort(key=list(VARIANT_DEMOS).index)
        app = build_app(
            registry,
            title="Seq2seq RNN variants: the same dates, with and without attention",
            compare=VARIANT_COMPARED,
            compare_examples=VARIANT_EXAMPLES,
            start_tab="compare",
            scheduler=scheduler,
            stream_interval_s=settings.stream_interval_ms / 1000,
        )
    else:
        app = build_app(registry, scheduler=scheduler, stream_interval_s=settings.stream_interval_ms / 1000)
    concurrency = settings.concurrency_limit or (2 if scheduler is None else settings.max_queue_size)
    app.queue(max_size=settings.max_queue_size, default_concurrency_limit=concurrency)
    app.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=settings.share,
        auth=settings.login(),
        show_error=False,
        i18n=PAGE_I18N,
        max_threads=concurrency + 8,  # a request in progress holds a thread while it waits for its reply
        # Each page session keeps a copy of the page's configuration (about 100 kB); a call without a
        # session (an API client's) opens a new one. The oldest past this many are dropped.
        state_session_capacity=SESSIONS_KEPT,
        app_kwargs={"routes": api_routes(registry, scheduler, settings.login())},
    )


if __name__ == "__main__":
    sys.exit(main())

"""The Gradio page: a chat tab and a translate tab over one or several loaded models.

The inference itself lives in `chatbot.inference`; this module only turns it into a page and an
API. Three public endpoints, the first two streaming where the decoding allows:

- `/chat` (message, history, model, mode, num_beams, temperature, top_p, max_new_tokens) ->
  (history, cleared textbox, heatmap plot, notice, attention data, attention files);
- `/translate` (text, model, mode, ...) -> (translation, heatmap plot, notice, attention data,
  attention files);
- `/compare` (text, models, mode, ...) -> (outputs side by side, heatmaps, one line per model,
  notice, comparison data): two to four models decode one input with the same settings
  (`chatbot.compare`); not streamed.

The heatmap plot is a Plotly figure (`{"type": "plotly", "plot": JSON}` to API clients) that the
browser draws with values on hover; the attention files are `attention.json` and `attention.csv`.

`python -m chatbot --help` launches it; `build_app` is what tests and other programs call.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import gradio as gr
from gradio.components.plot import PlotData

from seq2seq_tools.tasks import UNKNOWN_TASK

from .attention_view import AttentionDownloads, PlotlyFigure, attention_plot, comparison_plot
from .background import FAILED, READY, ModelRegistry, Training
from .compare import MAX_COMPARED, Comparison, check_choice, compare_replies
from .inference import (
    DECODING_MODES,
    EMPTY_INPUT_NOTICE,  # noqa: F401  (re-exported: the tests and API clients compare against it)
    MAX_BEAMS,
    MAX_NEW_TOKENS,
    DecodingSettings,
    EmptyInputError,
    LoadedModel,
    Reply,
    stream_reply,
)
from .page_text import PAGE_I18N
from .scheduler import BatchScheduler, QueueFullError

logger = logging.getLogger(__name__)

NO_ATTENTION_NOTICE = "This model has no attention (`attention_type='none'`), so there is no heatmap to show."
BEAM_NOTICE = "Beam search finds the best reply only at the end, so it is shown whole rather than streamed."
# The task each tab serves (`seq2seq_tools.tasks`); a model saved without a task fits both.
TAB_TASKS = {"chat": "qa", "translate": "translation"}
# The page's decoding controls, each a field of `DecodingSettings`, in the order of `_model_panel`.
DECODING_CONTROLS = ("mode", "num_beams", "temperature", "top_p", "max_new_tokens")
# What `Handlers.on_model_change` shows of a model: its description, the decoding controls, and each
# tab's examples with their note (two outputs per tab).
MODEL_OUTPUTS = 1 + len(DECODING_CONTROLS) + 2 * len(TAB_TASKS)
NO_MODEL_FOR_TAB = "No served model was trained for {task}, so this tab has no prompts to offer."
OTHER_TASK = "**{name}** was trained for {other}, not {task}: choose a {task} model above for its prompts."
NO_EXAMPLES = "**{name}** saved no example prompts."
COMPARE_NO_HEATMAP = "no heatmap: this model has no attention"
# A reply that grows is shown at most this often (on a busy server the first time half of it after the
# request): each update is an event with every output of the reply, and a page that sends one per
# token spends more on events than on decoding. A reply finished sooner is sent once, whole.
STREAM_INTERVAL_S = 0.1
NOT_READY = "**{name}** is not ready: {state}. Choose another model, or wait: it joins when its training ends."
NOT_TRAINED = "**{name}** is not served: {state}. Choose another model."
STILL_TRAINING = "**{name}** is still training: its prompts show here when it is ready."
NOT_TRAINED_EXAMPLES = "**{name}** could not be trained, so it has no prompts to offer."


def model_names(models: Sequence[LoadedModel]) -> dict[str, LoadedModel]:
    """The models keyed by the name the page shows; repeated names get a number."""
    named: dict[str, LoadedModel] = {}
    for loaded in models:
        name = loaded.info.name
        number = 2
        while name in named:
            name = f"{loaded.info.name} ({number})"
            number += 1
        named[name] = loaded
    return named


def describe(name: str, loaded: LoadedModel) -> str:
    info = loaded.info
    attention = "with attention" if info.has_attention else "without attention (no heatmap)"
    return (
        f"**{name}** — task: {info.task}; trained on: {info.trained_on}; {attention}; "
        f"reads at most {loaded.max_input_tokens} input tokens."
    )


def fits(loaded: LoadedModel, task: str) -> bool:
    """Whether a tab serving `task` offers this model."""
    return loaded.info.task in (task, UNKNOWN_TASK)


def tab_examples(
    models: dict[str, LoadedModel], name: str, task: str, failed: bool = False
) -> tuple[list[list[str]], str]:
    """The example prompts a tab serving `task` shows while model `name` is selected (its own,
    saved at training), or none and a line that says why (also while `name` is still training, or
    when its training `failed`)."""
    loaded = models.get(name)
    if loaded is None:
        return [], (NOT_TRAINED_EXAMPLES if failed else STILL_TRAINING).format(name=name)
    if not any(fits(other, task) for other in models.values()):
        return [], NO_MODEL_FOR_TAB.format(task=task)
    if not fits(loaded, task):
        return [], OTHER_TASK.format(name=name, other=loaded.info.task, task=task)
    if not loaded.info.examples:
        return [], NO_EXAMPLES.format(name=name)
    return [[text] for text in loaded.info.examples[:8]], ""


def settled_names(status: dict[str, Training]) -> list[str]:
    """The models of a `ModelRegistry.status()` that are ready or failed: their training is over."""
    return [name for name, training in status.items() if training.state in (READY, FAILED)]


def _settings(mode: str, num_beams: float, temperature: float, top_p: float, max_new_tokens: float) -> DecodingSettings:
    try:
        return DecodingSettings(
            mode=mode, num_beams=num_beams, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens
        )
    except ValueError as error:
        raise gr.Error(f"Invalid decoding setting: {error}") from error


def _notice(loaded: LoadedModel, settings: DecodingSettings, reply: Reply | None) -> str:
    lines = []
    if reply is not None and reply.notice:
        lines.append(f"⚠️ {reply.notice}")
    if not settings.streams:
        lines.append(BEAM_NOTICE)
    if not loaded.info.has_attention:
        lines.append(NO_ATTENTION_NOTICE)
    return "\n\n".join(lines)


class Handlers:
    """The page's event handlers over the served models (keyed by the names the page shows), some of
    which may still be training (`chatbot.background.ModelRegistry`)."""

    def __init__(
        self,
        registry: ModelRegistry,
        scheduler: BatchScheduler | None = None,
        stream_interval_s: float = STREAM_INTERVAL_S,
    ):
        self.registry = registry
        self.scheduler = scheduler
        self.stream_interval_s = stream_interval_s
        self.downloads = AttentionDownloads()

    @property
    def models(self) -> dict[str, LoadedModel]:
        """The models ready now."""
        return self.registry.models

    def not_ready(self, name: str) -> str | None:
        """What to tell the user about a model that is still training or failed, else None."""
        training = self.registry.status().get(name)
        if training is None or name in self.models:
            return None
        return (NOT_TRAINED if training.state == FAILED else NOT_READY).format(name=name, state=training.describe())

    def first_for(self, task: str) -> str:
        """The first ready model a tab serving `task` offers, else the first model ready, else the first."""
        models = self.models
        fitting = (name for name, loaded in models.items() if fits(loaded, task))
        return next(fitting, next(iter(models), self.registry.names[0]))

    def choices(self) -> list[tuple[str, str]]:
        """The selectors' choices: every model, labelled with its training state while not ready."""
        return [(self.registry.label(name), name) for name in self.registry.names]

    def tab_examples(
        self, name: str, task: str, models: dict[str, LoadedModel] | None = None
    ) -> tuple[list[list[str]], str]:
        """`tab_examples` of the models ready (`models`, else those ready now), knowing whether `name` failed."""
        failed = self.registry.status().get(name, Training(READY)).state == FAILED
        return tab_examples(self.models if models is None else models, name, task, failed)

    def on_status_tick(self, selected: str, seen: list[str]) -> tuple[Any, ...]:
        """Every few seconds while models train: the status line, both selectors' choices, what
        `on_model_change` shows of the `selected` model, the models now ready or failed (to pass back
        as `seen`), and the timer.

        While the selected model trains, its description follows its progress; on the first tick that
        sees it ready or failed (not in `seen`), its description, decoding defaults and examples are
        shown as on selecting it. The timer stops on the tick that sees every model settled, after
        that tick's refresh.
        """
        status = self.registry.status()  # read before the models: a model ready here is among them
        settled = settled_names(status)
        skipped = (gr.skip(),) * (MODEL_OUTPUTS - 1)  # all but the description
        if selected in settled and selected not in seen:
            shown = self.on_model_change(selected)
        elif selected in status and selected not in settled:
            shown = (self.not_ready(selected) or gr.skip(), *skipped)
        else:
            shown = (gr.skip(), *skipped)
        choices = self.choices()
        return (
            self.registry.status_text(),
            gr.Dropdown(choices=choices),
            gr.Dropdown(choices=choices),
            *shown,
            settled,
            gr.Timer(active=len(settled) < len(status)),
        )

    def on_model_change(self, name: str) -> tuple[Any, ...]:
        """The description, the decoding defaults and each tab's examples of the selected model; for a
        model not ready, a line that says why, the decoding controls as they are, and no examples."""
        models = self.models
        examples = []
        for task in TAB_TASKS.values():
            samples, note = self.tab_examples(name, task, models)
            examples += [gr.Dataset(samples=samples, visible=bool(samples)), note]
        loaded = models.get(name)
        if loaded is None:
            return (self.not_ready(name) or gr.skip(), *(gr.skip(),) * len(DECODING_CONTROLS), *examples)
        decoding = (getattr(loaded.defaults, control) for control in DECODING_CONTROLS)
        return (describe(name, loaded), *decoding, *examples)

    def on_tab_select(self, current: str, task: str) -> Any:
        """Opening a tab picks a model made for it, when there is one and the current one is not."""
        loaded = self.models.get(current)
        return gr.skip() if loaded is None or fits(loaded, task) else self.first_for(task)

    def answer(
        self, text: str, model_name: str, settings: DecodingSettings
    ) -> Iterator[tuple[str | None, Any, str, dict | None, list[str] | None]]:
        """(reply, plot, notice, attention data, attention files) as the reply grows (plot, data and
        files only on the finished reply); a reply of None and a warning for an empty input."""
        loaded = self.models.get(model_name)
        if loaded is None and self.not_ready(model_name):
            gr.Warning(self.not_ready(model_name))
            yield None, gr.skip(), self.not_ready(model_name), gr.skip(), gr.skip()
            return
        if loaded is None:
            raise gr.Error(f"Unknown model {model_name!r}; choose one of: {', '.join(self.models)}")
        try:
            yield from self._stream(loaded, model_name, text, settings)
        except EmptyInputError as error:
            gr.Warning(str(error))
            yield None, gr.skip(), str(error), gr.skip(), gr.skip()
        except QueueFullError as error:
            raise gr.Error(str(error)) from error
        except Exception as error:  # one failing request must not take the page or the server down
            logger.exception("generation failed for model %s", model_name)
            raise gr.Error(
                f"The model failed on this request ({type(error).__name__}: {error}). Please try again."
            ) from error

    def _stream(
        self, loaded: LoadedModel, model_name: str, text: str, settings: DecodingSettings
    ) -> Iterator[tuple[str | None, Any, str, dict | None, list[str] | None]]:
        """`answer`'s updates: the text so far at once on an idle server and half a `stream_interval_s`
        after the request on a busy one, then at most one every `stream_interval_s` (each update is an
        event that carries every output), and the finished reply with its heatmap, data and files. The updates while the reply grows clear the
        previous reply's heatmap with None: `gr.skip()` would cost Gradio a new component per update."""
        every = self.stream_interval_s
        # An idle server shows the first text at once: only under load do events cost replies.
        busy = self.scheduler is not None and self.scheduler.live_rows() > 0
        first_after = every / 2 if busy else 0.0
        replies = stream_reply(loaded, text, settings, scheduler=self.scheduler, first_after=first_after, every=every)
        for reply in replies:
            notice = _notice(loaded, settings, reply)
            if not reply.done or reply.attention is None:
                yield reply.text, None, notice, None, None
            else:
                figure = _plot(attention_plot(reply.attention, title=f"{model_name}: attention of the last reply"))
                yield reply.text, figure, notice, reply.attention.to_dict(), self.downloads.write(reply.attention)

    def compare(
        self,
        text: str,
        names: list[str] | None,
        mode: str,
        num_beams: float,
        temperature: float,
        top_p: float,
        max_new_tokens: float,
    ) -> tuple[str, Any, str, str, dict | None]:
        """(outputs side by side, heatmaps, one line per model, notice, data) of the chosen models
        on `text`; too few models or an empty input give only the notice (and a warning)."""
        settings = _settings(mode, num_beams, temperature, top_p, max_new_tokens)
        names = list(names or [])
        problem = check_choice(names)
        if problem:
            gr.Warning(problem)
            return "", None, "", problem, None
        waiting = [self.not_ready(name) for name in names if self.not_ready(name)]
        if waiting:
            gr.Warning(waiting[0])
            return "", None, "", "\n\n".join(waiting), None
        unknown = [name for name in names if name not in self.models]
        if unknown:
            raise gr.Error(f"Unknown model {unknown[0]!r}; choose from: {', '.join(self.models)}")
        try:
            comparison = compare_replies(self.models, names, text, settings, self.scheduler)
        except EmptyInputError as error:
            gr.Warning(str(error))
            return "", None, "", str(error), None
        except QueueFullError as error:
            raise gr.Error(str(error)) from error
        except Exception as error:  # one failing request must not take the page or the server down
            logger.exception("comparison failed for models %s", names)
            raise gr.Error(
                f"A model failed on this request ({type(error).__name__}: {error}). Please try again."
            ) from error
        maps = [(c.name, c.reply.attention) for c in comparison.replies if c.reply.attention is not None]
        figure = comparison_plot(maps) if maps else None
        return (
            comparison_table(comparison),
            figure,
            comparison_lines(comparison),
            comparison_notice(comparison, settings),
            comparison.to_dict(),
        )

    def chat(
        self,
        message: str,
        history: list[dict[str, Any]] | None,
        model_name: str,
        mode: str,
        num_beams: float,
        temperature: float,
        top_p: float,
        max_new_tokens: float,
    ):
        """Answer the message; the reply streams into the chat history."""
        history = list(history or [])
        settings = _settings(mode, num_beams, temperature, top_p, max_new_tokens)
        for reply, figure, notice, data, files in self.answer(message, model_name, settings):
            if reply is None:  # empty input: history and textbox as they were
                yield history, message or "", figure, notice, data, files
                return
            turn = [{"role": "user", "content": message.strip()}, {"role": "assistant", "content": reply}]
            yield [*history, *turn], "", figure, notice, data, files

    def translate(
        self,
        text: str,
        model_name: str,
        mode: str,
        num_beams: float,
        temperature: float,
        top_p: float,
        max_new_tokens: float,
    ):
        """Translate the text; the translation streams where the decoding allows."""
        settings = _settings(mode, num_beams, temperature, top_p, max_new_tokens)
        for reply, figure, notice, data, files in self.answer(text, model_name, settings):
            yield reply or "", figure, notice, data, files


def _plot(figure: PlotlyFigure) -> PlotData:
    """`figure` as `gr.Plot` sends a Plotly figure to the browser."""
    return PlotData(type="plotly", plot=figure.to_json())


def _cell(text: str) -> str:
    """A model's output as a Markdown table cell: HTML and the column bar escaped, one line."""
    return html.escape(" ".join(text.split()) or "(empty)", quote=False).replace("|", "\\|")


def comparison_table(comparison: Comparison) -> str:
    """The outputs side by side: a Markdown table with one column per model."""
    replies = comparison.replies
    header = "| | " + " | ".join(f"**{_cell(compared.name)}**" for compared in replies) + " |"
    rule = "|---|" + "---|" * len(replies)
    outputs = "| output | " + " | ".join(_cell(compared.reply.text) for compared in replies) + " |"
    scores = "| score (log-prob per token) | " + " | ".join(
        "—" if compared.reply.score is None else f"{compared.reply.score:.3f}" for compared in replies
    )
    heatmaps = "| heatmap | " + " | ".join(
        "below" if compared.has_attention else COMPARE_NO_HEATMAP for compared in replies
    )
    return "\n".join([header, rule, outputs, scores + " |", heatmaps + " |"])


def comparison_lines(comparison: Comparison) -> str:
    """One line per model: its output's length and its alignment's agreement with the first model's."""
    reference = comparison.reference
    lines = []
    for position, compared in enumerate(comparison.replies):
        line = f"**{compared.name}**: {compared.length} output tokens; "
        if not compared.has_attention:
            line += "no attention, so no heatmap and no alignment to compare."
        elif position == 0:
            line += "the reference that the others' alignments are compared with."
        elif compared.agreement is None and not reference.has_attention:
            line += f"no alignment to compare with: {reference.name} has no attention."
        elif compared.agreement is None:
            line += f"reads the input as other tokens than {reference.name}: alignments not comparable."
        else:
            line += f"its alignment agrees with {reference.name}'s on {compared.agreement.describe()}."
        lines.append("- " + line)
    return "\n".join(lines)


def comparison_notice(comparison: Comparison, settings: DecodingSettings) -> str:
    lines = list(comparison.notices)
    maps = [compared for compared in comparison.replies if compared.has_attention]
    if len(maps) > 1 and not comparison.shared_source:
        lines.append("The models read the input as different tokens, so each heatmap has its own source axis.")
    if settings.mode == "sample":
        lines.append("Sampling draws each output at random: the same input may give other outputs next time.")
    return "\n\n".join(lines)


def _model_panel(handlers: Handlers, start: str) -> tuple[gr.Dropdown, gr.Markdown, list[Any]]:
    """The model selector, its description and the decoding controls (set to its defaults)."""
    text = PAGE_I18N
    loaded = handlers.models.get(start)
    defaults = loaded.defaults if loaded is not None else DecodingSettings()
    model = gr.Dropdown(handlers.choices(), value=start, label=text("Model"), interactive=True, elem_id="model")
    model_info = gr.Markdown(describe(start, loaded) if loaded is not None else handlers.not_ready(start))
    with gr.Accordion(text("Decoding"), open=True):
        mode = gr.Radio(
            list(DECODING_MODES),
            value=defaults.mode,
            label=text("Mode"),
            info=text("greedy and sample stream token by token; beam shows the finished reply"),
        )
        num_beams = gr.Slider(1, MAX_BEAMS, value=defaults.num_beams, step=1, label=text("Beam size (beam)"))
        temperature = gr.Slider(0.05, 2.0, value=defaults.temperature, step=0.05, label=text("Temperature (sample)"))
        top_p = gr.Slider(0.05, 1.0, value=defaults.top_p, step=0.05, label=text("Top-p (sample)"))
        max_new_tokens = gr.Slider(
            1, MAX_NEW_TOKENS, value=defaults.max_new_tokens, step=1, label=text("Max new tokens")
        )
    return model, model_info, [mode, num_beams, temperature, top_p, max_new_tokens]


def _examples(textbox: gr.Textbox, samples: list[list[str]], note: str, label: str) -> tuple[gr.Dataset, gr.Markdown]:
    """A tab's example prompts (a click puts one in `textbox`) and the line shown when there are none."""
    examples = gr.Dataset(
        components=[textbox], samples=samples, label=PAGE_I18N(label), visible=bool(samples), type="values"
    )
    examples.click(lambda sample: sample[0], inputs=examples, outputs=textbox, api_visibility="private", queue=False)
    return examples, gr.Markdown(note)


def _chat_tab(examples: tuple[list[list[str]], str]) -> dict[str, Any]:
    """The Chat tab: the conversation, the message box, its buttons and its examples."""
    text = PAGE_I18N
    with gr.Tab(text("Chat"), id="chat") as tab:
        chatbot = gr.Chatbot(label=text("Conversation"), height=360)
        with gr.Row():
            message = gr.Textbox(
                label=text("Message"), placeholder=text("Type a message and press Enter"), scale=5, autofocus=True
            )
            send = gr.Button(text("Send"), variant="primary", scale=1)
        gr.ClearButton([chatbot, message], value=text("Clear conversation"))
        dataset, note = _examples(message, *examples, label="Example prompts")
    return {"tab": tab, "chatbot": chatbot, "message": message, "send": send, "examples": [dataset, note]}


def _translate_tab(examples: tuple[list[list[str]], str]) -> dict[str, Any]:
    """The Translate tab: the source box, its button, the translation and its examples."""
    text = PAGE_I18N
    with gr.Tab(text("Translate"), id="translate") as tab:
        source = gr.Textbox(label=text("Text to translate"), placeholder=text("Type a sentence and press Enter"))
        button = gr.Button(text("Translate"), variant="primary")
        translation = gr.Textbox(label=text("Translation"), interactive=False)
        dataset, note = _examples(source, *examples, label="Example sentences")
    return {"tab": tab, "source": source, "button": button, "translation": translation, "examples": [dataset, note]}


def _compare_tab(names: list[tuple[str, str]], chosen: list[str], examples: list[list[str]]) -> dict[str, Any]:
    """The Compare tab: the models to compare, the input, the outputs side by side, their heatmaps on
    one colour scale, one line per model, and the comparison's data."""
    text = PAGE_I18N
    with gr.Tab(text("Compare"), id="compare") as tab:
        gr.Markdown(
            text(
                "Decode one input with two to four models, all with the decoding settings on the left, and compare their outputs and attention."
            )
        )
        models = gr.Dropdown(
            names,
            value=chosen,
            multiselect=True,
            max_choices=MAX_COMPARED,
            label=text("Models to compare"),
            elem_id="compare-models",
        )
        source = gr.Textbox(
            label=text("Input"), placeholder=text("Type a sentence and press Enter"), elem_id="compare-input"
        )
        button = gr.Button(text("Compare"), variant="primary")
        dataset, _ = _examples(source, examples, "", label="Example inputs")
        outputs = gr.Markdown(elem_id="compare-outputs")
        heatmaps = gr.Plot(label=text("Attention heatmaps (one colour scale)"), elem_id="compare-heatmaps")
        lines = gr.Markdown(elem_id="compare-lines")
        notice = gr.Markdown(elem_id="compare-notice")
        with gr.Accordion(text("Comparison data (JSON)"), open=False):
            data = gr.JSON(label=text("Comparison data"))
    return {
        "tab": tab,
        "models": models,
        "source": source,
        "button": button,
        "examples": dataset,
        "results": [outputs, heatmaps, lines, notice, data],
    }


def _attention_panel(visible: bool = True) -> dict[str, Any]:
    """The notice line, the heatmap, the attention downloads and the attention data of the Chat and
    Translate tabs, in one column (`panel`) shown when `visible`."""
    text = PAGE_I18N
    with gr.Column(visible=visible, elem_id="attention-panel") as panel:
        notice = gr.Markdown(label=text("Notice"))
        gr.Markdown(
            text(
                "The heatmap shows the last reply: source tokens across, output tokens down. Hover a cell to read its weight."
            )
        )
        heatmap = gr.Plot(label=text("Attention heatmap"), elem_id="heatmap")
        downloads = gr.File(
            label=text("Download the attention (JSON, CSV)"),
            file_count="multiple",
            interactive=False,
            elem_id="attention-downloads",
        )
        with gr.Accordion(text("Attention data (JSON)"), open=False):
            attention_data = gr.JSON(label=text("Attention data"))
    return {
        "panel": panel,
        "notice": notice,
        "heatmap": heatmap,
        "downloads": downloads,
        "attention_data": attention_data,
    }


def _wire(
    handlers: Handlers, model: gr.Dropdown, model_info: gr.Markdown, decoding: list[Any], chat, translate, compare, out
):
    """The events: model changes, tab selection, and the `/chat`, `/translate` and `/compare` endpoints."""
    model.change(
        handlers.on_model_change,
        inputs=model,
        outputs=[model_info, *decoding, *chat["examples"], *translate["examples"]],
        api_visibility="private",
        queue=False,
    )
    for tab, task in ((chat["tab"], TAB_TASKS["chat"]), (translate["tab"], TAB_TASKS["translate"])):
        tab.select(
            lambda current, task=task: handlers.on_tab_select(current, task),
            inputs=model,
            outputs=model,
            api_visibility="private",
            queue=False,
        )
    attention = [out["heatmap"], out["notice"], out["attention_data"], out["downloads"]]
    gr.on(
        [chat["message"].submit, chat["send"].click],
        handlers.chat,
        inputs=[chat["message"], chat["chatbot"], model, *decoding],
        outputs=[chat["chatbot"], chat["message"], *attention],
        api_name="chat",
    )
    gr.on(
        [translate["source"].submit, translate["button"].click],
        handlers.translate,
        inputs=[translate["source"], model, *decoding],
        outputs=[translate["translation"], *attention],
        api_name="translate",
    )
    gr.on(
        [compare["source"].submit, compare["button"].click],
        handlers.compare,
        inputs=[compare["source"], compare["models"], *decoding],
        outputs=compare["results"],
        api_name="compare",
    )


def build_app(
    models: Sequence[LoadedModel] | ModelRegistry,
    title: str = "Seq2seq RNN chatbot",
    *,
    compare: Sequence[str] | None = None,
    compare_examples: Sequence[str] = (),
    start_tab: str = "chat",
    scheduler: BatchScheduler | None = None,
    stream_interval_s: float = STREAM_INTERVAL_S,
) -> gr.Blocks:
    """The Blocks app over `models` (at least one); call `.queue(...)` and `.launch(i18n=PAGE_I18N, ...)`
    on it (without `i18n` the page shows translation keys instead of labels).

    `models` may be a `ModelRegistry` whose models are still training (`chatbot.background`): the
    page then lists them all at once, says which are still training (with their progress) or
    failed, and serves each as soon as it is ready.

    `compare` names the models the Compare tab starts with (default: `same_input_models`, up to
    four), `compare_examples` its example inputs (default: the first of those models' own),
    `start_tab` the tab the page opens on (`"chat"`, `"translate"` or `"compare"`; without `compare`,
    the page opens on Chat instead of a Compare tab that starts with fewer than two models), and
    `scheduler` the `chatbot.scheduler.BatchScheduler` that decodes concurrent requests together
    (None: each alone), and `stream_interval_s` how often a growing reply is shown at most (0: after
    every token).

    Why Blocks and not `gr.ChatInterface`: the `/chat` endpoint returns the heatmap as a Plotly
    figure (`{"type": "plotly", ...}`) to API clients, which a ChatInterface's `additional_outputs`
    cannot: with gradio 6.31 a `gr.Plot` there reaches `gradio_client` as the figure's `repr`
    string. A ChatInterface's API also keeps the history on the server per client, where `/chat`
    takes it as an argument. The chat tab is therefore a `gr.Chatbot` and a textbox.
    """
    registry = models if isinstance(models, ModelRegistry) else ModelRegistry(model_names(models))
    if not registry.names:
        raise ValueError("build_app needs at least one model")
    handlers = Handlers(registry, scheduler, stream_interval_s)
    # Read before the models that the page is built with, as the status timer reads them: a model
    # that becomes ready in between is refreshed on the first tick.
    seen = settled_names(registry.status())
    named = handlers.models
    start = handlers.first_for(TAB_TASKS["chat"])
    compared, start_tab = _compared_names(registry, compare, start_tab)
    first = named.get(compared[0]) if compared else None
    examples = list(compare_examples) or (list(first.info.examples) if first is not None else [])
    # delete_cache: Gradio's copies of the attention files are removed after an hour, checked hourly.
    with gr.Blocks(title=title, delete_cache=(3600, 3600)) as app:
        gr.Markdown(f"# {title}")
        gr.Markdown(
            PAGE_I18N(  # a label the browser shows in its own locale (chatbot/page_text.py)
                "A recurrent encoder–decoder with attention. Pick a model, type a message, and see which source tokens each output token attended to."
            )
        )
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                model, model_info, decoding = _model_panel(handlers, start)
                status = gr.Markdown(registry.status_text(), elem_id="training-status")
            with gr.Column(scale=3):
                with gr.Tabs(selected=start_tab) as tabs:
                    chat = _chat_tab(handlers.tab_examples(start, TAB_TASKS["chat"], named))
                    translate = _translate_tab(handlers.tab_examples(start, TAB_TASKS["translate"], named))
                    compare_tab = _compare_tab(handlers.choices(), compared, [[text] for text in examples[:8]])
                out = _attention_panel(visible=start_tab != "compare")
        _wire(handlers, model, model_info, decoding, chat, translate, compare_tab, out)
        _hide_attention_panel_on_compare(tabs, out["panel"])
        shown = [model_info, *decoding, *chat["examples"], *translate["examples"]]
        _status_timer(handlers, status, model, compare_tab["models"], shown, seen)
    return app


def same_input_models(models: dict[str, LoadedModel], names: Sequence[str]) -> list[str]:
    """The first ready model of `names` and the other ready ones that read the same input: trained
    for the same task, on the same source language (a language not known counts as one more
    language), up to `MAX_COMPARED`, in the order of `names`. Models still training are not known
    yet, so they are left out."""
    ready = [name for name in names if name in models]
    if not ready:
        return []
    first = models[ready[0]].info
    same = [
        name
        for name in ready
        if (models[name].info.task, models[name].info.source_lang) == (first.task, first.source_lang)
    ]
    return same[:MAX_COMPARED]


def _compared_names(registry: ModelRegistry, compare: Sequence[str] | None, start_tab: str) -> tuple[list[str], str]:
    """The models the Compare tab starts with (default: `same_input_models`) and the tab the page
    opens on (`start_tab`, but Chat rather than a default Compare tab with fewer than two models),
    after checking `build_app`'s `compare` and `start_tab`.

    Raises:
        ValueError: a compared model that is not served, or an unknown tab.
    """
    compared = list(compare) if compare is not None else same_input_models(registry.models, registry.names)
    unknown = [name for name in compared if name not in registry.names]
    if unknown:
        raise ValueError(f"compare={unknown!r}: not served; the served models are {registry.names}")
    if start_tab not in (*TAB_TASKS, "compare"):
        raise ValueError(f"start_tab={start_tab!r}; choose one of chat, translate, compare")
    if start_tab == "compare" and compare is None and len(compared) < 2:
        logger.info("the page opens on the Chat tab: fewer than two ready models read the same input to compare")
        start_tab = "chat"
    return compared, start_tab


def _hide_attention_panel_on_compare(tabs: gr.Tabs, panel: gr.Column) -> None:
    """Show the attention panel of the last reply on the Chat and Translate tabs and hide it on the
    Compare tab, which shows its own heatmaps.

    One listener on the tabs, whose last call wins (`always_last`): a listener per tab raced with the
    select event that the browser sends for the opening tab while the page loads, and a click on
    Compare just after it could leave the panel shown.
    """

    def on_select(event: gr.SelectData) -> gr.Column:
        return gr.Column(visible=tabs.children[event.index].id != "compare")

    tabs.select(on_select, outputs=panel, trigger_mode="always_last", api_visibility="private", queue=False)


def _status_timer(
    handlers: Handlers,
    status: gr.Markdown,
    model: gr.Dropdown,
    compared: gr.Dropdown,
    shown: list[Any],
    seen: list[str],
) -> None:
    """While models are still training, refresh every 2 seconds the training status, the model choices
    and what the page shows of the selected model (`shown`: the outputs of `Handlers.on_model_change`),
    until a last refresh once every model is ready or failed (`Handlers.on_status_tick`). `seen`: the
    models ready or failed when the page was built."""
    seen_state = gr.State(seen)
    timer = gr.Timer(2.0, active=len(seen) < len(handlers.registry.names))
    timer.tick(
        handlers.on_status_tick,
        inputs=[model, seen_state],
        outputs=[status, model, compared, *shown, seen_state, timer],
        api_visibility="private",
        queue=False,
    )

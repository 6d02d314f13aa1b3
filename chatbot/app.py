"""The Gradio page: a chat tab and a translate tab over one or several loaded models.

The inference itself lives in `chatbot.inference`; this module only turns it into a page and an
API. Two public endpoints, both streaming where the decoding allows:

- `/chat` (message, history, model, mode, num_beams, temperature, top_p, max_new_tokens) ->
  (history, cleared textbox, heatmap plot, notice, attention data, attention files);
- `/translate` (text, model, mode, ...) -> (translation, heatmap plot, notice, attention data,
  attention files).

The heatmap plot is a Plotly figure (`{"type": "plotly", "plot": JSON}` to API clients) that the
browser draws with values on hover; the attention files are `attention.json` and `attention.csv`.

`python -m chatbot --help` launches it; `build_app` is what tests and other programs call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import gradio as gr

from .attention_view import attention_plot, write_attention_files
from .inference import (
    DECODING_MODES,
    DEFAULT_EXAMPLES,
    MAX_BEAMS,
    MAX_NEW_TOKENS,
    DecodingSettings,
    EmptyInputError,
    LoadedModel,
    Reply,
    stream_reply,
)
from .page_text import PAGE_I18N

logger = logging.getLogger(__name__)

EMPTY_INPUT_NOTICE = "Please type a message first: the input is empty."
NO_ATTENTION_NOTICE = "This model has no attention (`attention_type='none'`), so there is no heatmap to show."
BEAM_NOTICE = "Beam search finds the best reply only at the end, so it is shown whole rather than streamed."


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


def _stream(
    models: dict[str, LoadedModel], text: str, model_name: str, settings: DecodingSettings
) -> Iterator[tuple[Reply, Any, dict | None, list[str] | None]]:
    """Replies as they grow, each with its plot, attention data and attention files (all three
    only on the finished reply)."""
    loaded = models.get(model_name)
    if loaded is None:
        raise gr.Error(f"Unknown model {model_name!r}; choose one of: {', '.join(models)}")
    try:
        for reply in stream_reply(loaded, text, settings):
            if not reply.done or reply.attention is None:
                yield reply, None, None, None
                continue
            figure = attention_plot(reply.attention, title=f"{model_name}: attention of the last reply")
            yield reply, figure, reply.attention.to_dict(), write_attention_files(reply.attention)
    except EmptyInputError as error:
        raise gr.Error(str(error)) from error
    except Exception as error:  # one failing request must not take the page or the server down
        logger.exception("generation failed for model %s", model_name)
        raise gr.Error(
            f"The model failed on this request ({type(error).__name__}: {error}). Please try again."
        ) from error


def build_app(models: Sequence[LoadedModel], title: str = "Seq2seq RNN chatbot") -> gr.Blocks:
    """The Blocks app over `models` (at least one); call `.queue(...)` and `.launch(i18n=PAGE_I18N, ...)`
    on it (without `i18n` the page shows translation keys instead of labels)."""
    if not models:
        raise ValueError("build_app needs at least one loaded model")
    named = model_names(models)
    names = list(named)

    def first_for(task: str) -> str:
        return next((name for name, loaded in named.items() if loaded.info.task == task), names[0])

    def examples_for(task: str) -> list[str]:
        found = [text for loaded in named.values() if loaded.info.task == task for text in loaded.info.examples]
        if not found and task == "chat":
            found = [
                text for loaded in named.values() if loaded.info.task == "unknown" for text in loaded.info.examples
            ]
        return list(dict.fromkeys(found))[:8] or DEFAULT_EXAMPLES[task]

    start = first_for("chat")
    defaults = named[start].defaults

    def on_model_change(name: str):
        loaded = named.get(name)
        if loaded is None:
            return (gr.skip(),) * 6
        settings = loaded.defaults
        return (
            describe(name, loaded),
            settings.mode,
            settings.num_beams,
            settings.temperature,
            settings.top_p,
            settings.max_new_tokens,
        )

    def chat(
        message: str,
        history: list[dict[str, Any]] | None,
        model_name: str,
        mode: str,
        num_beams: float,
        temperature: float,
        top_p: float,
        max_new_tokens: float,
    ):
        """Answer the last user message; the reply streams into the chat history."""
        history = list(history or [])
        settings = _settings(mode, num_beams, temperature, top_p, max_new_tokens)
        if not isinstance(message, str) or not message.strip():
            gr.Warning(EMPTY_INPUT_NOTICE)
            yield history, message or "", gr.skip(), EMPTY_INPUT_NOTICE, gr.skip(), gr.skip()
            return
        history = [*history, {"role": "user", "content": message.strip()}, {"role": "assistant", "content": ""}]
        for reply, figure, data, files in _stream(named, message, model_name, settings):
            history[-1] = {"role": "assistant", "content": reply.text}
            yield history, "", figure, _notice(named[model_name], settings, reply), data, files

    def translate(
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
        if not isinstance(text, str) or not text.strip():
            gr.Warning(EMPTY_INPUT_NOTICE)
            yield "", gr.skip(), EMPTY_INPUT_NOTICE, gr.skip(), gr.skip()
            return
        for reply, figure, data, files in _stream(named, text, model_name, settings):
            yield reply.text, figure, _notice(named[model_name], settings, reply), data, files

    text = PAGE_I18N  # text(KEY) is a label the browser shows in its own locale (chatbot/page_text.py)
    # delete_cache: Gradio's copies of the attention files are removed after an hour, checked hourly.
    with gr.Blocks(title=title, delete_cache=(3600, 3600)) as app:
        gr.Markdown(f"# {title}")
        gr.Markdown(
            text(
                "A recurrent encoder–decoder with attention. Pick a model, type a message, and see which source tokens each output token attended to."
            )
        )
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                model = gr.Dropdown(names, value=start, label=text("Model"), interactive=True, elem_id="model")
                model_info = gr.Markdown(describe(start, named[start]))
                with gr.Accordion(text("Decoding"), open=True):
                    mode = gr.Radio(
                        list(DECODING_MODES),
                        value=defaults.mode,
                        label=text("Mode"),
                        info=text("greedy and sample stream token by token; beam shows the finished reply"),
                    )
                    num_beams = gr.Slider(
                        1, MAX_BEAMS, value=defaults.num_beams, step=1, label=text("Beam size (beam)")
                    )
                    temperature = gr.Slider(
                        0.05, 2.0, value=defaults.temperature, step=0.05, label=text("Temperature (sample)")
                    )
                    top_p = gr.Slider(0.05, 1.0, value=defaults.top_p, step=0.05, label=text("Top-p (sample)"))
                    max_new_tokens = gr.Slider(
                        1, MAX_NEW_TOKENS, value=defaults.max_new_tokens, step=1, label=text("Max new tokens")
                    )
            with gr.Column(scale=3):
                with gr.Tabs():
                    with gr.Tab(text("Chat"), id="chat") as chat_tab:
                        chatbot = gr.Chatbot(label=text("Conversation"), height=360)
                        with gr.Row():
                            message = gr.Textbox(
                                label=text("Message"),
                                placeholder=text("Type a message and press Enter"),
                                scale=5,
                                autofocus=True,
                            )
                            send = gr.Button(text("Send"), variant="primary", scale=1)
                        gr.ClearButton([chatbot, message], value=text("Clear conversation"))
                        gr.Examples(
                            [[example] for example in examples_for("chat")],
                            inputs=[message],
                            label=text("Example prompts"),
                        )
                    with gr.Tab(text("Translate"), id="translate") as translate_tab:
                        source = gr.Textbox(
                            label=text("Text to translate"), placeholder=text("Type a sentence and press Enter")
                        )
                        translate_button = gr.Button(text("Translate"), variant="primary")
                        translation = gr.Textbox(label=text("Translation"), interactive=False)
                        gr.Examples(
                            [[example] for example in examples_for("translation")],
                            inputs=[source],
                            label=text("Example sentences"),
                        )
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

        decoding = [mode, num_beams, temperature, top_p, max_new_tokens]
        model.change(
            on_model_change,
            inputs=model,
            outputs=[model_info, *decoding],
            api_visibility="private",
            queue=False,
        )
        # Opening a tab picks a model made for it, when there is one and the current one is not.
        for tab, task in ((chat_tab, "chat"), (translate_tab, "translation")):
            tab.select(
                lambda current, task=task: gr.skip() if named[current].info.task == task else first_for(task),
                inputs=model,
                outputs=model,
                api_visibility="private",
                queue=False,
            )
        gr.on(
            [message.submit, send.click],
            chat,
            inputs=[message, chatbot, model, *decoding],
            outputs=[chatbot, message, heatmap, notice, attention_data, downloads],
            api_name="chat",
        )
        gr.on(
            [source.submit, translate_button.click],
            translate,
            inputs=[source, model, *decoding],
            outputs=[translation, heatmap, notice, attention_data, downloads],
            api_name="translate",
        )
    return app

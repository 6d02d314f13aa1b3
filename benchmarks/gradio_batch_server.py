"""The third way to batch a Gradio chatbot, for `bench_chatbot` to measure beside ours: Gradio's own
`batch=True` event, which hands the requests that wait in its queue together (up to `--max-batch-size`)
to one call as lists.

    python -m benchmarks.gradio_batch_server --model DIR --port 7861 [--threads 2] [--max-batch-size 32]

It serves `/translate` with the page's inputs (text, model, mode, num_beams, temperature, top_p,
max_new_tokens) and outputs (translation, heatmap, notice, attention data, attention files),
greedy, decoded by one `generate_texts` call per batch. A batched event cannot stream: each reply
arrives whole. Not part of the chatbot: a measuring stand-in.
"""

from __future__ import annotations

import argparse
import os

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-queue-size", type=int, default=256)
    args = parser.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    torch.set_num_threads(args.threads)

    import gradio as gr
    from gradio.components.plot import PlotData

    from chatbot.attention_view import AttentionDownloads, attention_plot
    from chatbot.inference import encode_messages, load_served_model
    from seq2seq_tools.generation import generate_encoded

    loaded = load_served_model(args.model)
    downloads = AttentionDownloads()

    def translate(texts, models, modes, beams, temperatures, top_ps, max_new_tokens):
        inputs, notices = encode_messages(loaded, texts)
        results = generate_encoded(
            loaded.model, loaded.tokenizer, inputs, with_attention=True, max_new_tokens=int(max(max_new_tokens))
        )
        figures = [attention_plot(result.attention, title="attention").to_json() for result in results]
        return (
            [result.text for result in results],
            [PlotData(type="plotly", plot=figure) for figure in figures],
            [notice or "" for notice in notices],
            [result.attention.to_dict() for result in results],
            [downloads.write(result.attention) for result in results],
        )

    with gr.Blocks() as app:
        inputs = [gr.Textbox(), gr.Textbox(), gr.Textbox(), gr.Number(), gr.Number(), gr.Number(), gr.Number()]
        outputs = [gr.Textbox(), gr.Plot(), gr.Markdown(), gr.JSON(), gr.File(file_count="multiple")]
        button = gr.Button()
        button.click(translate, inputs, outputs, api_name="translate", batch=True, max_batch_size=args.max_batch_size)
    app.queue(max_size=args.max_queue_size)
    app.launch(server_name="127.0.0.1", server_port=args.port, show_error=False)


if __name__ == "__main__":
    main()

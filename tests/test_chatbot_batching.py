"""Requests decoded together (`chatbot.scheduler`): the same replies as one at a time, streamed, given up.

The scheduler runs in this process here; `tests/test_chatbot_api.py` drives it through a real server.

    pytest tests/test_chatbot_batching.py
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from chatbot.inference import DecodingSettings, encode, generate_reply, load_served_model, stream_reply, submit_reply
from chatbot.scheduler import BatchScheduler, QueueFullError
from seq2seq_tools.generation import generate_encoded

try:  # the trained-model fixtures live beside the inference tests
    from test_chatbot_inference import WORDS, phrase_pair, tiny_model_dir  # noqa: F401
except ModuleNotFoundError:
    from tests.test_chatbot_inference import WORDS, phrase_pair, tiny_model_dir  # noqa: F401

# Settings that must never mix: greedy and beam search, other lengths, a score or none.
SETTINGS = [
    (DecodingSettings(mode="greedy", max_new_tokens=12), False),
    (DecodingSettings(mode="greedy", max_new_tokens=3), False),
    (DecodingSettings(mode="beam", num_beams=3, max_new_tokens=12), False),
    (DecodingSettings(mode="beam", num_beams=2, max_new_tokens=12), True),
    (DecodingSettings(mode="greedy", max_new_tokens=12), True),
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    return load_served_model(tiny_model_dir)


@pytest.fixture(params=["continuous", "micro"])
def scheduler(request):
    scheduler = BatchScheduler(request.param, max_rows=24, wait_ms=2.0)
    yield scheduler
    scheduler.close()


def messages(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [phrase_pair(rng, WORDS)[0] + (" tree" * rng.randint(0, 4)) for _ in range(count)]


def test_concurrent_replies_equal_the_replies_decoded_alone(tiny, scheduler) -> None:
    """40 requests from 8 threads, five kinds of settings mixed, rows joining a batch already running:
    every reply has the tokens, score and attention it gets from generate() alone."""
    jobs = [(text, *SETTINGS[index % len(SETTINGS)]) for index, text in enumerate(messages(40))]
    alone = [generate_reply(tiny, text, settings, with_score=score) for text, settings, score in jobs]

    def batched(job):
        text, settings, score = job
        time.sleep(random.random() / 200)  # arrivals spread over a few steps
        return generate_reply(tiny, text, settings, with_score=score, scheduler=scheduler)

    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(batched, jobs))
    for (text, settings, _), ours, reference in zip(jobs, together, alone, strict=True):
        assert ours.token_ids == reference.token_ids, (text, settings)
        assert ours.text == reference.text
        if reference.score is None:
            assert ours.score is None
        else:
            assert ours.score == pytest.approx(reference.score, abs=1e-5)
        torch.testing.assert_close(ours.attention.weights, reference.attention.weights, atol=1e-5, rtol=0)
        assert ours.attention.source_labels == reference.attention.source_labels


def test_a_streamed_reply_sends_each_token_then_the_whole_reply(tiny) -> None:
    scheduler = BatchScheduler()
    try:
        settings = DecodingSettings(mode="greedy", max_new_tokens=12)
        pending = submit_reply(tiny, scheduler, *encode(tiny, "red cat dog tree"), settings)
        texts = list(pending.texts())
        reply = pending.reply()
        assert reply.text == "tree dog cat red" == texts[-1]
        assert len(texts) >= 3 and all(later.startswith(earlier) for earlier, later in itertools.pairwise(texts))
        streamed = list(stream_reply(tiny, "red cat dog tree", settings, scheduler=scheduler))
        assert [r.done for r in streamed] == [False] * (len(streamed) - 1) + [True]
        assert streamed[-1].token_ids == reply.token_ids and streamed[-1].attention is not None
    finally:
        scheduler.close()


def test_sampled_replies_decode_in_the_batch_too(tiny) -> None:
    scheduler = BatchScheduler()
    try:
        settings = DecodingSettings(mode="sample", temperature=0.5, top_p=0.9, max_new_tokens=12)
        replies = [generate_reply(tiny, text, settings, scheduler=scheduler) for text in messages(4)]
        assert all(reply.token_ids and reply.attention is not None for reply in replies)
        assert [r.done for r in stream_reply(tiny, "red cat", settings, scheduler=scheduler)][-1]
    finally:
        scheduler.close()


def slow_steps(loaded, seconds: float):
    """Make each decoder step of `loaded` take at least `seconds` (a hook on its output layer)."""
    return loaded.model.lm_head.register_forward_hook(lambda *args: time.sleep(seconds))


def test_a_reply_given_up_leaves_the_batch_at_the_next_step(tiny_model_dir: Path) -> None:
    loaded = load_served_model(tiny_model_dir)
    # The model without </s>: every reply would run to its 512 tokens.
    with torch.no_grad():
        loaded.model.lm_head.bias[loaded.tokenizer.eos_token_id] = -1e4
    hook = slow_steps(loaded, 0.005)
    scheduler = BatchScheduler()
    try:
        settings = DecodingSettings(mode="greedy", max_new_tokens=512)
        given_up = submit_reply(loaded, scheduler, *encode(loaded, "red cat"), settings)
        kept = submit_reply(loaded, scheduler, *encode(loaded, "dog tree"), DecodingSettings(max_new_tokens=60))
        tokens = given_up.ticket.tokens(timeout=30)
        [next(tokens) for _ in range(3)]
        given_up.cancel()
        received = 3 + sum(1 for _ in tokens)  # the queue ends when the sentence leaves the batch
        assert received < 30
        assert given_up.ticket.future().cancelled()
        assert len(kept.reply().token_ids) == 60  # the other request decodes on to its end
        deadline = time.monotonic() + 10
        while scheduler.live_rows() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert scheduler.live_rows() == 0
    finally:
        hook.remove()
        scheduler.close()


def test_one_failing_request_does_not_fail_the_others_in_its_batch(tiny) -> None:
    """A request whose settings generate() refuses fails alone; the ones admitted with it decode."""
    scheduler = BatchScheduler("micro", wait_ms=200.0)  # so that all three are admitted together
    try:
        inputs, _ = encode(tiny, "red cat dog")
        good = scheduler.submit(tiny.model, tiny.tokenizer, inputs, {"max_new_tokens": 12, "num_beams": 1})
        bad = scheduler.submit(tiny.model, tiny.tokenizer, inputs, {"max_new_tokens": 12, "num_beams": 1, "top_k": -1})
        also_good = scheduler.submit(tiny.model, tiny.tokenizer, inputs, {"max_new_tokens": 12, "num_beams": 2})
        with pytest.raises(ValueError, match="top_k=-1"):
            bad[0].result(timeout=30)
        assert good[0].result(timeout=30).text == "dog cat red"
        assert also_good[0].result(timeout=30).text == "dog cat red"
    finally:
        scheduler.close()


def test_a_full_queue_says_so(tiny) -> None:
    scheduler = BatchScheduler(max_waiting=2)
    hook = slow_steps(tiny, 0.05)
    try:
        inputs, _ = encode(tiny, "red cat dog")
        first = scheduler.submit(tiny.model, tiny.tokenizer, inputs, {"max_new_tokens": 12})
        deadline = time.monotonic() + 10
        while not scheduler.live_rows() and time.monotonic() < deadline:  # the first is decoding
            time.sleep(0.005)
        scheduler.submit(tiny.model, tiny.tokenizer, inputs, {"max_new_tokens": 12})
        scheduler.submit(tiny.model, tiny.tokenizer, inputs, {"max_new_tokens": 12})
        with pytest.raises(QueueFullError, match="2 requests are waiting"):
            scheduler.submit(tiny.model, tiny.tokenizer, inputs, {"max_new_tokens": 12})
        assert first[0].result(timeout=30).text == "dog cat red"
    finally:
        hook.remove()
        scheduler.close()


def test_requests_of_two_models_decode_side_by_side(tiny_model_dir: Path, tiny) -> None:
    other = load_served_model(tiny_model_dir)  # another model object: a batch of its own
    scheduler = BatchScheduler()
    try:
        inputs, _ = encode(tiny, "sun moon water")
        results = {}

        def run(name, loaded):
            [ticket] = scheduler.submit(loaded.model, loaded.tokenizer, inputs, {"max_new_tokens": 12})
            results[name] = ticket.result(timeout=30)

        threads = [threading.Thread(target=run, args=(name, loaded)) for name, loaded in (("a", tiny), ("b", other))]
        [thread.start() for thread in threads]
        [thread.join() for thread in threads]
        [expected] = generate_encoded(tiny.model, tiny.tokenizer, inputs, max_new_tokens=12)
        assert results["a"].token_ids == results["b"].token_ids == expected.token_ids
    finally:
        scheduler.close()


def test_a_bad_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="choose one of continuous, micro"):
        BatchScheduler("eager")


def test_a_reply_shown_now_and_then_is_read_then_and_not_at_every_token(tiny_model_dir: Path) -> None:
    loaded = load_served_model(tiny_model_dir)
    with torch.no_grad():
        loaded.model.lm_head.bias[loaded.tokenizer.eos_token_id] = -1e4  # 30 tokens, 10 ms each
    hook = slow_steps(loaded, 0.01)
    scheduler = BatchScheduler()
    try:
        settings = DecodingSettings(mode="greedy", max_new_tokens=30)
        started = time.monotonic()
        pending = submit_reply(loaded, scheduler, *encode(loaded, "red cat"), settings)
        shown = [(time.monotonic() - started, text) for text in pending.texts(first_after=0.05, every=0.1)]
        reply = pending.reply()
        assert 2 <= len(shown) <= 4  # about 0.05, 0.15 and 0.25 s into a reply of about 0.3 s
        assert shown[0][0] >= 0.05
        assert all(later - earlier >= 0.09 for (earlier, _), (later, _) in itertools.pairwise(shown))
        assert all(reply.text.startswith(text) for _, text in shown) and len(reply.token_ids) == 30
    finally:
        hook.remove()
        scheduler.close()

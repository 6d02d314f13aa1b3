"""Requests from many users decoded as one batch: continuous batching for the chatbot (no Gradio here).

    scheduler = BatchScheduler()
    [ticket] = scheduler.submit(model, tokenizer, encoded, {"max_new_tokens": 40}, with_attention=True, stream=True)
    for token_id in ticket.tokens(): ...   # greedy and sampling: each new token as it is decoded
    generated = ticket.result()            # a seq2seq_tools.generation.Generated, as generate_texts gives it
    scheduler.close()

One worker thread decodes for every model served. For each model it keeps a `DecodingLoop`
(`hf_seq2seq_rnn.search_seq2seq_rnn`), and between two of its steps it admits what has arrived:
requests for the same model with the same settings go through one `generate()` call together (their
sources encoded as one batch; `custom_generate=prepared_search` returns the search ready to step
instead of running it) and join the running batch. Each step decodes every live row of every request
at once. A sentence leaves the batch the step its output ends, and its result reaches its ticket
then. This is continuous batching, as text-generation-inference and vLLM do it. A reply's rows are
computed as `generate()` computes them alone, so its tokens are the same
(`tests/test_chatbot_batching.py`).

Policies (`POLICIES`):
    continuous   requests join the running batch between any two steps (the default)
    micro        requests wait until the batch is empty (and at least `wait_ms` after the first
                 arrived), then decode together to the end: static batches
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch

from hf_seq2seq_rnn.search_seq2seq_rnn import DecodingLoop, GreedySearch, prepared_search
from seq2seq_tools.generation import Generated, generate_ids, output_settings, results_of

logger = logging.getLogger(__name__)

POLICIES = ("continuous", "micro")
# Rows (sentences times beams) decoded at once per model; later requests wait for rows to free up.
DEFAULT_MAX_ROWS = 64
# Requests waiting to join, across models; past this `submit` raises `QueueFullError`.
DEFAULT_MAX_WAITING = 256


class QueueFullError(RuntimeError):
    """More requests wait than the scheduler takes; the message is meant for the user."""


class Ticket:
    """One sentence's place in the batch: its tokens as they come (when streamed) and its result."""

    def __init__(self, scheduler: BatchScheduler, stream: bool):
        self._scheduler = scheduler
        self._future: Future[Generated] = Future()
        self.streams = stream
        self._streamed: list[int] = []  # the tokens decoded so far (`stream=True` only)
        self._arrived = threading.Condition()  # notified at every token and at the end
        self._ended = threading.Event()  # set at the end: the result, an error or the cancel
        self.cancelled = False

    def tokens(self, timeout: float | None = None) -> Iterator[int]:
        """Each token id of the output as it is decoded (`</s>` included), until the output ends.
        Only for a ticket submitted with `stream=True`; beam search sends none.

        Raises:
            TimeoutError: no token nor the end came within `timeout` seconds.
        """
        seen = 0
        while True:
            streamed, ended = self.streamed(seen, 0.0, timeout)
            yield from streamed[seen:]
            seen = len(streamed)
            if ended:
                return

    def streamed(self, seen: int, until: float, timeout: float | None = None) -> tuple[list[int], bool]:
        """The tokens decoded so far and whether the output ended, once more than `seen` tokens have
        come and the clock (`time.monotonic()`) has reached `until`, or once the output ended: a
        reader that shows the output now and then is woken only then, not at every token.

        Raises:
            TimeoutError: no new token nor the end came within `timeout` seconds after `until`.
        """
        if not self.streams:
            raise ValueError("this ticket was submitted without stream=True")
        remaining = until - time.monotonic()
        if remaining > 0 and self._ended.wait(remaining):
            return list(self._streamed), True
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._streamed) > seen or self._ended.is_set(), timeout):
                raise TimeoutError(f"no token within {timeout} s")
            return list(self._streamed), self._ended.is_set()

    def result(self, timeout: float | None = None) -> Generated:
        """The finished output; raises what decoding it raised."""
        return self._future.result(timeout)

    def future(self) -> Future[Generated]:
        """The result as a `concurrent.futures.Future` (for `asyncio.wrap_future`)."""
        return self._future

    def cancel(self) -> None:
        """Give up this sentence (its client went away): its rows leave the batch at the next step."""
        if not self._future.done():
            self.cancelled = True
            self._scheduler._wake()

    def _put(self, token: int) -> None:
        if self.streams:
            with self._arrived:
                self._streamed.append(token)
                self._arrived.notify_all()

    def _finish(self, result: Generated | None = None, error: BaseException | None = None) -> None:
        if self._future.done():
            return
        if error is not None:
            self._future.set_exception(error)
        elif result is not None:
            self._future.set_result(result)
        else:
            self._future.cancel()
        with self._arrived:
            self._ended.set()
            self._arrived.notify_all()


@dataclass
class _Request:
    """A sentence waiting to join: its model, source (`(1, src_len)` tensors) and settings."""

    model: Any
    tokenizer: Any
    encoded: dict[str, torch.Tensor]
    full_length: int
    generate_kwargs: dict[str, Any]
    with_attention: bool
    with_scores: bool
    ticket: Ticket
    arrived: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> tuple:
        """What requests decoded by one generate() call share."""
        return (self.with_attention, self.with_scores, tuple(sorted(self.generate_kwargs.items())))

    @property
    def rows(self) -> int:
        return max(1, int(self.generate_kwargs.get("num_beams") or 1))


@dataclass
class _Cohort:
    """Requests admitted together by one generate() call: its search, and the sentences still open."""

    requests: list[_Request]
    encoded: dict[str, torch.Tensor]
    strategy: Any
    open: set[int]
    stopped: set[int] = field(default_factory=set)
    streams: bool = False  # whether its tickets take each step's tokens (greedy search and sampling)


class _ModelBatch:
    """The running batch of one model: its loop and the cohorts in it."""

    def __init__(self, model: Any):
        self.loop = DecodingLoop(model)
        self.cohorts: dict[int, _Cohort] = {}  # by id() of the cohort's strategy
        self.waiting: list[_Request] = []

    def rows(self) -> int:
        return self.loop.live_rows


class BatchScheduler:
    """Decodes the sentences submitted from any thread in one worker thread, batched per model.

    Args:
        policy: `"continuous"` or `"micro"` (see the module docstring).
        max_rows: the most rows decoded at once per model (a beam-search sentence takes `num_beams`);
            a request that needs more decodes alone once the batch is empty.
        wait_ms: under `"micro"`, how long the first request of a batch waits for others.
        max_waiting: requests waiting to join, across models, before `submit` refuses.
    """

    def __init__(
        self,
        policy: str = "continuous",
        max_rows: int = DEFAULT_MAX_ROWS,
        wait_ms: float = 0.0,
        max_waiting: int = DEFAULT_MAX_WAITING,
    ):
        if policy not in POLICIES:
            raise ValueError(f"batching policy {policy!r} is not supported; choose one of {', '.join(POLICIES)}")
        if max_rows < 1 or max_waiting < 1 or wait_ms < 0:
            raise ValueError(f"max_rows={max_rows} and max_waiting={max_waiting} must be >= 1, wait_ms={wait_ms} >= 0")
        self.policy, self.max_rows, self.wait_s, self.max_waiting = policy, max_rows, wait_ms / 1000, max_waiting
        self._condition = threading.Condition()
        self._batches: dict[int, _ModelBatch] = {}  # by id() of the model
        self._closed = False
        self._worker: threading.Thread | None = None

    def submit(
        self,
        model: Any,
        tokenizer: Any,
        encoded: dict[str, torch.Tensor],
        generate_kwargs: dict[str, Any],
        full_lengths: list[int] | None = None,
        *,
        with_attention: bool = False,
        with_scores: bool = False,
        stream: bool = False,
    ) -> list[Ticket]:
        """Queue each source of `encoded` (`input_ids`, `attention_mask`, right-padded, from
        `seq2seq_tools.generation.encode_texts`) for decoding with `generate_kwargs`; one ticket per source.

        Raises:
            QueueFullError: more than `max_waiting` requests would wait.
            RuntimeError: the scheduler is closed.
        """
        lengths = encoded["attention_mask"].sum(dim=1).tolist()
        full_lengths = lengths if full_lengths is None else list(full_lengths)
        requests = [
            _Request(
                model=model,
                tokenizer=tokenizer,
                encoded={name: tensor[row : row + 1, : lengths[row]] for name, tensor in encoded.items()},
                full_length=full_lengths[row],
                generate_kwargs=dict(generate_kwargs),
                with_attention=with_attention,
                with_scores=with_scores,
                ticket=Ticket(self, stream),
            )
            for row in range(len(lengths))
        ]
        with self._condition:
            if self._closed:
                raise RuntimeError("the batch scheduler is closed")
            waiting = sum(len(batch.waiting) for batch in self._batches.values())
            if waiting + len(requests) > self.max_waiting:
                raise QueueFullError(
                    f"The server is busy: {waiting} requests are waiting to be decoded. Please try again shortly."
                )
            batch = self._batches.setdefault(id(model), _ModelBatch(model))
            batch.waiting.extend(requests)
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="chatbot-batch", daemon=True)
                self._worker.start()
            self._condition.notify()
        return [request.ticket for request in requests]

    def close(self) -> None:
        """Stop the worker; every sentence not finished gets a `RuntimeError`."""
        with self._condition:
            self._closed = True
            self._condition.notify()
        if self._worker is not None:
            self._worker.join(timeout=30)

    def live_rows(self) -> int:
        """Rows decoded at the last step, over all models."""
        return sum(batch.rows() for batch in self._batches.values())

    def _wake(self) -> None:
        with self._condition:
            self._condition.notify()

    def _run(self) -> None:
        with torch.inference_mode():
            while True:
                admitted = self._next_admissions()
                if admitted is None:
                    return
                for batch, requests in admitted:
                    self._admit(batch, requests)
                for batch in list(self._batches.values()):
                    if len(batch.loop):
                        self._stop_cancelled(batch)
                        self._step(batch)

    def _next_admissions(self) -> list[tuple[_ModelBatch, list[_Request]]] | None:
        """Wait until there is work; the requests that join now, per model (None once closed)."""
        with self._condition:
            while True:
                if self._closed:
                    self._fail_all(RuntimeError("the batch scheduler was closed"))
                    return None
                for batch in self._batches.values():  # given up before they joined: nothing to decode
                    for request in batch.waiting:
                        if request.ticket.cancelled:
                            request.ticket._finish()
                    batch.waiting = [request for request in batch.waiting if not request.ticket.cancelled]
                admitted, wake_in = [], None
                for batch in self._batches.values():
                    requests, wait = self._admissible(batch)
                    if requests:
                        admitted.append((batch, requests))
                    if wait is not None:
                        wake_in = wait if wake_in is None else min(wake_in, wait)
                if admitted or any(len(batch.loop) for batch in self._batches.values()):
                    return admitted
                self._condition.wait(timeout=wake_in)

    def _admissible(self, batch: _ModelBatch) -> tuple[list[_Request], float | None]:
        """The waiting requests of `batch` that join now, and in how many seconds to look again
        (a micro-batch still gathering), else None."""
        if not batch.waiting:
            return [], None
        if self.policy == "micro":
            if len(batch.loop):
                return [], None
            wait = batch.waiting[0].arrived + self.wait_s - time.monotonic()
            if wait > 0:
                return [], wait
        free, taken = self.max_rows - batch.rows(), []
        for request in batch.waiting:
            if request.rows > free and (taken or len(batch.loop)):
                break
            taken.append(request)
            free -= request.rows
        batch.waiting = batch.waiting[len(taken) :]
        return taken, None

    def _admit(self, batch: _ModelBatch, requests: list[_Request]) -> None:
        """Join `requests` to the batch, one generate() call per group of equal settings. A group that
        fails is tried again one request at a time, so that only the request that fails does."""
        groups: dict[tuple, list[_Request]] = {}
        for request in requests:
            groups.setdefault(request.key, []).append(request)
        for group in groups.values():
            if not self._try_join(batch, group) and len(group) > 1:
                for request in group:
                    self._try_join(batch, [request])

    def _try_join(self, batch: _ModelBatch, group: list[_Request]) -> bool:
        """`_join`, and whether it worked; a request that fails alone gets the error."""
        try:
            self._join(batch, group)
        except Exception as error:  # one group's failure is its own; the others decode on
            if len(group) == 1:
                logger.exception("could not start decoding a request")
                group[0].ticket._finish(error=error)
            return False
        return True

    def _join(self, batch: _ModelBatch, group: list[_Request]) -> None:
        first = group[0]
        model = first.model
        encoded = _padded([request.encoded for request in group], first.tokenizer.pad_token_id, model.device)
        search = generate_ids(
            model,
            encoded,
            **first.generate_kwargs,
            **output_settings(model, first.generate_kwargs, first.with_attention, first.with_scores),
            custom_generate=prepared_search,
        )
        batch.loop.add(search)
        streams = isinstance(search.strategy, GreedySearch) and any(request.ticket.streams for request in group)
        cohort = _Cohort(group, encoded, search.strategy, set(range(len(group))), streams=streams)
        batch.cohorts[id(search.strategy)] = cohort

    def _stop_cancelled(self, batch: _ModelBatch) -> None:
        for cohort in batch.cohorts.values():
            for sentence in list(cohort.open - cohort.stopped):
                if cohort.requests[sentence].ticket.cancelled:
                    cohort.strategy.stop(sentence)
                    cohort.stopped.add(sentence)
                    logger.debug("a request was given up: its rows leave the batch at this step")

    def _step(self, batch: _ModelBatch) -> None:
        """One step of `batch`; the new tokens to streaming tickets, finished outputs to theirs."""
        try:
            batch.loop.step()
        except Exception as error:  # the model failed on the whole batch: every sentence in it fails
            logger.exception("a decoding step failed; failing the %d requests in the batch", len(batch.cohorts))
            for cohort in batch.cohorts.values():
                for request in cohort.requests:
                    request.ticket._finish(error=error)
            batch.cohorts.clear()
            batch.loop = DecodingLoop(batch.loop.model)
            return
        for key, cohort in list(batch.cohorts.items()):
            self._deliver(cohort)
            if not cohort.open:
                del batch.cohorts[key]

    def _deliver(self, cohort: _Cohort) -> None:
        strategy = cohort.strategy
        if cohort.streams:
            column = strategy.columns[-1].tolist()
            for sentence in cohort.open:
                cohort.requests[sentence].ticket._put(column[sentence])
        done = [sentence for sentence in strategy.newly_done if sentence in cohort.open]
        if not done:
            return
        cohort.open.difference_update(done)
        wanted = [sentence for sentence in done if not cohort.requests[sentence].ticket.cancelled]
        for sentence in set(done) - set(wanted):
            cohort.requests[sentence].ticket._finish()
        if not wanted:
            return
        first = cohort.requests[0]
        try:
            results = results_of(
                first.model,
                first.tokenizer,
                cohort.encoded,
                strategy.output(),
                [request.full_length for request in cohort.requests],
                with_attention=first.with_attention,
                with_scores=first.with_scores,
                generate_kwargs=first.generate_kwargs,
                sources=wanted,
            )
        except Exception as error:
            logger.exception("could not read the outputs of finished requests")
            for sentence in wanted:
                cohort.requests[sentence].ticket._finish(error=error)
            return
        for sentence, result in zip(wanted, results, strict=True):
            cohort.requests[sentence].ticket._finish(result)

    def _fail_all(self, error: BaseException) -> None:
        for batch in self._batches.values():
            for request in batch.waiting:
                request.ticket._finish(error=error)
            for cohort in batch.cohorts.values():
                for request in cohort.requests:
                    request.ticket._finish(error=error)


def _padded(sources: list[dict[str, torch.Tensor]], pad_token_id: int, device: Any) -> dict[str, torch.Tensor]:
    """Sources of one row each, `(1, src_len)`, as one right-padded batch `(sources, longest)` on `device`."""
    width = max(source["input_ids"].shape[1] for source in sources)
    input_ids = torch.full((len(sources), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sources), width), dtype=torch.long)
    for row, source in enumerate(sources):
        length = source["input_ids"].shape[1]
        input_ids[row, :length] = source["input_ids"][0]
        attention_mask[row, :length] = source["attention_mask"][0]
    return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}


__all__ = ["POLICIES", "BatchScheduler", "QueueFullError", "Ticket"]

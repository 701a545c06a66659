"""The index-based training stream: host h's batch for step s is a pure function of (seed, s, h).

A mixture's tasks (their plans, lowres.data.tasks.plans) become components over a token cache
(lowres.data.cache), mixed row by row by a `MixingSchedule`: a row holds one example of a language
(a window of its text under a denoiser chosen per example) or a group of short translation examples
packed together. No state is carried from step to step, so a stream starts at any step in the time
of one batch: resuming at step 1,000,000 costs what resuming at step 10 does.

Rates are per example, as seqio mixes them; a component whose rows hold k examples is drawn for
rows at rate / k, so its share of examples stays its rate.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import queue
import threading
from collections.abc import Iterator, Mapping

import numpy as np
import seqio

from lowres.data.cache.build import build_token_cache
from lowres.data.config import DataConfig
from lowres.data.streams.components import ClonedExamples, LanguageExamples, Lengths, PairExamples
from lowres.data.streams.rows import RowConverter
from lowres.data.streams.sampler import MixingSchedule, _key
from lowres.data.tasks.objectives import check_sentinels
from lowres.data.tasks.plans import MonoPlan, Plan, plan_for
from lowres.data.vocab import vocabulary as vocab_lib
from lowres.errors import ConfigError

logger = logging.getLogger(__name__)
Batch = dict[str, np.ndarray]


def mixture_rates(name: str) -> dict[str, float]:
    """Leaf task -> normalised example rate of a registered seqio task or mixture."""
    provider = seqio.get_mixture_or_task(name)
    if isinstance(provider, seqio.Task):
        return {provider.name: 1.0}
    rates = {task.name: float(provider.get_rate(task)) for task in provider.tasks}
    total = sum(rates.values())
    return {task: rate / total for task, rate in rates.items() if rate > 0}


def plans_of(name: str) -> dict[str, Plan] | None:
    """The plan of every leaf task of `name`, or None when one has none (read through seqio instead)."""
    plans = {task: plan_for(task) for task in mixture_rates(name)}
    return None if any(plan is None for plan in plans.values()) else plans


def _component_key(task: str) -> int:
    """A stable 32-bit key of a task name (not Python's hash(), which changes between processes)."""
    return int(_key(*task.encode("utf-8")).generate_state(1)[0])


@dataclasses.dataclass
class _Component:
    task: str
    examples: LanguageExamples | PairExamples | ClonedExamples
    per_row: int  # examples packed into one of its rows


class IndexedStream:
    """Batches of one mixture for one host, addressable by step."""

    def __init__(self, mixture: str, config: DataConfig, shard_info: seqio.ShardInfo,
                 converter: seqio.FeatureConverter, *, progress: bool = False,
                 plans: Mapping[str, Plan] | None = None):  # fmt: skip
        """`plans`: those of the mixture's tasks (plans_of), when the caller has them already."""
        self.rows_per_batch = config.host_batch_size(shard_info.num_shards)
        plans = plans if plans is not None else plans_of(mixture)
        if plans is None:
            raise ConfigError(f"mixture {mixture!r} has tasks registered without a lowres plan")
        self.mixture = mixture
        self.seed, self.host = int(config.seed), int(shard_info.index)
        lengths = {"inputs": config.inputs_length, "targets": config.targets_length}
        self.rows = RowConverter.for_converter(converter, lengths)
        self.lengths = Lengths(config.inputs_length, config.targets_length)
        example_rates = mixture_rates(mixture)
        caches = _open_caches(plans, shard_info, progress)
        self.components = [self._component(task, plan, caches[_source_key(plan)]) for task, plan in plans.items()]
        row_rates = [example_rates[c.task] / c.per_row for c in self.components]
        self.schedule = MixingSchedule(row_rates, seed=int(_key(self.seed, self.host, 0x51).generate_state(1)[0]))

    def _vocabulary(self, task: str):
        return seqio.get_mixture_or_task(task).output_features["targets"].vocabulary

    def _component(self, task: str, plan: Plan, cache) -> _Component:
        component = self._original(task, plan, cache)
        if plan.clone is not None:
            component.examples = ClonedExamples(component.examples, plan.clone.id_map, plan.clone.probability,
                                                key=_component_key(task), seed=self.seed)  # fmt: skip
        return component

    def _original(self, task: str, plan: Plan, cache) -> _Component:
        vocabulary = self._vocabulary(task)
        key = _component_key(task)
        if isinstance(plan, MonoPlan):
            for denoiser, _ in plan.denoisers:
                check_sentinels(denoiser, self.lengths.inputs, self.lengths.targets, vocabulary)
            arrays = cache.mono(plan.lang, plan.split)
            mode_ids = [vocab_lib.reserved_id(vocabulary, d.mode_token) if d.mode_token else None
                        for d, _ in plan.denoisers]  # fmt: skip
            examples = LanguageExamples(arrays.tokens, plan.denoisers, key=key, seed=self.seed, lengths=self.lengths,
                                        mode_ids=mode_ids, vocab_size=vocabulary.vocab_size, name=task)  # fmt: skip
            return _Component(task, examples, self._per_row(examples.max_lengths()))
        src, tgt = cache.pair(plan.src, plan.tgt, plan.split)
        sides = {"src": src, "tgt": tgt}
        reads_in, reads_out = plan.reads
        translation = plan.translation
        prefix = [vocab_lib.reserved_id(vocabulary, translation.mode_token)] if translation.mode_token else []
        prefix.append(vocab_lib.reserved_id(vocabulary, vocab_lib.language_tag(plan.target_lang)))
        examples = PairExamples((sides[reads_in].tokens, sides[reads_in].offsets),
                                (sides[reads_out].tokens, sides[reads_out].offsets), key=key, seed=self.seed,
                                lengths=self.lengths, prefix=prefix, name=task)  # fmt: skip
        return _Component(task, examples, self._per_row(examples.lengths_quantile(0.9)))

    def _per_row(self, lengths: tuple[float, float]) -> int:
        """How many of a component's examples a packed row holds, given their (inputs, targets) lengths:
        the longest for a language (so every row fits all of them), the 90th percentile for translation
        pairs (an example that does not fit its row is left out of that row)."""
        if not self.rows.packing:
            return 1
        inputs, targets = lengths
        capacity = self.rows.capacity
        if len(capacity) == 2:  # encoder-decoder: each side has its own length
            per_row = min(capacity[0] / max(inputs, 1.0), capacity[1] / max(targets, 1.0))
        else:
            per_row = capacity[0] / max(inputs + targets, 1.0)
        return max(1, math.floor(per_row))

    def _row(self, component: _Component, within: int) -> list:
        if component.per_row == 1:
            return [component.examples.example(within)]
        first = within * component.per_row
        candidates = [component.examples.example(first + i) for i in range(component.per_row)]
        packed = self.rows.pack(candidates, 1)
        return packed.rows[0]

    def batch(self, step: int) -> Batch:
        """This host's rows of global batch `step`."""
        start = (int(step) * self.rows_per_batch)
        components, within = self.schedule.locate_many(start, self.rows_per_batch)
        rows = [self._row(self.components[c], int(j)) for c, j in zip(components, within)]
        return self.rows.rows(rows, self.rows_per_batch)

    def tasks_of(self, step: int) -> list[str]:
        """The task each row of batch `step` came from (tests, statistics)."""
        start = int(step) * self.rows_per_batch
        components, _ = self.schedule.locate_many(start, self.rows_per_batch)
        return [self.components[c].task for c in components]

    def batches(self, start_step: int = 0, prefetch: int = 2) -> Iterator[Batch]:
        """Batches from `start_step` on, built ahead in a background thread (`prefetch` at most)."""
        return _Prefetched(self, start_step, prefetch)


def _source_key(plan: Plan) -> str:
    """Plans over equal sources (same name and identity) share one cache."""
    return json.dumps([plan.source.name, plan.source.identity()], sort_keys=True, default=str)


def _open_caches(plans: Mapping[str, Plan], shard_info: seqio.ShardInfo, progress: bool) -> dict[str, object]:
    """One token cache per distinct source, holding (only) the entries the plans read."""
    by_source: dict[str, list[Plan]] = {}
    for plan in plans.values():
        by_source.setdefault(_source_key(plan), []).append(plan)
    caches = {}
    for source_id, group in by_source.items():
        source = group[0].source
        vocabulary = seqio.get_mixture_or_task(group[0].task).output_features["targets"].vocabulary
        entries = sorted({plan.entry for plan in group})
        caches[source_id] = build_token_cache(source, vocabulary, entries=entries, shard_index=shard_info.index,
                                              num_shards=shard_info.num_shards, progress=progress)  # fmt: skip
    return caches


class _Prefetched:
    """An iterator over an IndexedStream's batches with a bounded background thread."""

    def __init__(self, stream: IndexedStream, start_step: int, depth: int):
        self._queue: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(stream, start_step), daemon=True)
        self._thread.start()

    def _fill(self, stream: IndexedStream, step: int) -> None:
        try:
            while not self._stop.is_set():
                item = stream.batch(step)
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                step += 1
        except BaseException as error:  # noqa: BLE001 - re-raised in the consumer
            self._queue.put(error)

    def __iter__(self):
        return self

    def __next__(self) -> Batch:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()

    def __del__(self):
        self._stop.set()

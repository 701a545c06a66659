"""What one mixture component yields for its j-th row: examples cut from a tokenized cache by index.

* `LanguageExamples`: one language's token stream (its documents concatenated, as seqio's chunking
  did). Its j-th example picks a denoiser by the objective's rates (a `MixingSchedule` of its own),
  takes that denoiser's k-th raw window and applies it. Windows are cut on a grid of the denoiser's
  raw length; each epoch shifts the grid by a seeded offset and visits its windows in a seeded
  order, wrapping around the end of the stream, so every epoch sees every token once in new cuts.
* `PairExamples`: one translation direction over aligned (source, target) token arrays; its j-th
  example is the pair at position j of the epoch's seeded order, `[mode] <2tgt> source -> target`.

* `ClonedExamples`: another component's examples, each mapped to a cloned language's ids with the
  clone's probability (one seeded decision per example).

Everything is a pure function of (seed, component key, index), so a stream can start at any step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from lowres.data.streams.sampler import IndexPermutation, MixingSchedule, _key
from lowres.data.tasks import denoisers as denoise_lib
from lowres.data.tasks.denoisers import Denoiser, PrefixLM, SpanCorruption, _num_noise, _num_spans
from lowres.errors import DataError

Example = tuple[np.ndarray, np.ndarray]  # (inputs, targets), int32, ending in EOS


@dataclasses.dataclass(frozen=True)
class Lengths:
    inputs: int
    targets: int
    eos_id: int = 1


def _rng(*words: int) -> np.random.Generator:
    return np.random.default_rng(_key(*words))


class LanguageExamples:
    """Examples of one language under an objective's denoisers, by index."""

    def __init__(self, tokens: np.ndarray, denoisers: Sequence[tuple[Denoiser, float]], *, key: int, seed: int,
                 lengths: Lengths, mode_ids: Sequence[int | None], vocab_size: int, name: str = ""):  # fmt: skip
        if len(tokens) < 2:
            raise DataError(f"{name or 'a language'} has {len(tokens)} token(s) in its training split; "
                            "at least 2 are needed for an example (add text or drop the language)")
        self.tokens, self.key, self.seed, self.lengths, self.name = tokens, key, seed, lengths, name
        self.denoisers = [d for d, _ in denoisers]
        schedule_seed = int(_key(seed, key, 0xDE).generate_state(1)[0])
        self.schedule = MixingSchedule([rate for _, rate in denoisers], seed=schedule_seed, cycle=1000)
        self.raw = [min(denoise_lib.raw_length(d, lengths.inputs, lengths.targets), len(tokens)) for d in self.denoisers]
        self.mode_ids, self.vocab_size = list(mode_ids), vocab_size
        self._epochs: dict[tuple[int, int], tuple[IndexPermutation, int]] = {}

    def windows(self, denoiser: int) -> int:
        return max(len(self.tokens) // self.raw[denoiser], 1)

    def window(self, denoiser: int, k: int) -> np.ndarray:
        """Raw tokens of the denoiser's k-th window (epoch k // windows, seeded offset and order)."""
        count, raw, total = self.windows(denoiser), self.raw[denoiser], len(self.tokens)
        epoch, slot = divmod(int(k), count)
        order, offset = self._epoch(denoiser, epoch, count, total)
        start = (offset + int(order(slot)) * raw) % total
        end = start + raw
        if end <= total:
            return np.asarray(self.tokens[start:end], np.int32)
        return np.concatenate([self.tokens[start:], self.tokens[: end - total]]).astype(np.int32)

    def _epoch(self, denoiser: int, epoch: int, count: int, total: int) -> tuple[IndexPermutation, int]:
        """The window order and grid offset of one (denoiser, epoch), derived once and kept."""
        found = self._epochs.get((denoiser, epoch))
        if found is None:
            if len(self._epochs) > 64:
                self._epochs.clear()
            offset = int(_key(self.seed, self.key, denoiser, epoch, 0x0FF5).generate_state(1)[0]) % total
            found = self._epochs[(denoiser, epoch)] = (IndexPermutation(count, self.seed, self.key, denoiser, epoch),
                                                       offset)  # fmt: skip
        return found

    def max_lengths(self) -> tuple[int, int]:
        """The longest (inputs, targets) any of its examples has, EOS and mode token included."""
        longest_inputs = longest_targets = 0
        for denoiser, raw, mode_id in zip(self.denoisers, self.raw, self.mode_ids):
            mode = int(mode_id is not None)
            if isinstance(denoiser, SpanCorruption):
                noise = _num_noise(raw, denoiser.noise_density)
                spans = _num_spans(raw, noise, denoiser.mean_span_length, denoiser.num_spans)
                inputs, targets = mode + raw - noise + spans + 1, noise + spans + 1
            elif isinstance(denoiser, PrefixLM):
                low = max(0, min(round((1 - 2 * denoiser.noise_density) * (raw - 1)), raw - 1))
                inputs, targets = mode + raw, raw - low + 1  # split anywhere in [low, raw - 1]
            else:
                inputs, targets = mode + 1, raw + 1
            longest_inputs = max(longest_inputs, min(inputs, self.lengths.inputs))
            longest_targets = max(longest_targets, min(targets, self.lengths.targets))
        return longest_inputs, longest_targets

    def denoiser_of(self, j: int) -> int:
        return self.schedule.locate(j)[0]

    def example(self, j: int) -> Example:
        denoiser, k = self.schedule.locate(j)
        raw = self.window(denoiser, k)
        inputs, targets = denoise_lib.apply(self.denoisers[denoiser], raw, _rng(self.seed, self.key, j, 0xE8),
                                            mode_id=self.mode_ids[denoiser], vocab_size=self.vocab_size)  # fmt: skip
        return denoise_lib.finish(inputs, targets, self.lengths.inputs, self.lengths.targets, self.lengths.eos_id)


class PairExamples:
    """Examples of one translation direction: `[mode] <2tgt> source` -> `target`, by index."""

    def __init__(self, source: tuple[np.ndarray, np.ndarray], target: tuple[np.ndarray, np.ndarray], *, key: int,
                 seed: int, lengths: Lengths, prefix: Sequence[int], name: str = ""):  # fmt: skip
        (self.src_tokens, self.src_offsets), (self.tgt_tokens, self.tgt_offsets) = source, target
        self.count = len(self.src_offsets) - 1
        if self.count < 1 or len(self.tgt_offsets) - 1 != self.count:
            raise DataError(f"{name or 'a translation direction'} has {self.count} aligned pairs "
                            f"({len(self.tgt_offsets) - 1} targets); it needs at least one")
        self.key, self.seed, self.lengths, self.name = key, seed, lengths, name
        self.prefix = np.asarray(prefix, np.int32)
        self._orders: dict[int, IndexPermutation] = {}

    def pair(self, j: int) -> int:
        epoch, slot = divmod(int(j), self.count)
        order = self._orders.get(epoch)
        if order is None:
            if len(self._orders) > 64:
                self._orders.clear()
            order = self._orders[epoch] = IndexPermutation(self.count, self.seed, self.key, epoch)
        return int(order(slot))

    def example(self, j: int) -> Example:
        p = self.pair(j)
        src = np.asarray(self.src_tokens[self.src_offsets[p] : self.src_offsets[p + 1]], np.int32)
        tgt = np.asarray(self.tgt_tokens[self.tgt_offsets[p] : self.tgt_offsets[p + 1]], np.int32)
        return denoise_lib.finish(np.concatenate([self.prefix, src]), tgt, self.lengths.inputs, self.lengths.targets,
                                  self.lengths.eos_id)  # fmt: skip

    def lengths_quantile(self, q: float = 0.9) -> tuple[float, float]:
        """The q-quantile of (inputs, targets) lengths with prefix and EOS: what rows are sized for."""
        src = np.diff(self.src_offsets) + len(self.prefix) + 1
        tgt = np.diff(self.tgt_offsets) + 1
        return float(np.quantile(src, q)), float(np.quantile(tgt, q))


class ClonedExamples:
    """`examples` of a cloned language: example j is mapped through `id_map` with `probability`."""

    def __init__(self, examples: LanguageExamples | PairExamples, id_map: np.ndarray, probability: float, *,
                 key: int, seed: int):  # fmt: skip
        self.examples, self.id_map, self.probability = examples, np.asarray(id_map, np.int32), float(probability)
        self.key, self.seed = key, seed

    def is_clone(self, j: int) -> bool:
        return bool(_rng(self.seed, self.key, j, 0xC10E).random() < self.probability)

    def example(self, j: int) -> Example:
        inputs, targets = self.examples.example(j)
        if not self.is_clone(j):
            return inputs, targets
        return self.id_map[inputs], self.id_map[targets]

    def __getattr__(self, name: str):  # lengths, denoiser choice: those of the original examples
        return getattr(self.examples, name)

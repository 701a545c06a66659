"""Index-based sampling: which component and which of its elements every example index draws, as a pure
function of (seed, index), so any position of a stream is reached in O(1).

* `IndexPermutation`: a seeded bijection of [0, n) (a Feistel network with cycle walking), so an
  epoch's shuffled order is computed per element, without materialising a permutation of n items.
* `MixingSchedule`: interleaves components by their rates. Example indices are cut into cycles of M
  slots; each cycle holds every component round(rate x M) times (largest remainders), in an order
  shuffled per cycle. The k-th slot of component c is therefore found by arithmetic, and over any
  window of a few cycles every component's share is its rate to within 1/M.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lowres.errors import ConfigError

_MASK32 = np.uint64(0xFFFFFFFF)


def _key(*words: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(w) & 0xFFFFFFFF for w in words])


class IndexPermutation:
    """A pseudo-random permutation of range(n) keyed by `seed` words: `self[i]` in O(1) for any i.

    Four Feistel rounds over the smallest even-bit domain that holds n; values >= n are walked
    forward (apply again) until they fall in range, which keeps the map a bijection on [0, n).
    """

    ROUNDS = 4

    def __init__(self, n: int, *seed: int):
        if n < 1:
            raise ConfigError(f"cannot permute {n} items")
        self.n = int(n)
        bits = max(2, int(np.ceil(np.log2(max(self.n, 2)))))
        self.half = (bits + 1) // 2
        self.half_mask = np.uint64((1 << self.half) - 1)
        self.round_keys = _key(*seed).generate_state(self.ROUNDS, np.uint32).astype(np.uint64)

    def _rounds(self, x: np.ndarray) -> np.ndarray:
        left, right = x >> np.uint64(self.half), x & self.half_mask
        for key in self.round_keys:
            mixed = (right * np.uint64(0x9E3779B1) + key) & _MASK32
            mixed ^= mixed >> np.uint64(15)
            mixed = (mixed * np.uint64(0x85EBCA77)) & _MASK32
            mixed ^= mixed >> np.uint64(13)
            left, right = right, (left ^ mixed) & self.half_mask
        return (left << np.uint64(self.half)) | right

    def __call__(self, index: np.ndarray | int) -> np.ndarray:
        x = np.asarray(index, np.uint64) % np.uint64(self.n)
        out = self._rounds(x)
        outside = out >= self.n
        while np.any(outside):
            out = np.where(outside, self._rounds(out), out)
            outside = out >= self.n
        return out.astype(np.int64)


def largest_remainder(rates: Sequence[float], total: int) -> np.ndarray:
    """Integer counts summing to `total` in proportion to `rates` (Hamilton's method); every positive rate
    gets at least one slot."""
    rates = np.asarray(rates, np.float64)
    if rates.ndim != 1 or len(rates) == 0 or np.any(rates < 0) or not np.isfinite(rates).all() or rates.sum() <= 0:
        raise ConfigError(f"mixing rates must be non-negative, finite and not all zero, got {rates.tolist()}")
    exact = rates / rates.sum() * total
    counts = np.floor(exact).astype(np.int64)
    counts[(rates > 0) & (counts == 0)] = 1
    short = total - counts.sum()
    if short > 0:
        order = np.argsort(-(exact - np.floor(exact)), kind="stable")
        counts[order[:short]] += 1
    elif short < 0:  # the minimum of one slot took more than the remainders gave
        order = np.argsort(-counts, kind="stable")
        for i in order[: -short]:
            counts[i] -= 1
    return counts


class MixingSchedule:
    """Example index -> (component, index within that component), for components mixed by `rates`."""

    MIN_CYCLE = 4096
    MAX_CYCLE = 1 << 18

    def __init__(self, rates: Sequence[float], seed: int, cycle: int | None = None):
        rates = np.asarray(rates, np.float64)
        positive = rates[rates > 0]
        if cycle is None:  # long enough that the rarest component gets about 20 slots a cycle
            cycle = int(min(max(self.MIN_CYCLE, np.ceil(20.0 * rates.sum() / positive.min())), self.MAX_CYCLE))
        self.cycle = cycle
        self.counts = largest_remainder(rates, cycle)
        self.seed = int(seed)
        self.slots = np.repeat(np.arange(len(self.counts)), self.counts)
        self._cycles: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # this schedule's last two cycles

    @property
    def shares(self) -> np.ndarray:
        """The realised share of each component over whole cycles."""
        return self.counts / self.cycle

    def _cycle(self, number: int) -> tuple[np.ndarray, np.ndarray]:
        """(component of each slot, rank of the slot among its component's slots) for one cycle, kept per
        schedule (a cache shared by every schedule would evict a stream's cycle for each example's)."""
        found = self._cycles.get(number)
        if found is None:
            if len(self._cycles) >= 2:
                self._cycles.pop(next(iter(self._cycles)))
            found = self._cycles[number] = self._compute_cycle(number)
        return found

    def _compute_cycle(self, number: int) -> tuple[np.ndarray, np.ndarray]:
        order = np.random.default_rng(_key(self.seed, number, 0x5EED)).permutation(self.slots).astype(np.int32)
        by_component = np.argsort(order, kind="stable")
        grouped = order[by_component]
        ranks = np.empty(self.cycle, np.int64)
        ranks[by_component] = np.arange(self.cycle) - np.searchsorted(grouped, grouped, side="left")
        return order, ranks

    def locate(self, index: int) -> tuple[int, int]:
        number, offset = divmod(int(index), self.cycle)
        order, ranks = self._cycle(number)
        component = int(order[offset])
        return component, int(self.counts[component] * number + ranks[offset])

    def locate_many(self, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Components and within-component indices of examples start .. start + count - 1."""
        components, within = np.empty(count, np.int64), np.empty(count, np.int64)
        position = 0
        while position < count:
            number, offset = divmod(start + position, self.cycle)
            take = min(count - position, self.cycle - offset)
            order, ranks = self._cycle(number)
            chosen = order[offset : offset + take]
            components[position : position + take] = chosen
            within[position : position + take] = self.counts[chosen] * number + ranks[offset : offset + take]
            position += take
        return components, within

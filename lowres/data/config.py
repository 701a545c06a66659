"""Data settings: what a run trains on, how examples are cut and batched and with which seed (DataConfig),
and how a corpus weights its languages (MixingConfig, computed by lowres.data.mixing.rates)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import gin

from lowres.config_fields import any_value, at_least, between, greater_than, one_of, validated
from lowres.errors import ConfigError

DECODER_ATTENTION = ("prefix", "causal")
PIPELINES = ("auto", "indexed", "seqio")


@gin.configurable
@validated(
    source=any_value("a corpus name or SOURCE string, checked when the data is prepared"),
    objective=any_value("a named objective: `lowres data sample NAME`"), temperature_alpha=between(0.0, 1.0),
    inputs_length=at_least(1), targets_length=at_least(1), batch_size=at_least(1), shuffle_buffer_size=at_least(1),
    seed=at_least(0), decoder_attention=one_of(*DECODER_ATTENTION), translation_rate=between(0.0, 1.0, high_open=True),
    pipeline=one_of(*PIPELINES), data_shards=at_least(0),
)  # fmt: skip
@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What to train on and how it is cut: lengths are per example, `batch_size` is global."""

    source: str = "builtin"
    languages: Sequence[str] | None = None
    objective: str = "r_and_s"
    temperature_alpha: float = 0.3
    inputs_length: int = 128
    targets_length: int = 128
    batch_size: int = 16
    pack: bool = True
    # Per-task shuffle buffer (seqio's default is 1000). Each task fills its own before the first
    # batch, so small corpora with many tasks start much faster with a few hundred.
    shuffle_buffer_size: int = 1000
    seed: int = 0
    # Decoder-only models: "prefix" attends bidirectionally over each example's inputs (UL2's prefix
    # LM); "causal" trains a fully causal model on the same sequences, for comparison. Loss stays on
    # the targets in both. Encoder-decoder models ignore it.
    decoder_attention: str = "prefix"
    # Fraction of training examples drawn from translation tasks: the built-in corpus' English-aligned
    # pairs (both directions), or a declared corpus' `pairs` (where it replaces the corpus'
    # `translation_share`); pairs are weighted by temperature like the languages.
    translation_rate: float = 0.0
    # How training batches are made (lowres.data.streams.pipeline): "indexed" samples the mixture's
    # tasks from a token cache by index (every lowres-registered task), "seqio" runs seqio's tf.data
    # pipeline (any seqio task; a resume replays the stream), "auto" the first that applies.
    pipeline: str = "auto"
    # How many data shards split each global batch (0: one per host). Host h of n builds shards
    # h*k .. h*k+k-1 (k = data_shards / n), each reading its part of the corpus, so the global batch
    # is the same for any number of hosts that divides data_shards: a 2-host run and a 1-host run
    # with data_shards=2 train on the same examples.
    data_shards: int = 0

    def host_batch_size(self, num_hosts: int) -> int:
        """Rows of each global batch one of `num_hosts` hosts produces; the batch must split evenly."""
        if self.batch_size % num_hosts:
            raise ConfigError(f"DataConfig.batch_size={self.batch_size} must be divisible by the {num_hosts} hosts")
        return self.batch_size // num_hosts

    def shards_of_host(self, host: int, num_hosts: int) -> list[tuple[int, int]]:
        """(shard index, number of shards) of each data shard host `host` of `num_hosts` builds."""
        shards = self.data_shards or num_hosts
        if shards % num_hosts or self.batch_size % shards:
            raise ConfigError(f"DataConfig.data_shards={shards} must be a multiple of the {num_hosts} hosts and "
                              f"divide DataConfig.batch_size={self.batch_size}")  # fmt: skip
        per_host = shards // num_hosts
        return [(host * per_host + j, shards) for j in range(per_host)]


@gin.configurable
@validated(method=one_of("temperature", "unimax", "fixed"), alpha=between(0.0, 1.0),
           size_unit=one_of("bytes", "chars", "tokens"), budget=greater_than(0.0), max_epochs=greater_than(0.0),
           total=greater_than(0.0))  # fmt: skip
@dataclasses.dataclass(frozen=True)
class MixingConfig:
    """How languages are weighted: `method` is temperature, unimax or fixed; sizes in bytes, chars or tokens.

    `budget` (UniMax) and `total` (epoch caps) are training amounts in `size_unit`; `max_epochs`
    caps UniMax's allocation and, with `total`, any method's rates.
    """

    method: str = "temperature"
    alpha: float = 0.3
    size_unit: str = "bytes"
    budget: float | None = None
    max_epochs: float | None = None
    total: float | None = None
    weights: Mapping[str, float] | None = None

    def __post_init__(self):
        if isinstance(self.weights, Mapping):  # stored as items so the config stays hashable
            object.__setattr__(self, "weights", tuple(sorted(self.weights.items())))
        if self.method == "unimax" and self.budget is None:
            raise ConfigError("MixingConfig(method='unimax') needs budget= (training amount in size_unit)")
        if self.method == "fixed" and not self.weights:
            raise ConfigError("MixingConfig(method='fixed') needs weights={language: weight}")

"""From a registered seqio mixture to an iterator of packed, host-local numpy batches."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import gin
import numpy as np
import seqio
import tensorflow as tf


DECODER_ATTENTION = ("prefix", "causal")


@gin.configurable
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
    # Fraction of training examples drawn from translation tasks (source `builtin` only: its
    # English-aligned pairs, both directions, split over pairs by temperature like the languages).
    translation_rate: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.translation_rate < 1.0:
            raise ValueError(
                f"DataConfig.translation_rate={self.translation_rate!r} must lie in [0, 1): it is the fraction of "
                "training examples drawn from translation tasks (0 = none)"
            )
        if self.translation_rate and self.source != "builtin":
            raise ValueError(
                f"DataConfig.translation_rate applies to source='builtin' only, got source={self.source!r}; a declared "
                "corpus sets its share with CorpusSpec(pairs=..., translation_share=...)"
            )
        if self.decoder_attention not in DECODER_ATTENTION:
            raise ValueError(
                f"DataConfig.decoder_attention={self.decoder_attention!r}; choose one of {', '.join(DECODER_ATTENTION)}"
            )


def _drop_causal_attention(example):
    """Without `decoder_causal_attention` the decoder-only model attends causally everywhere."""
    return {k: v for k, v in example.items() if k != "decoder_causal_attention"}


def feature_converter(architecture: str, pack: bool = True) -> seqio.FeatureConverter:
    """The seqio converter that turns (inputs, targets) examples into a model's features.

    Encoder-decoder: inputs to the encoder, targets to the decoder. Decoder-only: one sequence,
    inputs + targets, with bidirectional attention over the inputs (`decoder_causal_attention`)
    and loss on the targets only.
    """
    if architecture == "encoder_decoder":
        return seqio.EncDecFeatureConverter(pack=pack)
    if architecture == "decoder_only":
        return seqio.PrefixLMFeatureConverter(pack=pack, loss_on_targets_only=True)
    raise ValueError(f"no feature converter for architecture {architecture!r}")


def training_batches(
    mixture: str,
    config: DataConfig,
    shard_info: seqio.ShardInfo,
    start_step: int = 0,
    architecture: str = "encoder_decoder",
) -> Iterator[dict[str, np.ndarray]]:
    """Endless, deterministic stream of this host's share of each global batch.

    Resuming at `start_step` replays the same stream and skips the batches already consumed, so a
    restarted run sees exactly the examples the uninterrupted one would have.
    """
    if config.batch_size % shard_info.num_shards:
        raise ValueError(
            f"DataConfig.batch_size={config.batch_size} must be divisible by the {shard_info.num_shards} hosts"
        )
    dataset = seqio.get_dataset(
        mixture,
        task_feature_lengths={"inputs": config.inputs_length, "targets": config.targets_length},
        dataset_split="train",
        shuffle=True,
        num_epochs=None,
        seed=config.seed,
        shard_info=shard_info,
        use_cached=False,
        feature_converter=feature_converter(architecture, config.pack),
    )
    if architecture == "decoder_only" and config.decoder_attention == "causal":
        dataset = dataset.map(_drop_causal_attention, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(config.batch_size // shard_info.num_shards, drop_remainder=True)
    if start_step:
        dataset = dataset.skip(start_step)
    options = tf.data.Options()
    options.deterministic = True
    dataset = dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
    return dataset.as_numpy_iterator()

"""From a registered seqio mixture to an iterator of packed, host-local numpy batches."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import seqio
import tensorflow as tf

from lowres.data.config import DataConfig
from lowres.errors import ConfigError


def training_batches(
    mixture: str,
    config: DataConfig,
    shard_info: seqio.ShardInfo,
    start_step: int = 0,
    converter: seqio.FeatureConverter | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Endless, deterministic stream of this host's share of each global batch, as `converter` (the
    model's seqio feature converter, models.architecture.Architecture.feature_converter; default:
    packed encoder-decoder features) lays them out.

    Resuming at `start_step` replays the same stream and skips the batches already consumed, so a
    restarted run sees exactly the examples the uninterrupted one would have.
    """
    if config.batch_size % shard_info.num_shards:
        raise ConfigError(
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
        feature_converter=converter or seqio.EncDecFeatureConverter(pack=config.pack),
    )
    dataset = dataset.batch(config.batch_size // shard_info.num_shards, drop_remainder=True)
    if start_step:
        dataset = dataset.skip(start_step)
    options = tf.data.Options()
    options.deterministic = True
    dataset = dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
    return dataset.as_numpy_iterator()

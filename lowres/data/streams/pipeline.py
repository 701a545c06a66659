"""From a registered seqio mixture to an iterator of packed, host-local numpy batches.

Two executors behind the same seqio declarations (DataConfig.pipeline):
* indexed (lowres.data.streams.indexed): the mixture's tasks sampled by index from a token cache;
  a stream starts at any step at once. Used whenever every task was registered by lowres.
* seqio: seqio's tf.data pipeline, for any registered task; starting at step k replays k batches.
"""

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
    progress: bool = False,
) -> Iterator[dict[str, np.ndarray]]:
    """Endless, deterministic stream of this host's share of each global batch, as `converter` (the
    model's seqio feature converter, models.architecture.Architecture.feature_converter; default:
    packed encoder-decoder features) lays them out.

    Starting at `start_step` gives exactly the batches an uninterrupted stream has from that step on.
    With `DataConfig.data_shards`, the host's rows are those of its data shards, concatenated.
    """
    config.host_batch_size(shard_info.num_shards)  # refuses an uneven split before building anything
    shards = config.shards_of_host(shard_info.index, shard_info.num_shards)
    if config.data_shards and len(shards) > 1:
        streams = [training_batches(mixture, config, seqio.ShardInfo(index, count), start_step, converter, progress)
                   for index, count in shards]  # fmt: skip
        return (
            {key: np.concatenate([batch[key] for batch in batches]) for key in batches[0]}
            for batches in zip(*streams)
        )
    if config.data_shards:
        shard_info = seqio.ShardInfo(*shards[0])
    converter = converter or seqio.EncDecFeatureConverter(pack=config.pack)
    if config.pipeline != "seqio":
        from lowres.data.streams.indexed import IndexedStream, plans_of

        plans = plans_of(mixture)
        if plans is not None:
            return IndexedStream(mixture, config, shard_info, converter, progress=progress,
                                 plans=plans).batches(start_step)  # fmt: skip
        if config.pipeline == "indexed":
            raise ConfigError(
                f"DataConfig.pipeline='indexed' but mixture {mixture!r} holds tasks lowres did not register (they have "
                "no token-cache plan); use pipeline='auto' or 'seqio' for them"
            )
    return seqio_batches(mixture, config, shard_info, start_step, converter)


def seqio_batches(mixture: str, config: DataConfig, shard_info: seqio.ShardInfo, start_step: int,
                  converter: seqio.FeatureConverter) -> Iterator[dict[str, np.ndarray]]:  # fmt: skip
    """The seqio tf.data stream; a start at step k builds the stream and skips k batches."""
    dataset = seqio.get_dataset(
        mixture,
        task_feature_lengths={"inputs": config.inputs_length, "targets": config.targets_length},
        dataset_split="train",
        shuffle=True,
        num_epochs=None,
        seed=config.seed,
        shard_info=shard_info,
        use_cached=False,
        feature_converter=converter,
    )
    dataset = dataset.batch(config.host_batch_size(shard_info.num_shards), drop_remainder=True)
    if start_step:
        dataset = dataset.skip(start_step)
    options = tf.data.Options()
    options.deterministic = True
    dataset = dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
    return dataset.as_numpy_iterator()

"""Log-likelihood of given targets under a model (perplexity filters, score metrics).

Each (inputs, targets) pair goes through the architecture's seqio feature converter unpacked, one
example per row, and the jitted `score_batch` (lowres.models.losses) returns its summed target NLL.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import numpy as np

from lowres.errors import DataError
from lowres.models.architecture import Architecture
from lowres.models.losses import score_batch


def jitted_scorer(graphdef, params, rest) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """A jitted per-row NLL function over feature batches for restored parameters."""
    fn = jax.jit(functools.partial(score_batch, graphdef=graphdef, rest=rest))
    return lambda batch: fn(params, batch)


def example_features(
    examples: Sequence[tuple[Sequence[int], Sequence[int]]], architecture: Architecture, inputs_length: int,
    targets_length: int,
) -> dict[str, np.ndarray]:  # fmt: skip
    """One unpacked feature row per (inputs, targets) example, padded to the given lengths."""
    import tensorflow as tf

    for i, (inputs, targets) in enumerate(examples):
        if len(inputs) > inputs_length or len(targets) > targets_length:
            raise DataError(
                f"example {i}: {len(inputs)} input / {len(targets)} target tokens exceed the lengths "
                f"{inputs_length} / {targets_length}; raise them or shorten the text"
            )
    dataset = tf.data.Dataset.from_generator(
        lambda: ({"inputs": np.asarray(i, np.int32), "targets": np.asarray(t, np.int32)} for i, t in examples),
        output_signature={"inputs": tf.TensorSpec([None], tf.int32), "targets": tf.TensorSpec([None], tf.int32)},
    )
    converted = architecture.feature_converter(pack=False)(dataset, {"inputs": inputs_length, "targets": targets_length})
    rows = list(converted.as_numpy_iterator())
    return {key: np.stack([row[key] for row in rows]) for key in rows[0]}


def log_likelihoods(
    score_fn: Callable[[dict[str, np.ndarray]], np.ndarray],
    examples: Sequence[tuple[Sequence[int], Sequence[int]]],
    architecture: Architecture,
    inputs_length: int,
    targets_length: int,
    batch_size: int = 32,
) -> np.ndarray:
    """Summed log p(targets | inputs) (nats, <= 0) of each example, in order; targets include their EOS."""
    if not examples:
        return np.zeros((0,), np.float32)
    features = example_features(examples, architecture, inputs_length, targets_length)
    total = len(examples)
    scores = []
    for start in range(0, total, batch_size):
        batch = {k: v[start : start + batch_size] for k, v in features.items()}
        rows = len(next(iter(batch.values())))
        if rows < batch_size:  # one compiled shape: pad with empty rows
            batch = {k: np.pad(v, [(0, batch_size - rows), (0, 0)]) for k, v in batch.items()}
        scores.append(-np.asarray(score_fn(batch))[:rows])
    return np.concatenate(scores)

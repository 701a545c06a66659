"""Log-likelihood of given targets under a model: rank classification and perplexity filters.

Each (inputs, targets) pair goes through the architecture's seqio feature converter unpacked, one
example per row, and the jitted `score_batch` of training returns its summed target NLL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from lowres.evaluation.bits_per_byte import jitted_scorer
from lowres.data.pipeline import feature_converter


def example_features(
    examples: Sequence[tuple[Sequence[int], Sequence[int]]], architecture: str, inputs_length: int,
    targets_length: int,
) -> dict[str, np.ndarray]:  # fmt: skip
    """One unpacked feature row per (inputs, targets) example, padded to the given lengths."""
    import tensorflow as tf

    for i, (inputs, targets) in enumerate(examples):
        if len(inputs) > inputs_length or len(targets) > targets_length:
            raise ValueError(
                f"example {i}: {len(inputs)} input / {len(targets)} target tokens exceed the lengths "
                f"{inputs_length} / {targets_length}; raise them or shorten the text"
            )
    dataset = tf.data.Dataset.from_generator(
        lambda: ({"inputs": np.asarray(i, np.int32), "targets": np.asarray(t, np.int32)} for i, t in examples),
        output_signature={"inputs": tf.TensorSpec([None], tf.int32), "targets": tf.TensorSpec([None], tf.int32)},
    )
    converted = feature_converter(architecture, pack=False)(dataset, {"inputs": inputs_length, "targets": targets_length})
    rows = list(converted.as_numpy_iterator())
    return {key: np.stack([row[key] for row in rows]) for key in rows[0]}


def log_likelihoods(
    score_fn: Callable[[dict[str, np.ndarray]], np.ndarray],
    examples: Sequence[tuple[Sequence[int], Sequence[int]]],
    architecture: str,
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


def rank_classify(
    score_fn, inputs: Sequence[int], options: Sequence[Sequence[int]], architecture: str, inputs_length: int,
    targets_length: int,
) -> tuple[int, np.ndarray]:  # fmt: skip
    """Index of the likeliest option for `inputs` and every option's log-likelihood."""
    scores = log_likelihoods(
        score_fn, [(inputs, option) for option in options], architecture, inputs_length, targets_length,
        batch_size=len(options),
    )  # fmt: skip
    return int(np.argmax(scores)), scores


class Scorer:
    """Log-likelihoods of text under a restored model (see trainer.load_params)."""

    def __init__(self, loaded, batch_size: int = 32):
        self.vocabulary = loaded["vocabulary"]
        self.info = loaded["info"]
        self.architecture = self.info["model"].get("architecture", "encoder_decoder")
        self.batch_size = batch_size
        self.score_fn = jitted_scorer(loaded["graphdef"], loaded["params"], loaded["rest"])

    def encode(self, text: str) -> list[int]:
        return list(self.vocabulary.encode(text)) + [self.vocabulary.eos_id]

    def text_log_likelihoods(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """log p(target text + EOS | input text + EOS) per (input, target) pair."""
        examples = [(self.encode(i), self.encode(t)) for i, t in pairs]
        inputs_length = max(self.info["inputs_length"], max(len(i) for i, _ in examples))
        targets_length = max(self.info["targets_length"], max(len(t) for _, t in examples))
        return log_likelihoods(
            self.score_fn, examples, self.architecture, inputs_length, targets_length, self.batch_size
        )

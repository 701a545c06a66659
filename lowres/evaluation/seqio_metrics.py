"""SeqIO task evaluation: a task's own postprocessor and metric functions over model predictions and scores.

Tasks declare `metric_fns` (predict metrics take (targets, predictions); score metrics take (targets,
scores)) and a `postprocess_fn`, as in t5x; `evaluate_task` applies them to a predictor and a scorer,
and `model_task_metrics` builds both from a model's parts, which is what eval-during-training calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import seqio

from lowres.checkpoints.trained_model import TrainedModel
from lowres.errors import ConfigError, DataError

Predictor = Callable[[Sequence[Sequence[int]]], list[list[int]]]
Scorer = Callable[[Sequence[tuple[Sequence[int], Sequence[int]]]], np.ndarray]


def _value(metric: Any) -> float:
    return float(getattr(metric, "value", metric))


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def evaluate_task(
    task: str | seqio.Task,
    predict: Predictor | None,
    score: Scorer | None = None,
    split: str = "validation",
    sequence_length: dict[str, int] | None = None,
    limit: int | None = None,
    batch_size: int = 32,
) -> dict[str, float]:
    """Runs the task's predict metrics on postprocessed `predict` outputs and its score metrics on
    `score` log-likelihoods of the targets; targets are postprocessed with `is_target=True`."""
    task = seqio.get_mixture_or_task(task) if isinstance(task, str) else task
    dataset = task.get_dataset(sequence_length, split=split, shuffle=False, use_cached=False)
    if limit:
        dataset = dataset.take(limit)
    examples = list(dataset.as_numpy_iterator())
    if not examples:
        raise DataError(f"task {task.name}: split {split!r} holds no examples")
    vocabulary = task.output_features["targets"].vocabulary

    def raw_target(ex):
        return _text(ex["targets_pretokenized"]) if "targets_pretokenized" in ex else vocabulary.decode(ex["targets"].tolist())

    targets = [task.postprocess_fn(raw_target(ex), example=ex, is_target=True) for ex in examples]
    metrics: dict[str, float] = {}
    if task.predict_metric_fns:
        if predict is None:
            raise ConfigError(f"task {task.name} declares predict metrics; give a predictor")
        outputs: list[list[int]] = []
        for start in range(0, len(examples), batch_size):
            outputs += predict([ex["inputs"].tolist() for ex in examples[start : start + batch_size]])
        predictions = [
            task.postprocess_fn(vocabulary.decode(ids), example=ex, is_target=False) for ids, ex in zip(outputs, examples)
        ]
        for fn in task.predict_metric_fns:
            metrics.update({k: _value(v) for k, v in fn(targets, predictions).items()})
    if task.score_metric_fns and score is not None:
        scores = score([(ex["inputs"].tolist(), ex["targets"].tolist()) for ex in examples])
        for fn in task.score_metric_fns:
            metrics.update({k: _value(v) for k, v in fn(targets, scores).items()})
    return metrics


def model_task_metrics(
    task: str | seqio.Task, model: TrainedModel, decode_config=None, split: str = "validation",
    limit: int | None = None, batch_size: int = 32,
) -> dict[str, float]:  # fmt: skip
    """`evaluate_task` with a restored (or in-training) model: greedy decodes (or `decode_config`'s) for
    predict metrics and target log-likelihoods for score metrics."""
    from lowres.inference.decoding import DecodeConfig
    from lowres.inference.generate import Generator
    from lowres.inference.scoring import jitted_scorer, log_likelihoods

    info = model.info
    lengths = {"inputs": info.inputs_length, "targets": info.targets_length}
    config = decode_config or DecodeConfig("greedy", max_length=info.targets_length)
    generator = Generator(model, config, batch_size=batch_size)
    score_fn = jitted_scorer(model.graphdef, model.params, model.rest)

    def score(pairs):
        return log_likelihoods(score_fn, pairs, model.architecture, lengths["inputs"], lengths["targets"], batch_size)

    return evaluate_task(task, generator.generate, score, split, lengths, limit, batch_size)

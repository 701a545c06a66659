"""Registers cloned languages (METHODS §8, lowres.data.mixing.clones) as seqio tasks and mixtures.

A clone task is its original task plus the clone step; when the original has a plan, the clone's
plan is the same with the clone's id map attached, so training reads it through the index-based
stream (one clone decision per example, seeded by the example's index) instead of seqio.
"""

from __future__ import annotations

import dataclasses

import seqio

from lowres.data.mixing.clones import CloneConfig, anchor_ids, clone_id_map, clone_preprocessor, clone_task_name
from lowres.data.tasks import plans

__all__ = ["register_clone_mixture", "register_clone_task"]


def register_clone_task(task_name: str, config: CloneConfig) -> str:
    """Registers the clone of a registered task (same source and preprocessors plus the clone step)."""
    task = seqio.TaskRegistry.get(task_name)
    vocabulary = task.output_features["targets"].vocabulary
    anchors = anchor_ids(vocabulary, config.anchor_fraction, config.anchor_pieces)
    id_map = clone_id_map(vocabulary.vocab_size, anchors, config.clone_index)
    preprocessors = list(task.preprocessors)
    eos = [i for i, p in enumerate(preprocessors) if p is seqio.preprocessors.append_eos_after_trim]
    preprocessors.insert(eos[-1] if eos else len(preprocessors), clone_preprocessor(id_map, config.probability))
    name = clone_task_name(task_name, config)
    seqio.TaskRegistry.remove(name)
    plans.forget_plan(name)
    seqio.TaskRegistry.add(
        name,
        source=task.source,
        preprocessors=preprocessors,
        output_features=task.output_features,
        metric_fns=[],
        shuffle_buffer_size=task.shuffle_buffer_size,
    )
    original = plans.plan_for(task_name)
    if original is not None:
        plans.record_plan(dataclasses.replace(original, task=name, clone=plans.ClonePlan(id_map, config.probability)))
    return name


def register_clone_mixture(mixture: str, config: CloneConfig, name: str | None = None) -> str:
    """Registers clones of every task of `mixture` as a mixture with the same rates; returns its name."""
    parent = seqio.get_mixture_or_task(mixture)
    tasks = parent.tasks if isinstance(parent, seqio.Mixture) else [parent]
    rate = parent.get_rate if isinstance(parent, seqio.Mixture) else (lambda task: 1.0)
    entries = [(register_clone_task(t.name, config), rate(t)) for t in tasks]
    name = name or f"{mixture}{config.suffix}"
    seqio.MixtureRegistry.remove(name)
    seqio.MixtureRegistry.add(name, entries)
    return name

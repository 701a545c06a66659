"""Decoded examples of seqio tasks, for eyeballing what an objective feeds the model."""

from __future__ import annotations

import seqio

from lowres.data.vocab import MODE_TOKENS


def describe_example(example: dict, vocabulary: seqio.SentencePieceVocabulary) -> dict[str, str]:
    """Mode token, inputs and targets of one example as text; sentinels show as <extra_id_N>."""
    inputs, targets = list(example["inputs"]), list(example["targets"])
    base_size = vocabulary.vocab_size - vocabulary.extra_ids  # ids above are sentinels, not pieces
    first = vocabulary.tokenizer.id_to_piece(int(inputs[0])) if inputs and inputs[0] < base_size else ""
    mode = first if first in MODE_TOKENS else "(none)"
    if first in MODE_TOKENS:
        inputs = inputs[1:]
    return {"mode": mode, "inputs": vocabulary.decode(inputs), "targets": vocabulary.decode(targets)}


def sample_task(task_name: str, num_examples: int, lengths: dict[str, int], split: str = "validation",
                seed: int = 0) -> list[dict[str, str]]:
    """The first `num_examples` examples of a registered task, decoded."""
    task = seqio.get_mixture_or_task(task_name)
    vocabulary = task.output_features["targets"].vocabulary
    dataset = task.get_dataset(lengths, split, shuffle=False, seed=seed).take(num_examples)
    return [describe_example(ex, vocabulary) for ex in dataset.as_numpy_iterator()]

"""Decoded examples of seqio tasks, for eyeballing what an objective feeds the model."""

from __future__ import annotations

from pathlib import Path

import seqio

from lowres.data.vocab.vocabulary import MODE_TOKENS
from lowres.errors import ConfigError
from lowres.run_dir import RunInfo, read_run_info


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


def sample_vocabulary(corpus, model_dir: Path | None) -> tuple[seqio.Vocabulary, RunInfo | None]:
    """A trained run's vocabulary and run info, or (no run) a default vocabulary trained once and cached."""
    from lowres.data.tasks.builtin import default_vocabulary
    from lowres.data.vocab import vocabulary as vocab_lib

    if model_dir is not None:
        info = read_run_info(model_dir)
        return vocab_lib.load_vocabulary(Path(model_dir) / info.vocabulary, info.num_sentinels), info
    return default_vocabulary(corpus), None


def resolve_sample_name(name: str, corpus, vocabulary, lang: str) -> str:
    """Registers the builtin tasks `name` needs and returns the seqio task or mixture name to sample.

    `name` is an objective preset (its mixture over `lang`), `builtin.<objective>` or a task
    `builtin.<lang>.<denoiser>`.
    """
    from lowres.data.languages import normalize_language
    from lowres.data.tasks import objectives
    from lowres.data.tasks.builtin import CORPUS, register_builtin_mixture
    from lowres.data.tasks.names import task_language

    presets = [*objectives.OBJECTIVES, "custom"]
    parts = name.split(".")
    if name in presets or (len(parts) == 2 and parts[0] == CORPUS and parts[1] in presets):
        return register_builtin_mixture(corpus, vocabulary, parts[-1], languages=[normalize_language(lang)])
    if len(parts) == 3 and parts[0] == CORPUS:
        for preset in objectives.OBJECTIVES:
            register_builtin_mixture(corpus, vocabulary, preset, languages=[normalize_language(task_language(name))])
        if name in seqio.TaskRegistry.names():
            return name
    if name in seqio.TaskRegistry.names() or name in seqio.MixtureRegistry.names():
        return name
    raise ConfigError(
        f"unknown task or mixture {name!r}: give an objective ({', '.join(presets)}), {CORPUS}.<objective> or "
        f"{CORPUS}.<lang>.<denoiser>, e.g. {CORPUS}.yor_Latn.span_3_0p15_nlu"
    )

"""Cloned languages (METHODS §8): a controlled copy of a language made by shifting token ids.

Clone i of a vocabulary of size V uses ids [iV, (i+1)V): every training sequence is, with
probability p, mapped id -> id + iV, except *anchor* ids, which stay shared between the language
and its clone: pad/EOS/UNK, control symbols (mode tokens, language tags), sentinels, and
optionally the most frequent pieces or a chosen set. The model then needs `cloned_vocab_size`
embeddings; `original_ids` maps clone ids back for decoding.

The clone preprocessor runs after the objective (so each training sequence, not each raw
document, is one clone decision, and inputs and targets agree) and before EOS is appended.
Clone tasks and mixtures are registered by lowres.data.tasks.clone_tasks, which also gives them a
plan, so the index-based training stream applies the same map per example.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import gin
import numpy as np
import seqio
import tensorflow as tf

from lowres.config_fields import at_least, between, validated
from lowres.errors import ConfigError


@gin.configurable
@validated(probability=between(0.0, 1.0), anchor_fraction=between(0.0, 1.0), clone_index=at_least(1))
@dataclasses.dataclass(frozen=True)
class CloneConfig:
    """Per-sequence clone `probability`, the anchors that stay shared, and which clone (1, 2, ...)."""

    probability: float = 0.5
    # Share of ordinary pieces kept shared, most frequent (highest SentencePiece score) first.
    anchor_fraction: float = 0.0
    anchor_pieces: Sequence[str] = ()
    clone_index: int = 1


    @property
    def suffix(self) -> str:
        """Language-name suffix of the clone's tasks, e.g. `_clone1_p0p1`."""
        return f"_clone{self.clone_index}_p{self.probability:g}".replace(".", "p")


def anchor_ids(
    vocabulary: seqio.SentencePieceVocabulary, anchor_fraction: float = 0.0, anchor_pieces: Sequence[str] = ()
) -> np.ndarray:
    """Sorted ids shared by a language and its clones (specials, control symbols, sentinels, anchors)."""
    processor = vocabulary.tokenizer
    # seqio appends the sentinels to the SentencePiece model as its top `extra_ids` pieces.
    base = vocabulary.vocab_size - vocabulary.extra_ids
    special = [i for i in range(base) if processor.is_control(i) or processor.is_unknown(i) or processor.is_unused(i)]
    special += [vocabulary.pad_id, vocabulary.eos_id]
    sentinels = list(range(base, vocabulary.vocab_size))
    excluded = set(special)
    ordinary = [i for i in range(base) if i not in excluded and not processor.is_byte(i)]
    ordinary.sort(key=lambda i: (-processor.get_score(i), i))
    frequent = ordinary[: int(math.floor(anchor_fraction * len(ordinary) + 0.5))]
    chosen = []
    for piece in anchor_pieces:
        piece_id = processor.piece_to_id(piece)
        if piece_id == processor.unk_id() and piece != processor.id_to_piece(processor.unk_id()):
            raise KeyError(f"anchor piece {piece!r} is not in the vocabulary")
        chosen.append(piece_id)
    return np.unique(np.array(special + sentinels + frequent + chosen, dtype=np.int64))


def clone_id_map(vocab_size: int, anchors: np.ndarray, clone_index: int = 1) -> np.ndarray:
    """int32 table: original id -> clone id (anchors map to themselves, the rest shift by clone_index * V)."""
    table = np.arange(vocab_size, dtype=np.int64) + clone_index * vocab_size
    table[np.asarray(anchors, dtype=np.int64)] = np.asarray(anchors, dtype=np.int64)
    if table.max() >= np.iinfo(np.int32).max:
        raise ConfigError(f"clone {clone_index} of a {vocab_size}-id vocabulary does not fit int32 ids")
    return table.astype(np.int32)


def cloned_vocab_size(vocab_size: int, num_clones: int = 1) -> int:
    """Embedding rows a model needs for a language plus `num_clones` clones."""
    return (num_clones + 1) * vocab_size


def original_ids(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """Maps clone ids back to the original vocabulary (for decoding)."""
    return np.asarray(ids) % vocab_size


def clone_preprocessor(id_map: np.ndarray, probability: float):
    """A seqio preprocessor mapping each example's inputs and targets through `id_map` with prob. p."""
    table = tf.constant(id_map, dtype=tf.int32)

    @seqio.map_over_dataset(num_seeds=1)
    def clone(example, seed):
        use_clone = tf.random.stateless_uniform([], seed=seed) < probability
        out = dict(example)
        for key in ("inputs", "targets"):
            if key in example:
                tokens = example[key]
                mapped = tf.cast(tf.gather(table, tf.cast(tokens, tf.int32)), tokens.dtype)
                out[key] = tf.where(use_clone, mapped, tokens)
        return out

    def preprocess(dataset: tf.data.Dataset) -> tf.data.Dataset:
        return clone(dataset)

    return preprocess


def clone_task_name(task_name: str, config: CloneConfig) -> str:
    """`<corpus>.<lang>.<objective>` -> `<corpus>.<lang><suffix>.<objective>`."""
    parts = task_name.split(".")
    if len(parts) < 3:
        raise ConfigError(f"task {task_name!r} is not named <corpus>.<lang>.<objective>; cannot name its clone")
    parts[1] += config.suffix
    return ".".join(parts)

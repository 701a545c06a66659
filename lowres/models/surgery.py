"""Vocabulary resizing for continued pretraining on a new language: keep shared rows, initialise new ones.

An id map sends each new-vocabulary id to its old id, or to None for a token the old vocabulary
lacked. Kept ids copy their old rows; new rows come from one of `METHODS` (METHODS.md §9): random,
mean, multivariate normal (Hewitt 2021), mean of the token's old-tokenizer pieces, or FOCUS
(Dobler & de Melo 2023: sparsemax-weighted sum of shared-token rows). Everything is NumPy, so it
runs on checkpoints without building a model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from lowres.errors import ConfigError

METHODS = ("random", "mean", "multivariate_normal", "mean_of_pieces", "focus")
# Ridge added to the fitted covariance, relative to its mean variance, so it stays positive definite.
COVARIANCE_RIDGE = 1e-6


@dataclasses.dataclass(frozen=True)
class IdMap:
    """A normalised id map: `old_ids[new_id]` is the old id, or -1 for a new token."""

    old_ids: np.ndarray

    @classmethod
    def from_any(
        cls, id_map: Mapping[int, int | None] | Sequence[int | None] | IdMap, new_vocab_size: int | None = None
    ) -> IdMap:
        """Builds from a mapping (missing ids are new) or a sequence indexed by new id."""
        if isinstance(id_map, IdMap):
            return id_map
        if isinstance(id_map, Mapping):
            keys = [int(k) for k in id_map]
            if any(k < 0 for k in keys):
                raise ConfigError(f"new ids must be non-negative, got {min(keys)}")
            size = max(keys, default=-1) + 1 if new_vocab_size is None else new_vocab_size
            if keys and max(keys) >= size:
                raise ConfigError(f"new id {max(keys)} does not fit new_vocab_size {size}")
            entries: list[int | None] = [None] * size
            for key, old in id_map.items():
                entries[int(key)] = old
        else:
            entries = list(id_map)
            if new_vocab_size is not None and new_vocab_size != len(entries):
                raise ConfigError(f"id map has {len(entries)} entries but new_vocab_size is {new_vocab_size}")
        old_ids = np.full(len(entries), -1, dtype=np.int64)
        for new_id, old in enumerate(entries):
            if old is None:
                continue
            if int(old) < 0:
                raise ConfigError(f"old id {old} for new id {new_id} is negative; use None for new tokens")
            old_ids[new_id] = int(old)
        return cls(old_ids)

    @property
    def new_vocab_size(self) -> int:
        return len(self.old_ids)

    @property
    def kept(self) -> np.ndarray:
        """New ids that have an old row, ascending: the columns of FOCUS similarities."""
        return np.flatnonzero(self.old_ids >= 0)

    @property
    def added(self) -> np.ndarray:
        """New ids without an old row, ascending: the rows of FOCUS similarities."""
        return np.flatnonzero(self.old_ids < 0)


def sparsemax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Euclidean projection onto the probability simplex (Martins & Astudillo 2016): sparse softmax."""
    z = np.moveaxis(np.asarray(logits, dtype=np.float64), axis, -1)
    z_sorted = -np.sort(-z, axis=-1)
    k = np.arange(1, z.shape[-1] + 1, dtype=np.float64)
    cumulative = np.cumsum(z_sorted, axis=-1)
    # Support size: the largest k with 1 + k·z_(k) > Σ_{j≤k} z_(j); it is never empty (k=1 holds).
    in_support = 1.0 + k * z_sorted > cumulative
    support = np.sum(in_support, axis=-1, keepdims=True)
    tau = (np.take_along_axis(cumulative, support - 1, axis=-1) - 1.0) / support
    return np.moveaxis(np.maximum(z - tau, 0.0), -1, axis)


def _random_rows(old: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0.0, old.std(), size=(count, old.shape[1]))


def _mean_rows(old: np.ndarray, count: int) -> np.ndarray:
    return np.broadcast_to(old.mean(axis=0), (count, old.shape[1])).copy()


def _multivariate_normal_rows(old: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    mean = old.mean(axis=0)
    covariance = np.atleast_2d(np.cov(old, rowvar=False)) if len(old) > 1 else np.zeros((old.shape[1],) * 2)
    ridge = COVARIANCE_RIDGE * max(float(np.trace(covariance)) / old.shape[1], 1e-12)
    factor = np.linalg.cholesky(covariance + ridge * np.eye(old.shape[1]))
    return mean + rng.standard_normal((count, old.shape[1])) @ factor.T


def _mean_of_pieces_rows(
    old: np.ndarray, added: np.ndarray, pieces: Mapping[int, Sequence[int]] | None
) -> np.ndarray:
    if pieces is None:
        raise ConfigError("method 'mean_of_pieces' needs new_token_pieces (new id -> old piece ids)")
    fallback = old.mean(axis=0)
    rows = np.empty((len(added), old.shape[1]))
    for row, new_id in enumerate(added):
        ids = np.asarray(list(pieces.get(int(new_id), ())), dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= len(old)):
            raise ConfigError(f"pieces {ids.tolist()} of new id {new_id} fall outside the old vocabulary of {len(old)}")
        rows[row] = old[ids].mean(axis=0) if ids.size else fallback
    return rows


def _focus_rows(old: np.ndarray, id_map: IdMap, similarity: np.ndarray | None) -> np.ndarray:
    added, kept = id_map.added, id_map.kept
    if similarity is None:
        raise ConfigError("method 'focus' needs aux_similarity [num_new, num_kept]")
    expected = (len(added), len(kept))
    if np.shape(similarity) != expected:
        raise ConfigError(f"aux_similarity has shape {np.shape(similarity)}, expected [num_new, num_kept] = {expected}")
    if not len(kept):
        raise ConfigError("method 'focus' needs at least one kept token")
    return sparsemax(similarity, axis=-1) @ old[id_map.old_ids[kept]]


def resize_embeddings(
    old_matrix: np.ndarray,
    id_map: Mapping[int, int | None] | Sequence[int | None] | IdMap,
    method: str,
    *,
    rng_seed: int | Sequence[int] = 0,
    new_token_pieces: Mapping[int, Sequence[int]] | None = None,
    aux_similarity: np.ndarray | None = None,
    axis: int = 0,
    new_vocab_size: int | None = None,
) -> np.ndarray:
    """[V_old, d] -> [V_new, d] (vocabulary along `axis`), kept rows copied and new rows initialised by `method`.

    `new_token_pieces` is keyed by new id; `aux_similarity` has one row per new token and one column
    per kept token, both in ascending new-id order (`IdMap.added`, `IdMap.kept`).
    """
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; valid methods: {list(METHODS)}")
    matrix = np.asarray(old_matrix)
    if matrix.ndim != 2:
        raise ConfigError(f"old_matrix must be 2-D [vocab, d], got shape {matrix.shape}")
    if axis not in (0, 1, -1, -2):
        raise ConfigError(f"axis must index a 2-D matrix, got {axis}")
    rows = np.moveaxis(matrix, axis, 0)
    mapping = IdMap.from_any(id_map, new_vocab_size)
    if mapping.old_ids.max(initial=-1) >= len(rows):
        raise ConfigError(
            f"id map refers to old id {mapping.old_ids.max()} but old_matrix has shape {matrix.shape} "
            f"({len(rows)} rows along axis {axis})"
        )
    old = rows.astype(np.float64)
    added = mapping.added
    rng = np.random.default_rng(rng_seed)
    if method == "random":
        new_rows = _random_rows(old, len(added), rng)
    elif method == "mean":
        new_rows = _mean_rows(old, len(added))
    elif method == "multivariate_normal":
        new_rows = _multivariate_normal_rows(old, len(added), rng)
    elif method == "mean_of_pieces":
        new_rows = _mean_of_pieces_rows(old, added, new_token_pieces)
    else:
        new_rows = _focus_rows(old, mapping, aux_similarity)

    result = np.empty((mapping.new_vocab_size, rows.shape[1]), dtype=matrix.dtype)
    kept = mapping.kept
    result[kept] = rows[mapping.old_ids[kept]]
    result[added] = new_rows.astype(matrix.dtype)
    return np.moveaxis(result, 0, axis)


@dataclasses.dataclass(frozen=True)
class VocabMatrix:
    """Where a vocabulary-sized matrix sits in a nested param dict, and which axis is the vocabulary."""

    path: tuple[str, ...]
    vocab_axis: int = 0


# lowres's EncoderDecoder as a pure dict (`nnx.to_pure_dict(nnx.state(model, nnx.Param))`), untied.
LOWRES_VOCAB_MATRICES = (VocabMatrix(("token_embed", "embedding"), 0), VocabMatrix(("logits_kernel",), 1))


def _lookup(params: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = params
    for depth, key in enumerate(path):
        if not isinstance(node, Mapping) or key not in node:
            raise KeyError(f"param path {path} does not exist (no key {key!r} at {path[:depth] or 'the root'})")
        node = node[key]
    return node


def _replace(params: Mapping[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of `params` with the leaf at `path` replaced; other leaves are shared, not copied."""
    copy = dict(params)
    copy[path[0]] = value if len(path) == 1 else _replace(params[path[0]], path[1:], value)
    return copy


def resize_params(
    params: Mapping[str, Any],
    id_map: Mapping[int, int | None] | Sequence[int | None] | IdMap,
    method: str,
    embedding_paths: Sequence[VocabMatrix | tuple[str, ...]] = LOWRES_VOCAB_MATRICES,
    *,
    rng_seed: int = 0,
    **kwargs: Any,
) -> dict[str, Any]:
    """A new param dict with every listed vocabulary matrix resized by `resize_embeddings`.

    Random methods draw independent rows per matrix (seeded by `rng_seed` and the matrix's index);
    deterministic ones give input and output embeddings the same recipe. A plain key path means
    vocabulary axis 0; give a `VocabMatrix` with `vocab_axis=1` for a [d, V] output kernel.
    """
    specs = [spec if isinstance(spec, VocabMatrix) else VocabMatrix(tuple(spec)) for spec in embedding_paths]
    matrices = [_lookup(params, spec.path) for spec in specs]
    for spec, matrix in zip(specs, matrices, strict=True):
        if np.ndim(matrix) != 2:
            raise ConfigError(f"param {spec.path} has shape {np.shape(matrix)}; expected a 2-D vocabulary matrix")
    sizes = {spec.path: np.shape(m)[spec.vocab_axis] for spec, m in zip(specs, matrices, strict=True)}
    if len(set(sizes.values())) > 1:
        raise ConfigError(f"vocabulary matrices disagree on the old vocabulary size: {sizes}")
    mapping = IdMap.from_any(id_map, kwargs.pop("new_vocab_size", None))
    result = dict(params)
    for index, (spec, matrix) in enumerate(zip(specs, matrices, strict=True)):
        resized = resize_embeddings(
            np.asarray(matrix), mapping, method, rng_seed=(rng_seed, index), axis=spec.vocab_axis, **kwargs
        )
        result = _replace(result, spec.path, resized)
    return result
